import { appendFileSync } from 'node:fs';

/**
 * Logging in nats-server's line format, one line per event:
 *   [pid] 2026/11/27 05:29:11.899537 [INF] message
 * Under systemd (JOURNAL_STREAM set) the timestamp is left to journald and the line carries a
 * syslog priority prefix (<6>, <4>, ...) so journalctl shows levels.
 */
export type LogLevel = 'FTL' | 'ERR' | 'WRN' | 'INF' | 'DBG' | 'TRC';

const PRIORITY: Record<LogLevel, number> = { FTL: 2, ERR: 3, WRN: 4, INF: 6, DBG: 7, TRC: 7 };

export interface LoggerOptions {
  debug: boolean;
  trace: boolean;
  logtime: boolean;
  logtimeUtc: boolean;
  logFile?: string | undefined;
}

export class Logger {
  private opts: LoggerOptions;
  private readonly journald = process.env['JOURNAL_STREAM'] !== undefined;

  constructor(opts: LoggerOptions) {
    this.opts = opts;
  }

  configure(opts: LoggerOptions): void {
    this.opts = opts;
  }

  get debugEnabled(): boolean {
    return this.opts.debug;
  }

  get traceEnabled(): boolean {
    return this.opts.trace;
  }

  log(level: LogLevel, msg: string): void {
    if (level === 'DBG' && !this.opts.debug) return;
    if (level === 'TRC' && !this.opts.trace) return;
    // One event, one line: text from clients (a CONNECT name, a subject) must not start a
    // fake log line of its own, and journald takes each line as one entry.
    if (msg.includes('\n') || msg.includes('\r')) msg = msg.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
    let line: string;
    if (this.journald && this.opts.logFile === undefined) {
      line = `<${PRIORITY[level]}>[${level}] ${msg}\n`;
    } else {
      const time = this.opts.logtime ? formatTime(new Date(), this.opts.logtimeUtc) + ' ' : '';
      line = `[${process.pid}] ${time}[${level}] ${msg}\n`;
    }
    if (this.opts.logFile !== undefined) {
      try {
        appendFileSync(this.opts.logFile, line);
        return;
      } catch {
        // fall through to stderr: a log line must not be lost because the file went away
      }
    }
    process.stderr.write(line);
  }

  info(msg: string): void {
    this.log('INF', msg);
  }
  warn(msg: string): void {
    this.log('WRN', msg);
  }
  error(msg: string): void {
    this.log('ERR', msg);
  }
  debug(msg: string): void {
    if (this.opts.debug) this.log('DBG', msg);
  }
  trace(msg: string): void {
    if (this.opts.trace) this.log('TRC', msg);
  }
}

function pad(n: number, w: number): string {
  return String(n).padStart(w, '0');
}

function formatTime(d: Date, utc: boolean): string {
  const y = utc ? d.getUTCFullYear() : d.getFullYear();
  const mo = (utc ? d.getUTCMonth() : d.getMonth()) + 1;
  const day = utc ? d.getUTCDate() : d.getDate();
  const h = utc ? d.getUTCHours() : d.getHours();
  const mi = utc ? d.getUTCMinutes() : d.getMinutes();
  const s = utc ? d.getUTCSeconds() : d.getSeconds();
  const us = d.getMilliseconds() * 1000;
  return `${y}/${pad(mo, 2)}/${pad(day, 2)} ${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}.${pad(us, 6)}`;
}
