/**
 * The consumer engine against a small in-test stream and a real Router and SQLite database:
 * deliveries, statuses, acks, timers, push flow control, persistence and restore. The real
 * stream side and the nats.js client are exercised in test/integration/jetstream-consumers.
 */
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../../src/core/message.js';
import { Router } from '../../src/core/router.js';
import type { Subscriber, Subscription } from '../../src/core/subscription.js';
import { subjectMatches } from '../../src/core/subject.js';
import { CONSUMER_SCHEMA, registerConsumerApi, restoreConsumers } from '../../src/jetstream/consumer.js';
import { Logger } from '../../src/log.js';
import type {
  ApiError,
  ApiHandler,
  ApiRequest,
  ApiRouter,
  ConsumerHandle,
  JetStreamRuntime,
  StoredMsg,
  StreamConfig,
  StreamHandle,
} from '../../src/jetstream/types.js';

// ---- fixtures ------------------------------------------------------------------------------

const matchAny = (filters: readonly string[], subject: string): boolean =>
  filters.length === 0 || filters.some((f) => subjectMatches(f, subject));

class TestStream implements StreamHandle {
  readonly consumers = new Map<string, ConsumerHandle>();
  readonly storage = 'file' as const;
  msgs: StoredMsg[] = [];
  last = 0;
  readonly ackedSeqs: number[] = [];
  constructor(
    readonly name: string,
    private readonly cfg: StreamConfig,
    private readonly rt: TestRuntime,
  ) {}
  config(): StreamConfig {
    return this.cfg;
  }
  firstSeq(): number {
    return this.msgs.length > 0 ? this.msgs[0]!.seq : this.last === 0 ? 0 : this.last + 1;
  }
  lastSeq(): number {
    return this.last;
  }
  fetch(from: number, filters: readonly string[], max: number): StoredMsg[] {
    return this.msgs.filter((m) => m.seq >= from && matchAny(filters, m.subject)).slice(0, max);
  }
  countFrom(from: number, filters: readonly string[]): number {
    return this.msgs.filter((m) => m.seq >= from && matchAny(filters, m.subject)).length;
  }
  lastPerSubject(filters: readonly string[]): number[] {
    const last = new Map<string, number>();
    for (const m of this.msgs) if (matchAny(filters, m.subject)) last.set(m.subject, m.seq);
    return [...last.values()].sort((a, b) => a - b);
  }
  lastMatching(filters: readonly string[]): number {
    let best = 0;
    for (const m of this.msgs) if (matchAny(filters, m.subject)) best = m.seq;
    return best;
  }
  seqAtOrAfter(tsUs: number): number {
    return this.msgs.find((m) => m.tsUs >= tsUs)?.seq ?? this.last + 1;
  }
  getMsg(seq: number): StoredMsg | null {
    return this.msgs.find((m) => m.seq === seq) ?? null;
  }
  acked(_c: ConsumerHandle, seq: number): void {
    this.ackedSeqs.push(seq);
  }
  info(): Record<string, unknown> {
    return {};
  }
  add(subject: string, payload: string, headers = ''): number {
    const hdr = headers === '' ? Buffer.alloc(0) : Buffer.from(`NATS/1.0\r\n${headers}\r\n`);
    const raw = Buffer.concat([hdr, Buffer.from(payload)]);
    const seq = ++this.last;
    this.msgs.push({ seq, subject, hdrLen: hdr.length, raw, tsUs: this.rt.nowUs() });
    for (const c of this.consumers.values()) c.onAppended(seq);
    return seq;
  }
  purge(): void {
    this.msgs = [];
    for (const c of this.consumers.values()) c.onRemoved('all-below', this.last + 1);
  }
}

interface Got {
  subject: string;
  reply: string;
  hdr: string;
  body: string;
  to: string;
}

/** A runtime with a real router and database; commits run on the next turn, as the store's do. */
class TestRuntime implements JetStreamRuntime, ApiRouter {
  readonly router = new Router();
  readonly log = new Logger({ debug: false, trace: false, logtime: false, logtimeUtc: false });
  readonly options = { enabled: true, storeDir: '', maxMemoryStore: -1, maxFileStore: -1, syncInterval: 'always' as const };
  readonly profile = undefined;
  readonly api: ApiRouter = this;
  readonly streams = new Map<string, TestStream>();
  readonly handlers = new Map<string, ApiHandler>();
  readonly responses: Record<string, unknown>[] = [];
  private queue: [(db: Db) => void, ((err: Error | null) => void) | undefined][] = [];
  private scheduled = false;
  commits = 0;

  constructor(readonly db: Db) {}

  register(prefix: readonly string[], handler: ApiHandler): void {
    this.handlers.set(prefix.join('.'), handler);
  }
  respond(reply: string, type: string | null, body: Record<string, unknown>): void {
    this.responses.push({ reply, type, ...body });
  }
  respondError(reply: string, type: string, error: ApiError): void {
    this.responses.push({ reply, type, error });
  }
  inNextCommit(write: (db: Db) => void, done?: (err: Error | null) => void): void {
    this.queue.push([write, done]);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const q = this.queue;
      this.queue = [];
      this.db.transaction(() => {
        for (const [w] of q) w(this.db);
      })();
      this.commits++;
      for (const [, d] of q) d?.(null);
    });
  }
  publish(subject: string, reply: string, hdrLen: number, raw: Buffer, to?: string): void {
    const msg: Message = to === undefined ? { subject, reply, hdrLen: hdrLen > 0 ? hdrLen : -1, data: raw } : { subject, reply, hdrLen: hdrLen > 0 ? hdrLen : -1, data: raw, to };
    this.router.publish(msg, null);
  }
  nowUs(): number {
    return Math.floor((performance.timeOrigin + performance.now()) * 1000);
  }

  /** Call an API endpoint as the dispatcher would. */
  call(subject: string, body: unknown = '', reply = '_INBOX.api'): Record<string, unknown> | undefined {
    const tokens = subject.split('.').slice(2);
    let handler: ApiHandler | undefined;
    for (let n = tokens.length; n > 0 && handler === undefined; n--) handler = this.handlers.get(tokens.slice(0, n).join('.'));
    const before = this.responses.length;
    const req: ApiRequest = { tokens, subject, reply, data: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), hdr: null };
    handler?.(req);
    return this.responses.length > before ? this.responses[this.responses.length - 1] : undefined;
  }

  /** Wait for the next API response (durable creates answer after their commit). */
  async callAsync(subject: string, body: unknown = ''): Promise<Record<string, unknown>> {
    const before = this.responses.length;
    this.call(subject, body);
    await until(() => this.responses.length > before);
    return this.responses[before]!;
  }

  addStream(name: string, over: Partial<StreamConfig> = {}): TestStream {
    const cfg: StreamConfig = {
      name,
      subjects: [`${name.toLowerCase()}.>`],
      retention: 'limits',
      max_consumers: -1,
      max_msgs: -1,
      max_bytes: -1,
      max_age: 0,
      max_msgs_per_subject: -1,
      max_msg_size: -1,
      discard: 'old',
      storage: 'file',
      num_replicas: 1,
      duplicate_window: 120e9,
      sealed: false,
      deny_delete: false,
      deny_purge: false,
      allow_rollup_hdrs: false,
      allow_direct: false,
      mirror_direct: false,
      ...over,
    };
    const s = new TestStream(name, cfg, this);
    this.streams.set(name, s);
    return s;
  }
}

/** A subscriber on the router that records what it gets. */
class Client implements Subscriber {
  readonly kind = 'client' as const;
  readonly cid: number;
  readonly echo = true;
  readonly got: Got[] = [];
  private readonly subs = new Map<string, Subscription>();
  private static next = 1;
  constructor(private readonly router: Router) {
    this.cid = Client.next++;
  }
  sub(subject: string, queue = ''): void {
    const s: Subscription = { subject, queue, sid: subject, owner: this, msgs: 0, max: 0 };
    this.subs.set(subject, s);
    this.router.subscribe(s);
  }
  unsub(subject: string): void {
    const s = this.subs.get(subject);
    if (s !== undefined) this.router.unsubscribe(s);
    this.subs.delete(subject);
  }
  deliver(_sub: Subscription, msg: Message): void {
    const data = Buffer.from(msg.data);
    const h = msg.hdrLen > 0 ? msg.hdrLen : 0;
    this.got.push({ subject: msg.subject, reply: msg.reply, hdr: data.subarray(0, h).toString(), body: data.subarray(h).toString(), to: msg.to ?? msg.subject });
  }
  pub(subject: string, body = '', reply = ''): void {
    this.router.publish({ subject, reply, hdrLen: -1, data: Buffer.from(body) }, this);
  }
  take(): Got[] {
    return this.got.splice(0);
  }
  messages(): Got[] {
    return this.got.filter((g) => g.reply.startsWith('$JS.ACK.'));
  }
}

async function until(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const tok = (reply: string): string[] => reply.split('.');
const runtimes: TestRuntime[] = [];

function setup(): { rt: TestRuntime; s: TestStream; c: Client } {
  const db = new Database(':memory:');
  db.exec(CONSUMER_SCHEMA);
  const rt = new TestRuntime(db);
  registerConsumerApi(rt);
  const s = rt.addStream('S');
  runtimes.push(rt);
  return { rt, s, c: new Client(rt.router) };
}

afterEach(() => {
  for (const rt of runtimes.splice(0)) {
    for (const s of rt.streams.values()) for (const c of s.consumers.values()) c.stop('shutdown');
  }
});

const create = (rt: TestRuntime, name: string, config: Record<string, unknown>, stream = 'S'): Promise<Record<string, unknown>> =>
  rt.callAsync(`$JS.API.CONSUMER.CREATE.${stream}.${name}`, { stream_name: stream, config: { name, ...config }, action: 'create' });

// ---- tests ---------------------------------------------------------------------------------

describe('pull consumer', () => {
  it('delivers a batch with ack subjects counting down pending, keeping the stored subject', async () => {
    const { rt, s, c } = setup();
    for (let i = 1; i <= 3; i++) s.add('s.a', `x${i}`);
    const ci = await create(rt, 'C', { durable_name: 'C', ack_policy: 'explicit' });
    expect(ci['num_pending']).toBe(3);
    c.sub('in.1');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.C', '{"batch":2}', 'in.1');
    const got = c.take();
    expect(got.map((g) => [g.subject, g.to, g.body])).toEqual([
      ['s.a', 'in.1', 'x1'],
      ['s.a', 'in.1', 'x2'],
    ]);
    expect(tok(got[0]!.reply).filter((_, i) => i !== 7)).toEqual(['$JS', 'ACK', 'S', 'C', '1', '1', '1', '2']);
    expect(tok(got[1]!.reply).filter((_, i) => i !== 7)).toEqual(['$JS', 'ACK', 'S', 'C', '1', '2', '2', '1']);
    expect(tok(got[0]!.reply)[7]).toBe(`${s.msgs[0]!.tsUs}000`);
    const info = rt.call('$JS.API.CONSUMER.INFO.S.C')!;
    expect(info['delivered']).toMatchObject({ consumer_seq: 2, stream_seq: 2 });
    expect(info['ack_floor']).toEqual({ consumer_seq: 0, stream_seq: 0 });
    expect([info['num_ack_pending'], info['num_pending'], info['num_waiting']]).toEqual([2, 1, 0]);
  });

  it('waits for messages and serves them as they arrive', () => {
    const { rt, s, c } = setup();
    return (async () => {
      await create(rt, 'C', { durable_name: 'C', ack_policy: 'explicit' });
      c.sub('in.1');
      rt.call('$JS.API.CONSUMER.MSG.NEXT.S.C', '{"batch":2,"expires":5000000000}', 'in.1');
      expect(rt.call('$JS.API.CONSUMER.INFO.S.C')!['num_waiting']).toBe(1);
      s.add('s.a', 'late');
      expect(c.take().map((g) => g.body)).toEqual(['late']);
      s.add('s.b', 'later');
      expect(c.take().map((g) => g.body)).toEqual(['later']);
      expect(rt.call('$JS.API.CONSUMER.INFO.S.C')!['num_waiting']).toBe(0);
    })();
  });

  it('no_wait: 404 when empty, 408 after a partial batch', async () => {
    const { rt, s, c } = setup();
    await create(rt, 'C', { durable_name: 'C', ack_policy: 'explicit' });
    c.sub('in.1');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.C', '{"batch":5,"no_wait":true}', 'in.1');
    expect(c.take().map((g) => g.hdr)).toEqual(['NATS/1.0 404 No Messages\r\n\r\n']);
    s.add('s.a', 'one');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.C', '{"batch":5,"no_wait":true}', 'in.1');
    const got = c.take();
    expect(got.map((g) => g.body || g.hdr)).toEqual(['one', 'NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 4\r\nNats-Pending-Bytes: 0\r\n\r\n']);
  });

  it('expiry sends 408 with what is left, heartbeats while waiting', async () => {
    const { rt, c } = setup();
    await create(rt, 'C', { durable_name: 'C', ack_policy: 'explicit' });
    c.sub('in.1');
    const t0 = Date.now();
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.C', '{"batch":5,"expires":400000000,"idle_heartbeat":150000000}', 'in.1');
    await until(() => c.got.some((g) => g.hdr.includes('408')));
    const got = c.take();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(390);
    const hbs = got.filter((g) => g.hdr.startsWith('NATS/1.0 100 Idle Heartbeat'));
    expect(hbs.length).toBe(2);
    expect(hbs[0]!.hdr).toBe('NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\nNats-Last-Stream: 0\r\n\r\n');
    expect(got[got.length - 1]!.hdr).toBe('NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\nNats-Pending-Bytes: 0\r\n\r\n');
  });

  it('max_bytes: 409 when the next message does not fit', async () => {
    const { rt, s, c } = setup();
    await create(rt, 'C', { durable_name: 'C', ack_policy: 'none' });
    s.add('s.a', 'abcd');
    s.add('s.a', 'abcd');
    c.sub('in.1');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.C', '{"batch":5,"max_bytes":60,"expires":1000000000}', 'in.1');
    const got = c.take();
    expect(got).toHaveLength(2);
    const size = got[0]!.subject.length + got[0]!.reply.length + 4;
    expect(got[1]!.hdr).toBe(`NATS/1.0 409 Message Size Exceeds MaxBytes\r\nNats-Pending-Messages: 4\r\nNats-Pending-Bytes: ${60 - size}\r\n\r\n`);
  });

  it('limits: max_batch, max_expires, max_bytes, max_waiting, push based, bad request', async () => {
    const { rt, c } = setup();
    await create(rt, 'C', { durable_name: 'C', ack_policy: 'explicit', max_batch: 10, max_expires: 5e9, max_bytes: 1000, max_waiting: 1 });
    await create(rt, 'P', { durable_name: 'P', deliver_subject: 'dp' });
    c.sub('in.>');
    const next = (body: string, inbox: string): void => void rt.call('$JS.API.CONSUMER.MSG.NEXT.S.C', body, inbox);
    next('{"batch":11}', 'in.1');
    next('{"batch":1,"expires":6000000000}', 'in.2');
    next('{"batch":1,"max_bytes":2000}', 'in.3');
    next('{"batch":1,"idle_heartbeat":1000000000,"expires":1500000000}', 'in.4');
    next('{bad', 'in.5');
    next('{"batch":1,"expires":3000000000}', 'in.6');
    next('{"batch":1,"expires":3000000000}', 'in.7');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.P', '', 'in.8');
    const got = c.take().map((g) => [g.to, g.hdr.split('\r\n')[0]]);
    expect(got).toEqual([
      ['in.1', 'NATS/1.0 409 Exceeded MaxRequestBatch of 10'],
      ['in.2', 'NATS/1.0 409 Exceeded MaxRequestExpires of 5s'],
      ['in.3', 'NATS/1.0 409 Exceeded MaxRequestMaxBytes of 1000'],
      ['in.4', 'NATS/1.0 400 Bad Request - heartbeat value too large'],
      ['in.5', expect.stringMatching(/^NATS\/1.0 400 Bad Request - /)],
      ['in.7', 'NATS/1.0 409 Exceeded MaxWaiting'],
      ['in.8', 'NATS/1.0 409 Consumer is push based'],
    ]);
  });

  it('drops a waiting request whose requester went away', async () => {
    const { rt, s, c } = setup();
    await create(rt, 'C', { durable_name: 'C', ack_policy: 'explicit' });
    c.sub('in.1');
    c.sub('in.2');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.C', '{"batch":1,"expires":3000000000}', 'in.1');
    c.unsub('in.1');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.C', '{"batch":1,"expires":3000000000}', 'in.2');
    s.add('s.a', 'a7');
    expect(c.take().map((g) => [g.to, g.body])).toEqual([['in.2', 'a7']]);
  });

  it('a deleted consumer answers its waiting pulls with 409 Consumer Deleted', async () => {
    const { rt, c } = setup();
    await create(rt, 'D', { durable_name: 'D', ack_policy: 'explicit' });
    c.sub('in.1');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.D', '{"batch":10,"expires":3000000000}', 'in.1');
    const res = await rt.callAsync('$JS.API.CONSUMER.DELETE.S.D');
    expect(res).toMatchObject({ type: 'consumer_delete_response', success: true });
    expect(c.take().map((g) => g.hdr)).toEqual(['NATS/1.0 409 Consumer Deleted\r\n\r\n']);
    expect(rt.call('$JS.API.CONSUMER.INFO.S.D')!['error']).toMatchObject({ err_code: 10014 });
  });
});

describe('acks', () => {
  async function delivered(n: number, config: Record<string, unknown> = {}) {
    const env = setup();
    for (let i = 1; i <= n; i++) env.s.add('s.a', `m${i}`);
    await create(env.rt, 'C', { durable_name: 'C', ack_policy: 'explicit', ...config });
    env.c.sub('in.1');
    env.c.sub('ackr');
    env.rt.call('$JS.API.CONSUMER.MSG.NEXT.S.C', `{"batch":${n}}`, 'in.1');
    const acks = env.c.take().map((g) => g.reply);
    return { ...env, acks };
  }

  it('+ACK, -NAK, +TERM, +WPI with ackAck replies; NAK comes back first', async () => {
    const { rt, c, acks } = await delivered(5);
    c.pub(acks[0]!, '+ACK', 'ackr');
    c.pub(acks[1]!, '-NAK', 'ackr');
    c.pub(acks[2]!, '+TERM because', '');
    c.pub(acks[3]!, '+WPI', 'ackr');
    expect(c.take().map((g) => [g.subject, g.body])).toEqual([
      ['ackr', ''],
      ['ackr', ''],
      ['ackr', ''],
    ]);
    const info = rt.call('$JS.API.CONSUMER.INFO.S.C')!;
    expect(info['ack_floor']).toMatchObject({ consumer_seq: 1, stream_seq: 1 });
    expect(info['num_ack_pending']).toBe(3);
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.C', '{"batch":1}', 'in.1');
    const again = c.take();
    expect(again.map((g) => g.body)).toEqual(['m2']);
    expect(tok(again[0]!.reply).slice(4, 7)).toEqual(['2', '2', '6']);
    expect(rt.call('$JS.API.CONSUMER.INFO.S.C')!['num_redelivered']).toBe(1);
  });

  it('redelivers after ack_wait, -NAK with delay later, stops at max_deliver', async () => {
    const { rt, c, acks } = await delivered(2, { ack_wait: 150_000_000, max_deliver: 2 });
    c.pub(acks[1]!, '-NAK {"delay":400000000}');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.C', '{"batch":10,"expires":1000000000}', 'in.1');
    await until(() => c.messages().length >= 2);
    const got = c.take();
    expect(got.map((g) => [g.body, tok(g.reply)[4]])).toEqual([
      ['m1', '2'],
      ['m2', '2'],
    ]);
    await until(() => rt.call('$JS.API.CONSUMER.INFO.S.C')!['num_ack_pending'] === 0, 2000);
    const info = rt.call('$JS.API.CONSUMER.INFO.S.C')!;
    expect(info['num_redelivered']).toBe(2);
    expect(c.messages()).toHaveLength(0);
  });

  it('+NXT acks and pulls the next messages to the ack reply', async () => {
    const { rt, s, c, acks } = await delivered(1);
    s.add('s.a', 'm2');
    s.add('s.a', 'm3');
    c.sub('nx');
    c.pub(acks[0]!, '+NXT {"batch":2}', 'nx');
    expect(c.take().map((g) => [g.to, g.body])).toEqual([
      ['nx', 'm2'],
      ['nx', 'm3'],
    ]);
    expect(rt.call('$JS.API.CONSUMER.INFO.S.C')!['ack_floor']).toMatchObject({ stream_seq: 1 });
  });

  it('ack_policy all and max_ack_pending', async () => {
    const { rt, s, c } = setup();
    for (let i = 1; i <= 6; i++) s.add('s.a', `m${i}`);
    await create(rt, 'A', { durable_name: 'A', ack_policy: 'all', max_ack_pending: 3 });
    c.sub('in.1');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.A', '{"batch":6,"expires":2000000000}', 'in.1');
    const first = c.take();
    expect(first.map((g) => g.body)).toEqual(['m1', 'm2', 'm3']);
    c.pub(first[1]!.reply);
    expect(c.take().map((g) => g.body)).toEqual(['m4', 'm5']);
    const info = rt.call('$JS.API.CONSUMER.INFO.S.A')!;
    expect(info['ack_floor']).toMatchObject({ consumer_seq: 2, stream_seq: 2 });
    expect(info['num_ack_pending']).toBe(3);
  });
});

describe('deliver policies', () => {
  it('last_per_subject sends each subject newest in stream order, then new ones', async () => {
    const { rt, s, c } = setup();
    for (const [subj, v] of [['s.a', 'a1'], ['s.b', 'b1'], ['s.a', 'a2'], ['s.c', 'c1'], ['s.b', 'b2']]) s.add(subj!, v!);
    const ci = await create(rt, 'L', { deliver_policy: 'last_per_subject', filter_subject: 's.>', ack_policy: 'none' });
    expect(ci['delivered']).toMatchObject({ consumer_seq: 0, stream_seq: 2 });
    expect(ci['num_pending']).toBe(3);
    c.sub('in.1');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.L', '{"batch":10,"expires":2000000000}', 'in.1');
    s.add('s.d', 'd1');
    expect(c.take().map((g) => [g.body, tok(g.reply)[5], tok(g.reply)[8]])).toEqual([
      ['a2', '3', '2'],
      ['c1', '4', '1'],
      ['b2', '5', '0'],
      ['d1', '6', '0'],
    ]);
  });

  it('new, last, by_start_sequence clamp and start where nats-server does', async () => {
    const { rt, s } = setup();
    for (let i = 0; i < 5; i++) s.add(i % 2 === 0 ? 's.a' : 's.b', 'x');
    const d = async (name: string, cfg: Record<string, unknown>) => (await create(rt, name, cfg))['delivered'];
    expect(await d('n', { deliver_policy: 'new' })).toMatchObject({ stream_seq: 5 });
    expect(await d('l', { deliver_policy: 'last', filter_subject: 's.b' })).toMatchObject({ stream_seq: 3 });
    expect(await d('b', { deliver_policy: 'by_start_sequence', opt_start_seq: 100 })).toMatchObject({ stream_seq: 5 });
    expect(await d('b2', { deliver_policy: 'by_start_sequence', opt_start_seq: 3 })).toMatchObject({ stream_seq: 2 });
    s.purge();
    expect(await d('a', { deliver_policy: 'all' })).toMatchObject({ stream_seq: 5 });
    expect(rt.call('$JS.API.CONSUMER.INFO.S.b2')!['ack_floor']).toMatchObject({ stream_seq: 5 });
  });

  it('headers_only delivers the headers with Nats-Msg-Size', async () => {
    const { rt, s, c } = setup();
    s.add('s.a', 'hello', 'Foo: bar\r\n');
    s.add('s.b', 'kvstyle');
    await create(rt, 'H', { headers_only: true });
    c.sub('in.1');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.H', '2', 'in.1');
    expect(c.take().map((g) => [g.hdr, g.body])).toEqual([
      ['NATS/1.0\r\nFoo: bar\r\nNats-Msg-Size: 5\r\n\r\n', ''],
      ['NATS/1.0\r\nNats-Msg-Size: 7\r\n\r\n', ''],
    ]);
  });
});

describe('push consumer', () => {
  it('waits for interest, then delivers to the deliver subject with the stored subject', async () => {
    const { rt, s, c } = setup();
    s.add('s.a', 'one');
    const ci = await create(rt, 'P', { deliver_subject: 'dl.1' });
    expect(ci['push_bound']).toBeUndefined();
    c.sub('dl.1');
    await until(() => c.got.length === 1);
    expect(c.take().map((g) => [g.subject, g.to, g.body])).toEqual([['s.a', 'dl.1', 'one']]);
    expect(rt.call('$JS.API.CONSUMER.INFO.S.P')!['push_bound']).toBe(true);
    s.add('s.b', 'two');
    expect(c.take().map((g) => g.body)).toEqual(['two']);
  });

  it('flow control: a request after 1 MiB, stalls at 2 MiB, heartbeats name the stall, a response resumes', async () => {
    const { rt, s, c } = setup();
    const big = 'z'.repeat(65536);
    for (let i = 0; i < 40; i++) s.add('s.a', big);
    await create(rt, 'F', { deliver_subject: 'dl.f', flow_control: true, idle_heartbeat: 200_000_000 });
    c.sub('dl.f');
    await until(() => c.got.some((g) => g.hdr.includes('Nats-Consumer-Stalled')));
    const got = c.take();
    const fcAt = got.findIndex((g) => g.hdr === 'NATS/1.0 100 FlowControl Request\r\n\r\n');
    expect(fcAt).toBe(16);
    const fc = got[fcAt]!.reply;
    expect(fc).toMatch(/^\$JS\.FC\.S\.F\.[A-Za-z0-9]{4}$/);
    expect(got.filter((g) => g.body.length > 0)).toHaveLength(32);
    const hb = got[got.length - 1]!;
    expect(hb.reply).toBe('');
    expect(hb.hdr).toBe(`NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 32\r\nNats-Last-Stream: 32\r\nNats-Consumer-Stalled: ${fc}\r\n\r\n`);
    c.pub(fc);
    await until(() => c.got.filter((g) => g.body.length > 0).length >= 8);
    expect(rt.call('$JS.API.CONSUMER.INFO.S.F')!['delivered']).toMatchObject({ consumer_seq: 40 });
  });

  it('deliver_group: one member gets each message', async () => {
    const { rt, s } = setup();
    const a = new Client(rt.router);
    const b = new Client(rt.router);
    await create(rt, 'Q', { deliver_subject: 'dq', deliver_group: 'g' });
    a.sub('dq', 'g');
    b.sub('dq', 'g');
    for (let i = 0; i < 20; i++) s.add('s.a', `m${i}`);
    await until(() => a.got.length + b.got.length === 20);
    expect(a.got.length + b.got.length).toBe(20);
  });
});

describe('lifecycle and persistence', () => {
  it('an ephemeral with no interest is deleted after inactive_threshold', async () => {
    const { rt, s } = setup();
    await create(rt, 'E', { deliver_subject: 'nobody', inactive_threshold: 200_000_000 });
    expect(s.consumers.has('E')).toBe(true);
    await until(() => !s.consumers.has('E'), 2000);
  });

  /** The database as a crash would leave it: an independent copy of what is committed now. */
  function crashCopy(rt: TestRuntime): TestRuntime {
    const rt2 = new TestRuntime(new Database(rt.db.serialize()));
    runtimes.push(rt2);
    registerConsumerApi(rt2);
    const s = rt.streams.get('S')!;
    const s2 = rt2.addStream('S');
    s2.msgs = s.msgs;
    s2.last = s.last;
    restoreConsumers(rt2, s2);
    return rt2;
  }

  async function deliveredThreeAckedTwo() {
    const env = setup();
    for (let i = 1; i <= 4; i++) env.s.add('s.a', `m${i}`);
    await create(env.rt, 'D', { durable_name: 'D', ack_policy: 'explicit', ack_wait: 200_000_000 });
    env.c.sub('in.1');
    env.rt.call('$JS.API.CONSUMER.MSG.NEXT.S.D', '{"batch":3}', 'in.1');
    const acks = env.c.take().map((g) => g.reply);
    env.c.pub(acks[0]!);
    env.c.pub(acks[2]!);
    return env;
  }

  it('a durable consumer resumes at its ack floor after a crash, unacked ones redelivered', async () => {
    const { rt } = await deliveredThreeAckedTwo();
    // The unacked delivery is written once it is older than the write delay.
    await until(() => (rt.db.prepare('SELECT count(*) AS n FROM js_consumer_pending').get() as { n: number }).n === 1);
    expect(rt.db.prepare('SELECT sseq, dc FROM js_consumer_pending ORDER BY sseq').all()).toEqual([{ sseq: 2, dc: 1 }]);
    const rt2 = crashCopy(rt);
    const info = rt2.call('$JS.API.CONSUMER.INFO.S.D')!;
    expect(info['delivered']).toMatchObject({ consumer_seq: 3, stream_seq: 3 });
    expect(info['ack_floor']).toMatchObject({ consumer_seq: 1, stream_seq: 1 });
    expect([info['num_ack_pending'], info['num_pending']]).toEqual([1, 1]);
    const c2 = new Client(rt2.router);
    c2.sub('in.2');
    rt2.call('$JS.API.CONSUMER.MSG.NEXT.S.D', '{"batch":5,"expires":2000000000}', 'in.2');
    await until(() => c2.messages().length >= 2);
    expect(c2.take().map((g) => [g.body, tok(g.reply)[4]])).toEqual([
      ['m4', '1'],
      ['m2', '2'],
    ]);
  });

  it('a crash before young deliveries were written redelivers from the oldest unacked one', async () => {
    const { rt } = await deliveredThreeAckedTwo();
    const commits = rt.commits;
    await until(() => rt.commits > commits);
    expect(rt.db.prepare('SELECT count(*) AS n FROM js_consumer_pending').get()).toEqual({ n: 0 });
    expect(rt.db.prepare('SELECT next_seq, asflr FROM js_consumer').get()).toEqual({ next_seq: 2, asflr: 1 });
    const rt2 = crashCopy(rt);
    const info = rt2.call('$JS.API.CONSUMER.INFO.S.D')!;
    expect(info['ack_floor']).toMatchObject({ stream_seq: 1 });
    expect([info['num_ack_pending'], info['num_pending']]).toEqual([0, 3]);
    const c2 = new Client(rt2.router);
    c2.sub('in.2');
    rt2.call('$JS.API.CONSUMER.MSG.NEXT.S.D', '{"batch":5,"no_wait":true}', 'in.2');
    expect(c2.messages().map((g) => g.body)).toEqual(['m2', 'm3', 'm4']);
  });

  it('a clean shutdown writes every pending delivery', async () => {
    const { rt, s } = await deliveredThreeAckedTwo();
    for (const cons of s.consumers.values()) cons.stop('shutdown');
    const commits = rt.commits;
    await until(() => rt.commits > commits);
    expect(rt.db.prepare('SELECT sseq FROM js_consumer_pending').all()).toEqual([{ sseq: 2 }]);
    expect(rt.db.prepare('SELECT next_seq FROM js_consumer').get()).toEqual({ next_seq: 4 });
  });

  it('deleting a durable removes its rows', async () => {
    const { rt, s, c } = setup();
    s.add('s.a', 'm1');
    await create(rt, 'D', { durable_name: 'D', ack_policy: 'explicit' });
    c.sub('in.1');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.S.D', '1', 'in.1');
    await until(() => (rt.db.prepare('SELECT count(*) AS n FROM js_consumer_pending').get() as { n: number }).n === 1);
    await rt.callAsync('$JS.API.CONSUMER.DELETE.S.D');
    expect(rt.db.prepare('SELECT count(*) AS n FROM js_consumer').get()).toEqual({ n: 0 });
    expect(rt.db.prepare('SELECT count(*) AS n FROM js_consumer_pending').get()).toEqual({ n: 0 });
  });

  it('interest retention hears of acks, ack none counts as acked on delivery', async () => {
    const { rt, c } = setup();
    const s = rt.addStream('I', { retention: 'interest' });
    s.add('i.a', 'x');
    s.add('i.a', 'y');
    await create(rt, 'N', { ack_policy: 'none' }, 'I');
    c.sub('in.1');
    rt.call('$JS.API.CONSUMER.MSG.NEXT.I.N', '2', 'in.1');
    expect(s.ackedSeqs).toEqual([1, 2]);
    const n = s.consumers.get('N')!;
    expect(n.needs(2, 'i.a')).toBe(false);
    expect(n.needs(3, 'i.a')).toBe(true);
  });
});

describe('API', () => {
  it('names and list are sorted and paged; unknown stream keeps the paging fields', async () => {
    const { rt } = setup();
    for (const n of ['b', 'a', 'C']) await create(rt, n, { durable_name: n });
    const names = rt.call('$JS.API.CONSUMER.NAMES.S', '')!;
    expect(names).toMatchObject({ type: 'consumer_names_response', total: 3, offset: 0, limit: 1024, consumers: ['C', 'a', 'b'] });
    expect(rt.call('$JS.API.CONSUMER.NAMES.S', { offset: 2 })!['consumers']).toEqual(['b']);
    const list = rt.call('$JS.API.CONSUMER.LIST.S', '')!;
    expect((list['consumers'] as { name: string }[]).map((x) => x.name)).toEqual(['C', 'a', 'b']);
    expect(rt.call('$JS.API.CONSUMER.NAMES.X', '')!['error']).toMatchObject({ err_code: 10059 });
  });

  it('create is idempotent, action create refuses a different config, update needs an existing one', async () => {
    const { rt } = setup();
    const a = await create(rt, 'D1', { durable_name: 'D1', ack_policy: 'explicit' });
    const b = await create(rt, 'D1', { durable_name: 'D1', ack_policy: 'explicit' });
    expect(b['created']).toBe(a['created']);
    expect((await create(rt, 'D1', { durable_name: 'D1', ack_policy: 'explicit', max_deliver: 5 }))['error']).toMatchObject({ err_code: 10148 });
    const up = await rt.callAsync('$JS.API.CONSUMER.CREATE.S.D1', {
      stream_name: 'S',
      config: { durable_name: 'D1', ack_policy: 'explicit', max_deliver: 7 },
      action: 'update',
    });
    expect(up['config']).toMatchObject({ max_deliver: 7 });
    const missing = await rt.callAsync('$JS.API.CONSUMER.CREATE.S.D2', { stream_name: 'S', config: { durable_name: 'D2' }, action: 'update' });
    expect(missing['error']).toMatchObject({ err_code: 10149 });
    const mismatch = await rt.callAsync('$JS.API.CONSUMER.CREATE.S.x', { stream_name: 'X', config: {} });
    expect(mismatch['error']).toMatchObject({ err_code: 10056 });
    expect(rt.call('$JS.API.CONSUMER.INFO.S.D1', 'x')!['error']).toMatchObject({ err_code: 10038 });
    expect(rt.call('$JS.API.CONSUMER.INFO.S.D1.extra', '')).toBeUndefined();
    expect(rt.call('$JS.API.CONSUMER.MSG.NEXT.S.nope', '1', 'in.9')).toBeUndefined();
  });
});
