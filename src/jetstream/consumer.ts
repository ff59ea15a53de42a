/**
 * JetStream consumers as the runtime sees them: the CONSUMER.* API handlers, the internal
 * subscriber that takes acks (`$JS.ACK.<stream>.<consumer>.>`) and flow control responses (`$JS.FC...`), interest
 * tracking for push deliver subjects, and the restore of durable consumers at startup.
 */
import type { Message } from '../core/message.js';
import type { Subscriber, Subscription } from '../core/subscription.js';
import { subjectHasWildcard, subjectMatches } from '../core/subject.js';
import { ACK_PREFIX, parseAckBody, parseAckSubject } from './ack.js';
import {
  buildConsumerConfig,
  checkAgainstStream,
  checkUpdate,
  isApiError,
  parseCreateRequest,
  randomConsumerName,
  resolveCreateTarget,
  sameConfig,
} from './consumer-config.js';
import type { PeerConsumer } from './consumer-config.js';
import { Consumer, isDirectConsumer, publicConsumerCount } from './consumer-engine.js';
import type { ConsumerHost } from './consumer-engine.js';
import { JsErrors as E } from './errors.js';
import { loadConsumers, loadPending } from './consumer-store.js';
import { formatTimeUs } from './consumer-time.js';
import { interestSubjects } from './stream-origin.js';
import type { ApiError, ApiRequest, ConsumerConfig, JetStreamRuntime, StreamHandle } from './types.js';

export { CONSUMER_SCHEMA } from './consumer-store.js';
export { Consumer, isDirectConsumer, publicConsumerCount } from './consumer-engine.js';

const CREATE_RESPONSE = 'consumer_create_response';
const INFO_RESPONSE = 'consumer_info_response';
const DELETE_RESPONSE = 'consumer_delete_response';
const NAMES_RESPONSE = 'consumer_names_response';
const LIST_RESPONSE = 'consumer_list_response';
const NAMES_LIMIT = 1024;
const LIST_LIMIT = 256;
const ADVISORY_PREFIX = '$JS.EVENT.ADVISORY.CONSUMER.';
const FC_PREFIX = '$JS.FC.';

/** Without the runtime's own ids, internal clients take negative ones: never a real connection's. */
let nextInternalCid = -1000;

/**
 * Everything the consumers of one runtime share: the ack/flow-control subscriber and the index
 * of push deliver subjects for interest changes.
 */
class ConsumerHub implements ConsumerHost, Subscriber {
  readonly kind = 'internal' as const;
  readonly cid: number;
  readonly echo = true;
  /** Push consumers by deliver subject. */
  private readonly pushSubjects = new Map<string, Set<Consumer>>();
  /**
   * Each consumer's `$JS.ACK.<stream>.<consumer>.>` and `$JS.FC.<stream>.<consumer>.>`, as
   * nats-server subscribes them: interest in exactly the acks of consumers that exist, so a
   * leaf link asks its hub only for those and not for every ack of every hub consumer.
   */
  private readonly ackSubs = new Map<Consumer, [Subscription, Subscription]>();

  constructor(readonly rt: JetStreamRuntime) {
    this.cid = rt.nextCid !== undefined ? rt.nextCid() : nextInternalCid--;
    rt.router.onInterest((sub, added) => this.onInterest(sub, added));
  }

  watchAckSubjects(c: Consumer, on: boolean): void {
    const router = this.rt.router;
    if (on) {
      if (this.ackSubs.has(c)) return;
      const tail = `${c.stream.name}.${c.name}.>`;
      const subs: [Subscription, Subscription] = [
        { subject: ACK_PREFIX + tail, queue: '', sid: 'js-ack', owner: this, msgs: 0, max: 0 },
        { subject: FC_PREFIX + tail, queue: '', sid: 'js-fc', owner: this, msgs: 0, max: 0 },
      ];
      this.ackSubs.set(c, subs);
      router.subscribe(subs[0]);
      router.subscribe(subs[1]);
      return;
    }
    const subs = this.ackSubs.get(c);
    if (subs === undefined) return;
    this.ackSubs.delete(c);
    router.unsubscribe(subs[0]);
    router.unsubscribe(subs[1]);
  }

  // ---- Subscriber: acks and flow control responses ------------------------------------------

  deliver(sub: Subscription, msg: Message): void {
    if (sub.sid === 'js-ack') this.onAck(msg);
    else this.onFlowControl(msg);
  }

  private consumerOf(stream: string, name: string): Consumer | null {
    const c = this.rt.streams.get(stream)?.consumers.get(name);
    return c instanceof Consumer ? c : null;
  }

  private onAck(msg: Message): void {
    const t = parseAckSubject(msg.subject);
    if (t === null) return;
    const c = this.consumerOf(t.stream, t.consumer);
    if (c === null) return;
    const data = msg.hdrLen > 0 ? msg.data.subarray(msg.hdrLen) : msg.data;
    const body = parseAckBody(data);
    if (body === null) return;
    c.processAck(t, body, msg.reply);
  }

  private onFlowControl(msg: Message): void {
    const s = msg.subject;
    const a = s.indexOf('.', FC_PREFIX.length);
    const b = a < 0 ? -1 : s.indexOf('.', a + 1);
    if (b < 0) return;
    this.consumerOf(s.slice(FC_PREFIX.length, a), s.slice(a + 1, b))?.processFlowControl(s);
  }

  // ---- push interest --------------------------------------------------------------------------

  watchDeliverSubject(c: Consumer, on: boolean): void {
    const subject = c.config.deliver_subject;
    if (subject === undefined || subject === '') return;
    let set = this.pushSubjects.get(subject);
    if (on) {
      if (set === undefined) this.pushSubjects.set(subject, (set = new Set()));
      set.add(c);
    } else if (set !== undefined) {
      set.delete(c);
      if (set.size === 0) this.pushSubjects.delete(subject);
    }
  }

  private onInterest(sub: Subscription, _added: boolean): void {
    if (this.pushSubjects.size === 0 || sub.owner === this) return;
    if (!subjectHasWildcard(sub.subject)) {
      const set = this.pushSubjects.get(sub.subject);
      if (set !== undefined) for (const c of set) c.interestChanged();
      return;
    }
    for (const [subject, set] of this.pushSubjects) {
      if (subjectMatches(sub.subject, subject)) for (const c of set) c.interestChanged();
    }
  }

  // ---- advisories -----------------------------------------------------------------------------

  advisory(kind: string, c: Consumer, body: Record<string, unknown>): void {
    const subject = `${ADVISORY_PREFIX}${kind}.${c.stream.name}.${c.name}`;
    if (!this.rt.router.index.hasInterest(subject)) return;
    const type = ADVISORY_TYPES[kind] ?? 'consumer_action';
    const payload = {
      type: `io.nats.jetstream.advisory.v1.${type}`,
      id: randomId(),
      timestamp: formatTimeUs(this.rt.nowUs()),
      stream: c.stream.name,
      consumer: c.name,
      ...body,
    };
    this.rt.publish(subject, '', 0, Buffer.from(JSON.stringify(payload)));
  }

  // ---- API ----------------------------------------------------------------------------------

  create(req: ApiRequest): void {
    const tokens = req.tokens;
    const durableForm = tokens[1] === 'DURABLE';
    if (durableForm ? tokens[2] !== 'CREATE' || tokens.length !== 5 : tokens.length < 3) return;
    const streamName = tokens[durableForm ? 3 : 2]!;
    const parsed = parseCreateRequest(req.data);
    if (isApiError(parsed)) return this.fail(req, CREATE_RESPONSE, parsed);
    if (parsed.stream_name !== streamName) return this.fail(req, CREATE_RESPONSE, E.streamMismatch());
    const stream = this.rt.streams.get(streamName);
    if (stream === undefined) return this.fail(req, CREATE_RESPONSE, E.streamNotFound());
    const target = resolveCreateTarget(tokens, parsed.config);
    if (target === null) return;
    if (isApiError(target)) return this.fail(req, CREATE_RESPONSE, target);
    let name = target.name;
    if (name === null) {
      do name = randomConsumerName();
      while (stream.consumers.has(name));
    }
    const streamCfg = stream.config();
    // A filter may select what the stream's mirror or sources bring in, not only its own subjects.
    const cfg = buildConsumerConfig(parsed.config, name, target.durable, streamCfg, interestSubjects(streamCfg, this.rt.streams));
    if (isApiError(cfg)) return this.fail(req, CREATE_RESPONSE, cfg);
    const existing = stream.consumers.get(name);
    if (existing !== undefined && !(existing instanceof Consumer)) return this.fail(req, CREATE_RESPONSE, E.consumerNameExists());
    const peersErr = checkAgainstStream(cfg, streamCfg, peersOf(stream), existing === undefined, publicConsumerCount(stream.consumers.values()));
    if (peersErr !== null) return this.fail(req, CREATE_RESPONSE, peersErr);

    if (existing instanceof Consumer) {
      if (sameConfig(existing.config, cfg)) return this.respondInfo(req.reply, CREATE_RESPONSE, existing);
      if (parsed.action === 'create') return this.fail(req, CREATE_RESPONSE, E.consumerAlreadyExists());
      const err = checkUpdate(existing.config, cfg, existing.pushBound);
      if (err !== null) return this.fail(req, CREATE_RESPONSE, err);
      existing.update(cfg);
      existing.requestFlush(() => this.respondInfo(req.reply, CREATE_RESPONSE, existing));
      return;
    }
    if (parsed.action === 'update') return this.fail(req, CREATE_RESPONSE, E.consumerDoesNotExist());
    const c = new Consumer(this, stream, name, cfg, null);
    stream.consumers.set(name, c);
    c.start();
    this.advisory('CREATED', c, { action: 'create' });
    // A durable consumer is answered once its row is committed: it survives a crash from then on.
    c.requestFlush((err) => {
      if (err !== null) this.rt.log.error(`JetStream consumer '${streamName} > ${name}': could not be saved: ${err.message}`);
      this.respondInfo(req.reply, CREATE_RESPONSE, c);
      c.kick();
    });
  }

  info(req: ApiRequest): void {
    if (req.tokens.length !== 4) return;
    if (req.data.length > 0) return this.fail(req, INFO_RESPONSE, E.notEmptyRequest());
    const found = this.lookup(req, INFO_RESPONSE);
    if (found !== null) this.respondInfo(req.reply, INFO_RESPONSE, found);
  }

  delete(req: ApiRequest): void {
    if (req.tokens.length !== 4) return;
    if (req.data.length > 0) return this.fail(req, DELETE_RESPONSE, E.notEmptyRequest());
    const c = this.lookup(req, DELETE_RESPONSE);
    if (c === null) return;
    c.remove();
    this.rt.inNextCommit(
      () => undefined,
      () => this.rt.api.respond(req.reply, DELETE_RESPONSE, { success: true }),
    );
  }

  names(req: ApiRequest, list: boolean): void {
    if (req.tokens.length !== 3) return;
    const type = list ? LIST_RESPONSE : NAMES_RESPONSE;
    // nats-server keeps the (empty) paging fields beside these errors.
    const empty = { total: 0, offset: 0, limit: 0, consumers: [] };
    const offset = readOffset(req.data);
    if (offset === null) return this.rt.api.respondError(req.reply, type, E.invalidJson(), empty);
    const stream = this.rt.streams.get(req.tokens[2]!);
    if (stream === undefined) return this.rt.api.respondError(req.reply, type, E.streamNotFound(), empty);
    // Direct consumers (those feeding mirrors and sources) are not listed, as in nats-server.
    const names: string[] = [];
    for (const [n, c] of stream.consumers) if (!isDirectConsumer(c)) names.push(n);
    names.sort(byBytes);
    const limit = list ? LIST_LIMIT : NAMES_LIMIT;
    const page = names.slice(offset, offset + limit);
    const body: Record<string, unknown> = { total: names.length, offset, limit };
    body['consumers'] = list ? page.map((n) => stream.consumers.get(n)!.info()) : page;
    this.rt.api.respond(req.reply, type, body);
  }

  next(req: ApiRequest): void {
    if (req.tokens.length !== 5) return;
    // nats-server's pull endpoint is the consumer's own subscription: unknown ones get no reply.
    const c = this.consumerOf(req.tokens[3]!, req.tokens[4]!);
    if (c === null) return;
    c.processPull(req.reply, req.data);
  }

  private lookup(req: ApiRequest, type: string): Consumer | null {
    const stream = this.rt.streams.get(req.tokens[2]!);
    if (stream === undefined) {
      this.fail(req, type, E.streamNotFound());
      return null;
    }
    const c = stream.consumers.get(req.tokens[3]!);
    if (!(c instanceof Consumer)) {
      this.fail(req, type, E.consumerNotFound());
      return null;
    }
    return c;
  }

  private respondInfo(reply: string, type: string, c: Consumer): void {
    this.rt.api.respond(reply, type, c.info());
  }

  private fail(req: ApiRequest, type: string, err: ApiError): void {
    this.rt.api.respondError(req.reply, type, err);
  }

  // ---- startup ------------------------------------------------------------------------------

  restore(stream: StreamHandle): void {
    if (stream.storage !== 'file') return;
    for (const row of loadConsumers(this.rt.db, stream.name)) {
      let config: ConsumerConfig;
      try {
        config = JSON.parse(row.config) as ConsumerConfig;
      } catch {
        this.rt.log.error(`JetStream consumer '${stream.name} > ${row.name}': stored config is unreadable, skipped`);
        continue;
      }
      const c = new Consumer(this, stream, row.name, config, { row, pending: loadPending(this.rt.db, stream.name, row.name) });
      stream.consumers.set(row.name, c);
      c.start();
      c.kick();
    }
  }
}

const ADVISORY_TYPES: Record<string, string> = {
  CREATED: 'consumer_action',
  DELETED: 'consumer_action',
  MAX_DELIVERIES: 'max_deliver',
  MSG_TERMINATED: 'terminated',
};

function peersOf(stream: StreamHandle): PeerConsumer[] {
  const out: PeerConsumer[] = [];
  for (const c of stream.consumers.values()) if (c instanceof Consumer) out.push({ name: c.name, config: c.config });
  return out;
}

function byBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `{"offset":n}` or an empty body; null when the body is not JSON. */
function readOffset(data: Uint8Array): number | null {
  if (data.length === 0) return 0;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = (v as Record<string, unknown>)['offset'];
  if (o === undefined || o === null) return 0;
  if (typeof o !== 'number' || !Number.isInteger(o)) return null;
  return Math.max(0, o);
}

const ID_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function randomId(): string {
  let s = '';
  for (let i = 0; i < 22; i++) s += ID_ALPHABET[Math.floor(Math.random() * ID_ALPHABET.length)];
  return s;
}

const hubs = new WeakMap<JetStreamRuntime, ConsumerHub>();

function hubOf(rt: JetStreamRuntime): ConsumerHub {
  let hub = hubs.get(rt);
  if (hub === undefined) hubs.set(rt, (hub = new ConsumerHub(rt)));
  return hub;
}

/** Register the CONSUMER.* handlers on rt.api. */
export function registerConsumerApi(rt: JetStreamRuntime): void {
  const hub = hubOf(rt);
  rt.api.register(['CONSUMER', 'CREATE'], (req) => hub.create(req));
  rt.api.register(['CONSUMER', 'DURABLE', 'CREATE'], (req) => hub.create(req));
  rt.api.register(['CONSUMER', 'INFO'], (req) => hub.info(req));
  rt.api.register(['CONSUMER', 'DELETE'], (req) => hub.delete(req));
  rt.api.register(['CONSUMER', 'NAMES'], (req) => hub.names(req, false));
  rt.api.register(['CONSUMER', 'LIST'], (req) => hub.names(req, true));
  rt.api.register(['CONSUMER', 'MSG', 'NEXT'], (req) => hub.next(req));
}

/** Recreate the durable consumers of `stream` from the file database and start them. */
export function restoreConsumers(rt: JetStreamRuntime, stream: StreamHandle): void {
  hubOf(rt).restore(stream);
}
