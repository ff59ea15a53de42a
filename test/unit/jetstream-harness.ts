/**
 * An in-process JetStream for unit tests: a real Router, a real store in a temp dir, and a
 * test client on the router that publishes and collects what comes back on `_INBOX.>`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JetStreamOptions } from '../../src/config/options.js';
import type { Message } from '../../src/core/message.js';
import { Router } from '../../src/core/router.js';
import type { Subscriber, Subscription } from '../../src/core/subscription.js';
import { JetStream } from '../../src/jetstream/jetstream.js';
import { Logger } from '../../src/log.js';

export interface Reply {
  subject: string;
  hdr: Buffer | null;
  data: Buffer;
  json<T = Record<string, unknown>>(): T;
}

let cids = 1000;

/** One turn of the event loop: the group commit flushes in a setImmediate. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class TestClient implements Subscriber {
  readonly kind = 'client' as const;
  readonly cid = ++cids;
  readonly echo = true;
  private n = 0;
  private readonly waiting = new Map<string, (r: Reply) => void>();
  readonly got = new Map<string, Reply>();
  private readonly sub: Subscription;

  constructor(private readonly router: Router) {
    this.sub = { subject: '_INBOX.>', queue: '', sid: '1', owner: this, msgs: 0, max: 0 };
    router.subscribe(this.sub);
  }

  deliver(_sub: Subscription, msg: Message): void {
    const copy = Buffer.from(msg.data);
    const hdrLen = msg.hdrLen > 0 ? msg.hdrLen : 0;
    const r: Reply = {
      subject: msg.subject,
      hdr: hdrLen > 0 ? copy.subarray(0, hdrLen) : null,
      data: copy.subarray(hdrLen),
      json: <T>() => JSON.parse(copy.subarray(hdrLen).toString()) as T,
    };
    const to = msg.to ?? msg.subject;
    this.got.set(to, r);
    const w = this.waiting.get(to);
    if (w !== undefined) {
      this.waiting.delete(to);
      w(r);
    }
  }

  /** Publish with a fresh reply inbox; returns the inbox. */
  send(subject: string, body: string | Buffer | object = '', headers?: Record<string, string>): string {
    const reply = `_INBOX.${++this.n}`;
    this.publish(subject, body, headers, reply);
    return reply;
  }

  publish(subject: string, body: string | Buffer | object = '', headers?: Record<string, string>, reply = ''): number {
    const payload = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    let data = payload;
    let hdrLen = -1;
    if (headers !== undefined) {
      const block = Buffer.from('NATS/1.0\r\n' + Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n');
      data = Buffer.concat([block, payload]);
      hdrLen = block.length;
    }
    return this.router.publish({ subject, reply, hdrLen, data }, this);
  }

  /** The reply to `inbox`, awaited (resolves at once when it is already there). */
  reply(inbox: string): Promise<Reply> {
    const have = this.got.get(inbox);
    if (have !== undefined) return Promise.resolve(have);
    return new Promise((resolve) => this.waiting.set(inbox, resolve));
  }

  /** A request answered synchronously (API calls) or after commits (PubAcks). */
  async request(subject: string, body: string | Buffer | object = '', headers?: Record<string, string>): Promise<Reply> {
    return this.reply(this.send(subject, body, headers));
  }

  async api<T = Record<string, unknown>>(subject: string, body: string | object = ''): Promise<T> {
    return (await this.request(subject, body)).json<T>();
  }

  close(): void {
    this.router.unsubscribe(this.sub);
  }
}

export class Harness {
  readonly router = new Router();
  readonly dir: string;
  js: JetStream;
  client: TestClient;

  constructor(opts: Partial<JetStreamOptions> = {}, dir?: string) {
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'js-unit-'));
    this.js = this.start(opts);
    this.client = new TestClient(this.router);
  }

  private start(opts: Partial<JetStreamOptions>): JetStream {
    return JetStream.start({
      router: this.router,
      log: new Logger({ debug: false, trace: false, logtime: false, logtimeUtc: false }),
      options: { enabled: true, storeDir: this.dir, maxMemoryStore: 1 << 30, maxFileStore: 1 << 30, syncInterval: 60_000, ...opts },
      profile: undefined,
      nextCid: () => ++cids,
    });
  }

  /** Clean shutdown and start again on the same store (a fresh router: nothing survives but the disk). */
  restart(opts: Partial<JetStreamOptions> = {}): Harness {
    this.js.shutdown();
    this.client.close();
    return new Harness(opts, this.dir);
  }

  close(): void {
    this.js.shutdown();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
