// Memory and CPU figures of a process, read from /proc (Linux only).
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

function statusField(pid, field) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return NaN;
  }
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m === null ? NaN : Number(m[1]) * 1024;
}

/** Resident set size in bytes (VmRSS); NaN once the process is gone. */
export function readRss(pid) {
  return statusField(pid, 'VmRSS');
}

/** Peak resident set size in bytes since the process started (VmHWM). */
export function readPeakRss(pid) {
  return statusField(pid, 'VmHWM');
}

let clockTicks = 0;

/** User+system CPU seconds the process (all its threads) used so far. */
export function readCpuSeconds(pid) {
  if (clockTicks === 0) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return NaN;
  }
  // The command name (field 2) may hold spaces; fields after the closing paren are plain.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) / clockTicks;
}

/**
 * Polls VmRSS until `stableSamples` consecutive readings lie within `toleranceBytes` (or
 * `toleranceRatio` of the value, whichever is larger), instead of sleeping a guessed time.
 * Returns the last reading, whether it settled, and how long that took.
 */
export async function settledRss(pid, opts = {}) {
  const intervalMs = opts.intervalMs ?? 100;
  const stableSamples = opts.stableSamples ?? 5;
  const toleranceBytes = opts.toleranceBytes ?? 64 * 1024;
  const toleranceRatio = opts.toleranceRatio ?? 0.005;
  const maxMs = opts.maxMs ?? 10_000;
  const start = Date.now();
  const seen = [];
  for (;;) {
    const rss = readRss(pid);
    if (!Number.isFinite(rss)) return { rss, stable: false, ms: Date.now() - start };
    seen.push(rss);
    if (seen.length >= stableSamples) {
      const last = seen.slice(-stableSamples);
      const spread = Math.max(...last) - Math.min(...last);
      if (spread <= Math.max(toleranceBytes, rss * toleranceRatio)) return { rss, stable: true, ms: Date.now() - start };
    }
    if (Date.now() - start > maxMs) return { rss, stable: false, ms: Date.now() - start };
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Seconds all threads of the process spent runnable but waiting for a CPU (schedstat field 2).
 * On a shared machine this tells a server starved by other load from one that was idle.
 */
export function readRunqueueWaitSeconds(pid) {
  let tasks;
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return NaN;
  }
  let ns = 0;
  for (const t of tasks) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[1]);
    } catch {
      // thread ended between readdir and read
    }
  }
  return ns / 1e9;
}
