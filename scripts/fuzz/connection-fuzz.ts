/**
 * Fuzzing of a whole client connection: the parser, the connection's handling of every op,
 * the router and the outbound path, over an in-memory socket. Same inputs as the parser fuzz.
 * For every input it checks:
 *  - no exception escapes;
 *  - what the server wrote is a sequence of well-formed server frames (INFO, +OK, -ERR 'x',
 *    PING, PONG, MSG, HMSG with exact payload sizes);
 *  - pending output and the memory budget stay bounded;
 *  - the input ends in an answer or a close: a PING afterwards gets its PONG, or the
 *    connection closes once enough bytes arrive to finish any op it was in the middle of.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { defaultOptions } from '../../src/config/load.js';
import type { ServerOptions } from '../../src/config/options.js';
import { Logger } from '../../src/log.js';
import { ClientConnection } from '../../src/nats/client.js';
import { Server } from '../../src/server.js';
import { Prng, fuzzInputs } from './parser-fuzz.js';

/** An in-memory stand-in for the TCP socket under a connection (not a protocol peer). */
class MemorySocket extends Duplex {
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 1;
  out: Buffer[] = [];
  outBytes = 0;

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // Copied: the server reuses its slabs once a write completed, as a kernel would have taken the bytes.
    this.out.push(Buffer.from(chunk));
    this.outBytes += chunk.length;
    cb();
  }

  setNoDelay(): this {
    return this;
  }

  text(): string {
    return Buffer.concat(this.out).toString('latin1');
  }
}

// Fields are separated by single spaces only: like nats-server, the server relays subjects
// and sids byte for byte, and a non-pedantic client may put CR, FF or control bytes in them.
const FRAME_LINE = /^(INFO \{.*\} |\+OK|-ERR '.*'|PING|PONG|MSG [^ ]+ [^ ]+ (?:[^ ]+ )?(\d+)|HMSG [^ ]+ [^ ]+ (?:[^ ]+ )?(\d+) (\d+))$/s;

/** Checks that `text` is a sequence of complete, well-formed server frames; returns the problem. */
export function checkServerFrames(text: string): string | null {
  let i = 0;
  while (i < text.length) {
    const eol = text.indexOf('\r\n', i);
    if (eol < 0) return `unterminated line at ${i}: ${JSON.stringify(text.slice(i, i + 80))}`;
    const line = text.slice(i, eol);
    const m = FRAME_LINE.exec(line);
    if (m === null) return `not a server frame: ${JSON.stringify(line.slice(0, 120))}`;
    i = eol + 2;
    const size = m[2] !== undefined ? Number(m[2]) : m[4] !== undefined ? Number(m[4]) : -1;
    if (m[3] !== undefined && Number(m[3]) > size) return `HMSG header size above total: ${line}`;
    if (size >= 0) {
      if (text.length < i + size + 2) return `payload shorter than ${size}: ${line}`;
      if (text.slice(i + size, i + size + 2) !== '\r\n') return `payload not followed by CRLF: ${line}`;
      i += size + 2;
    }
  }
  return null;
}

export interface ConnectionFuzzOptions {
  seed: number;
  iterations: number;
  progress?: (done: number) => void;
}

export interface ConnectionFuzzResult {
  iterations: number;
  bytes: number;
  chunks: number;
  outcomes: Record<string, number>;
  failures: { iteration: number; message: string; chunkSizes: number[]; input: string }[];
}

function fuzzOptions(rng: Prng): ServerOptions {
  const o = defaultOptions();
  o.maxPayload = rng.pick([64, 4096]);
  o.maxControlLine = rng.pick([32, 128, 4096]);
  o.maxPending = 64 * 1024;
  o.maxSubscriptions = rng.pick([0, 3]);
  o.maxPendingTotal = 1024 * 1024;
  o.logging = { debug: false, trace: false, logtime: false, logtimeUtc: false };
  if (rng.chance(0.1)) o.authorization = { token: 's3cr3t', timeoutMs: 2000 };
  return o;
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function runConnectionFuzz(opts: ConnectionFuzzOptions): Promise<ConnectionFuzzResult> {
  const rng = new Prng(opts.seed ^ 0x5bd1e995);
  const result: ConnectionFuzzResult = { iterations: 0, bytes: 0, chunks: 0, outcomes: {}, failures: [] };
  const log = new Logger({ debug: false, trace: false, logtime: false, logtimeUtc: false });
  // Quiet: a fuzz run would print millions of lines otherwise.
  log.log = () => {};
  let n = 0;
  for (const chunks of fuzzInputs(opts.seed, opts.iterations)) {
    const iteration = n++;
    const options = fuzzOptions(rng);
    const server = new Server(options, log);
    const socket = new MemorySocket();
    const client = new ClientConnection(server, socket as unknown as Socket);
    const fail = (message: string): void => {
      result.failures.push({
        iteration,
        message,
        chunkSizes: chunks.map((c) => c.length),
        input: Buffer.concat(chunks).toString('hex').slice(0, 4000),
      });
    };
    try {
      client.begin(`INFO {"server_id":"FUZZ","max_payload":${options.maxPayload}} \r\n`);
      const bound = options.maxPending + options.maxPayload + 4096;
      for (const c of chunks) {
        result.chunks++;
        result.bytes += c.length;
        socket.push(c);
        await tick();
        if (client.pendingBytes > bound) fail(`pending ${client.pendingBytes} above ${bound}`);
        if (server.budget.bytes > options.maxPendingTotal + bound) fail(`budget at ${server.budget.bytes}`);
        if (client.closed) break;
      }
      await tick();
      let outcome: string;
      if (client.closed) {
        outcome = 'closed';
      } else {
        const before = socket.outBytes;
        socket.push(Buffer.from('\r\nPING\r\n'));
        await tick();
        await tick();
        const after = socket.text().slice(-6);
        if (socket.outBytes > before && after === 'PONG\r\n') {
          outcome = 'pong';
        } else {
          // Whatever op was open gets enough bytes to finish or to break: it must close then.
          socket.push(Buffer.alloc(options.maxPayload + options.maxControlLine + 8, 0x78));
          await tick();
          await tick();
          outcome = client.closed ? 'closed-after-flush' : 'open';
          if (!client.closed) fail('connection neither answered PING nor closed');
        }
      }
      result.outcomes[outcome] = (result.outcomes[outcome] ?? 0) + 1;
      const problem = checkServerFrames(socket.text());
      if (problem !== null) fail(problem);
    } catch (err) {
      fail(`exception: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    } finally {
      client.close('Client Closed', true);
      if (server.budget.bytes !== 0) fail(`budget not returned after close: ${server.budget.bytes}`);
    }
    result.iterations++;
    if (opts.progress !== undefined && result.iterations % 100_000 === 0) opts.progress(result.iterations);
    if (result.failures.length >= 20) break;
  }
  return result;
}
