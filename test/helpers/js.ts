/**
 * JetStream test helpers: start a JetStream-enabled server of either kind on a store dir that
 * survives a restart, connect nats.js to it, send raw `$JS.API` requests, and assert the
 * JetStream error a call failed with (err_code, HTTP-like code, text).
 */
import { expect } from 'vitest';
import { connect, RequestError, type ConnectionOptions, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { JetStreamApiError } from '@nats-io/jetstream';
import { makeTempDir, startServer, within, type RunningServer, type ServerKind, type StartOptions } from './servers.js';

export interface JsStartOptions {
  /** Reuse a store dir (restart on the same data); a fresh temp dir otherwise. */
  storeDir?: string;
  /** Config file text; when given, -js/-sd are still passed on the command line. */
  config?: string;
  /** Extra flags after `-js -sd <dir>`. */
  args?: string[];
  env?: Record<string, string>;
}

/** A JetStream-enabled server plus the connections opened to it (closed by `stop`). */
export class JsServer {
  private readonly conns: NatsConnection[] = [];

  private constructor(
    readonly kind: ServerKind,
    public srv: RunningServer,
    readonly storeDir: string,
    private readonly opts: JsStartOptions,
  ) {}

  /** Starts `kind` with `-js -sd <storeDir>` (plus `config`/`args`). */
  static async start(kind: ServerKind, opts: JsStartOptions = {}): Promise<JsServer> {
    const storeDir = opts.storeDir ?? makeTempDir('nats-edge-js-');
    const srv = await startServer(kind, jsStartOptions(storeDir, opts));
    return new JsServer(kind, srv, storeDir, { ...opts, storeDir });
  }

  /** A nats.js connection that does not reconnect (a dead server fails the test at once). */
  async connect(opts: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
    const nc = await connect({ servers: this.srv.url, reconnect: false, ...opts });
    this.conns.push(nc);
    return nc;
  }

  /** Closes every connection opened through `connect`. */
  async closeConnections(): Promise<void> {
    await Promise.all(this.conns.splice(0).map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close().catch(() => undefined))));
  }

  /** Stops the server (SIGTERM: a clean shutdown) and starts the same kind on the same store dir. */
  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.closeConnections();
    await this.srv.stop(signal);
    this.srv = await startServer(this.kind, jsStartOptions(this.storeDir, this.opts));
  }

  async stop(): Promise<void> {
    await this.closeConnections();
    await this.srv.stop('SIGTERM');
  }
}

function jsStartOptions(storeDir: string, opts: JsStartOptions): StartOptions {
  const start: StartOptions = { args: ['-js', '-sd', storeDir, ...(opts.args ?? [])] };
  if (opts.config !== undefined) start.config = opts.config;
  if (opts.env !== undefined) start.env = opts.env;
  return start;
}

/** The `error` object of a JetStream API response. */
export interface ApiErrorBody {
  code: number;
  err_code: number;
  description: string;
}

/** A JetStream API response as JSON: `type`, optional `error`, and the kind's own fields. */
export type ApiResponse = { type?: string; error?: ApiErrorBody } & Record<string, unknown>;

/**
 * A raw core request to a `$JS.API` subject (or any subject answering JSON). `body` is sent as
 * is when it is a string, JSON-encoded otherwise, and empty when undefined.
 */
export async function apiRequest(nc: NatsConnection, subject: string, body?: unknown, timeoutMs = 3000): Promise<ApiResponse> {
  const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const m = await nc.request(subject, payload, { timeout: timeoutMs });
  return parseJson(m);
}

/** The reply of a raw request, without parsing (DIRECT.GET answers with headers). */
export function rawRequest(nc: NatsConnection, subject: string, body?: unknown, timeoutMs = 3000): Promise<Msg> {
  const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  return nc.request(subject, payload, { timeout: timeoutMs });
}

export function parseJson(m: Msg): ApiResponse {
  const text = m.string();
  try {
    return JSON.parse(text) as ApiResponse;
  } catch {
    throw new Error(`reply on ${m.subject} is not JSON: ${JSON.stringify(text)}`);
  }
}

/** Asserts a raw API response carries exactly this error (description exact, or matched by a RegExp). */
export function expectErrorBody(res: ApiResponse, errCode: number, code: number, description?: string | RegExp): void {
  expect(res.error, `expected error ${errCode} in ${JSON.stringify(res)}`).toBeDefined();
  expect(res.error?.err_code).toBe(errCode);
  expect(res.error?.code).toBe(code);
  if (typeof description === 'string') expect(res.error?.description).toBe(description);
  else if (description instanceof RegExp) expect(res.error?.description).toMatch(description);
}

/**
 * Awaits `p`, which must reject with a JetStreamApiError of this err_code (and HTTP-like code
 * and text when given); returns the error for further checks.
 */
export async function expectApiError(
  p: Promise<unknown>,
  errCode: number,
  code?: number,
  description?: string | RegExp,
): Promise<JetStreamApiError> {
  let caught: unknown;
  try {
    const v = await p;
    caught = new Error(`expected JetStream error ${errCode}, call succeeded with ${safeJson(v)}`);
  } catch (err) {
    caught = err;
  }
  if (!(caught instanceof JetStreamApiError)) {
    throw caught instanceof Error ? caught : new Error(String(caught));
  }
  const api = caught.apiError();
  expect(api.err_code, `error ${JSON.stringify(api)}`).toBe(errCode);
  if (code !== undefined) expect(api.code, `error ${JSON.stringify(api)}`).toBe(code);
  if (typeof description === 'string') expect(api.description).toBe(description);
  else if (description instanceof RegExp) expect(api.description).toMatch(description);
  return caught;
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v)?.slice(0, 300) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Awaits `p`, which must reject because nobody subscribes to the subject (503 no responders). */
export async function expectNoResponders(p: Promise<unknown>): Promise<void> {
  let caught: unknown = null;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a no-responders rejection').toBeInstanceOf(RequestError);
  expect((caught as RequestError).isNoResponders(), String(caught)).toBe(true);
}

/** Nanoseconds from milliseconds (JetStream durations on the wire). */
export function ns(ms: number): number {
  return ms * 1_000_000;
}

/** Messages of one core subscription, with a way to await a count. */
export class MsgCollector {
  readonly msgs: Msg[] = [];
  private waiters: Array<{ n: number; wake: () => void }> = [];

  readonly callback = (err: Error | null, m: Msg): void => {
    if (err !== null) return;
    this.msgs.push(m);
    this.waiters = this.waiters.filter((w) => {
      if (this.msgs.length < w.n) return true;
      w.wake();
      return false;
    });
  };

  /** Resolves once at least n messages arrived. */
  until(n: number, ms = 5000): Promise<Msg[]> {
    if (this.msgs.length >= n) return Promise.resolve(this.msgs);
    const reached = new Promise<Msg[]>((wake) => this.waiters.push({ n, wake: () => wake(this.msgs) }));
    return within(reached, ms, `${n} messages (have ${this.msgs.length})`);
  }
}

/** A core subscription feeding a MsgCollector. */
export function collect(nc: NatsConnection, subject: string, queue?: string): { sub: Subscription; c: MsgCollector } {
  const c = new MsgCollector();
  const sub = nc.subscribe(subject, queue === undefined ? { callback: c.callback } : { queue, callback: c.callback });
  return { sub, c };
}

/**
 * Whether `$JS.API.INFO` on this connection answers with an account_info_response: used to
 * tell a server with JetStream from one without it.
 */
export async function jetStreamAnswers(nc: NatsConnection, timeoutMs = 1000): Promise<boolean> {
  try {
    const res = await apiRequest(nc, '$JS.API.INFO', undefined, timeoutMs);
    return res.type === 'io.nats.jetstream.api.v1.account_info_response' && res.error === undefined;
  } catch {
    return false;
  }
}
