/**
 * The MQTT side of the server: the session registry (takeover, persistence, expiry), retained
 * messages, wills, and the path from an MQTT PUBLISH onto the one router. Sessions are
 * subscribers on that router like every other connection kind (DESIGN.md).
 */
import { randomBytes } from 'node:crypto';
import type { QoS } from 'mqtt-packet';
import type { ServerOptions } from '../config/options.js';
import type { MemoryBudget } from '../core/budget.js';
import type { Message, StoreReceipt } from '../core/message.js';
import type { Router } from '../core/router.js';
import type { Logger } from '../log.js';
import type { ConnectionView } from '../monitor/source.js';
import { Authenticator, type AuthResult, type Credentials } from '../nats/auth.js';
import type { CompiledPermissions } from '../nats/permissions.js';
import type { MqttOptions } from './config.js';
import type { MqttConnection } from './connection.js';
import { MqttPublication, publishHeaders } from './publication.js';
import { MqttReplies } from './replies.js';
import { RetainedStore } from './retained-store.js';
import { MqttSession, natsProps, type SessionHost } from './session.js';
import { SessionStore } from './session-store.js';
import { migrateMqtt, type ForwardProps, type StoreHost } from './store-schema.js';
import { filterToSubjects, parseShared, topicToSubject, wildcardFirst } from './topic-map.js';

/** What the MQTT broker needs from the server it runs in. */
export interface MqttContext {
  readonly router: Router;
  readonly budget: MemoryBudget;
  readonly log: Logger;
  options(): ServerOptions;
  authenticator(): Authenticator;
  nextCid(): number;
  slowConsumer(): void;
  /** A connection closed: keep a snapshot for /connz?state=closed. */
  connectionClosed(view: ConnectionView): void;
  /** NATS and WebSocket clients connected now (max_connections counts them with MQTT's). */
  natsClientCount(): number;
}

export interface WillMessage {
  topic: string;
  subject: string;
  qos: QoS;
  retain: boolean;
  payload: Buffer;
  props: ForwardProps | undefined;
  delaySec: number;
  expirySec: number;
}

export interface MqttStats {
  connections: number;
  sessions: number;
  retained: number;
  droppedQueued: number;
  droppedQos0: number;
}

const TICK_MS = 500;
/** Largest MQTT packet: 1 header byte, 4 length bytes, 268,435,455 bytes. */
const MAX_PACKET = 268_435_460;
/** 3.1.1 PUBLISH besides the payload: fixed header and length (5), topic (2 + 65535), packet id (2). */
const V3_PUBLISH_ROOM = 5 + 2 + 65_535 + 2;
/** Smallest v5 PUBLISH body besides the payload: topic length (2), 1-byte topic, empty properties (1). */
const V5_MIN_PUBLISH_OVERHEAD = 2 + 1 + 1;

function varintLength(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}
const NEVER = 0xffffffff;

export class MqttBroker implements SessionHost {
  readonly router: Router;
  readonly budget: MemoryBudget;
  readonly store: SessionStore;
  readonly retained: RetainedStore;
  private readonly sessions = new Map<string, MqttSession>();
  private readonly conns = new Map<number, MqttConnection>();
  private readonly wills = new Map<string, { due: number; will: WillMessage; perms: CompiledPermissions | undefined }>();
  private ownAuth: Authenticator | null;
  private readonly replies: MqttReplies;
  private timer: NodeJS.Timeout | null = null;
  private droppedQueued = 0;
  private droppedQos0 = 0;

  constructor(
    readonly ctx: MqttContext,
    readonly opts: MqttOptions,
    host: StoreHost,
  ) {
    this.router = ctx.router;
    this.budget = ctx.budget;
    migrateMqtt(host.db);
    const onError = (err: Error): void => ctx.log.error(`MQTT store: ${err.message}`);
    this.store = new SessionStore(host, onError);
    this.retained = new RetainedStore(host, onError);
    this.replies = new MqttReplies(ctx.nextCid(), ctx.router, (topic, subject, corr, answer) => this.republishAnswer(topic, subject, corr, answer));
    this.ownAuth = mqttAuthenticator(opts, ctx.options());
  }

  /**
   * A config reload (SIGHUP): the mqtt block's own credentials are rebuilt from `next` (the
   * server-wide users are read through ctx at each check), then every connected client is checked
   * again: one whose credentials no longer pass is closed, the others get the new permissions.
   */
  reload(next: MqttOptions, server: ServerOptions): void {
    this.ownAuth = mqttAuthenticator(next, server);
    for (const c of this.conns.values()) c.reauthenticate();
  }

  /** Restores persistent sessions (subscriptions live on the router at once, queues refilled). */
  start(): void {
    let restored = 0;
    for (const [clientId, { record, queue }] of this.store.loadAll()) {
      const s = new MqttSession(clientId, this, this.ctx.nextCid());
      s.expiry = record.expiry;
      s.offlineSince = record.offlineSince ?? Date.now();
      for (const sub of record.subs) {
        const shared = parseShared(sub.f);
        if (shared === 'invalid') continue;
        const filter = shared === null ? sub.f : shared.filter;
        let subjects: string[];
        try {
          subjects = filterToSubjects(filter);
        } catch {
          continue;
        }
        s.subscribe(sub.f, shared === null ? '' : shared.group, subjects, { qos: sub.q, nl: sub.nl === true, rap: sub.rap === true, rh: sub.rh ?? 0, subId: sub.id ?? 0, wildFirst: wildcardFirst(filter) });
      }
      s.restoreQueued(queue);
      for (const id of record.q2 ?? []) s.inboundQos2.add(id);
      this.sessions.set(clientId, s);
      restored++;
    }
    if (restored > 0) this.ctx.log.info(`MQTT: restored ${restored} persistent session(s), ${this.retained.size} retained message(s)`);
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  // ---- SessionHost -------------------------------------------------------------------

  maxQueued(): number {
    return this.opts.maxQueuedMessages;
  }

  dropped(kind: 'queue' | 'qos0'): void {
    if (kind === 'queue') this.droppedQueued++;
    else this.droppedQos0++;
  }

  // ---- connections -------------------------------------------------------------------

  accepted(conn: MqttConnection): void {
    this.conns.set(conn.cid, conn);
  }

  /** max_connections counts every client, NATS and MQTT, as nats-server does. */
  overConnectionLimit(): boolean {
    return this.ctx.natsClientCount() + this.conns.size > this.ctx.options().maxConnections;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** max_payload: the most PUBLISH (and will) payload bytes a client may send. */
  maxPayload(): number {
    return this.ctx.options().maxPayload;
  }

  /**
   * The whole-packet limit before the protocol version is known, and for 3.1.1 clients: a
   * max_payload payload with the longest topic fits; the payload itself is checked once parsed.
   */
  maxPacketSize(): number {
    return Math.min(this.maxPayload() + V3_PUBLISH_ROOM, MAX_PACKET);
  }

  /**
   * The v5 CONNACK Maximum Packet Size, enforced on the whole packet: the smallest PUBLISH that
   * carries max_payload bytes (1-byte topic, no properties). Any packet within it therefore has
   * a payload within max_payload, so a client that respects the advertisement is never refused
   * for payload size. The price: a payload of exactly max_payload needs a 1-byte topic.
   */
  maxPacketSizeV5(): number {
    const remaining = this.maxPayload() + V5_MIN_PUBLISH_OVERHEAD;
    return Math.min(1 + varintLength(remaining) + remaining, MAX_PACKET);
  }

  connectTimeoutMs(): number {
    return this.auth().configured ? this.auth().timeoutMs : 10_000;
  }

  private auth(): Authenticator {
    return this.ownAuth ?? this.ctx.authenticator();
  }

  authenticate(creds: Credentials): Promise<AuthResult | null> {
    const auth = this.auth();
    if (!auth.configured) return Promise.resolve({});
    return auth.authenticate(creds, 'MQTT');
  }

  newClientId(): string {
    return `nats-edge-${randomBytes(12).toString('hex')}`;
  }

  /** CONNECT accepted: take over an existing connection, resume or start a session. */
  openSession(_conn: MqttConnection, clientId: string, clean: boolean, expiry: number): { session: MqttSession; present: boolean } {
    let session = this.sessions.get(clientId);
    if (session !== undefined && session.link !== null) {
      const old = session.link as MqttConnection;
      this.ctx.log.debug(`MQTT: replacing old client "${clientId}" (cid ${old.cid})`);
      // 3.1.1: the old connection's will is dropped on takeover (nats-server). MQTT 5 §3.1.4:
      // it is published as on any other close, so a Will Delay still lets this resumption
      // cancel it, and a clean start (the session ends) sends it at once (connectionClosed).
      if (!old.v5) old.will = null;
      old.close('Duplicate Client ID', 0x8e);
    }
    const pendingWill = this.wills.get(clientId);
    if (pendingWill !== undefined) {
      this.wills.delete(clientId);
      // Resuming the session cancels a delayed will; a clean start ends the old session, so it goes now.
      if (clean) this.publishWill(pendingWill.will, pendingWill.perms);
    }
    session = this.sessions.get(clientId);
    let present = false;
    if (session !== undefined && clean) {
      session.end();
      this.sessions.delete(clientId);
      session = undefined;
    }
    if (session === undefined) {
      session = new MqttSession(clientId, this, this.ctx.nextCid());
      this.sessions.set(clientId, session);
    } else {
      present = true;
    }
    const wasPersistent = session.persistent;
    session.expiry = expiry;
    if (session.persistent) session.save();
    else if (wasPersistent) this.store.dropSession(clientId);
    return { session, present };
  }

  connectionClosed(conn: MqttConnection, wasOpen: boolean): void {
    if (!this.conns.delete(conn.cid)) return;
    this.ctx.connectionClosed(conn);
    if (!wasOpen) return;
    const session = conn.session;
    if (session === null) return;
    const stillOurs = session.link === conn;
    session.detach(conn);
    const will = conn.will;
    conn.will = null;
    if (will !== null) {
      const delay = Math.min(will.delaySec, session.expiry);
      if (delay > 0 && stillOurs) this.wills.set(session.clientId, { due: Date.now() + delay * 1000, will, perms: conn.perms });
      else this.publishWill(will, conn.perms);
    }
    if (!stillOurs) return;
    if (!session.persistent) {
      session.end();
      this.sessions.delete(session.clientId);
    } else {
      session.save();
    }
  }

  private publishWill(will: WillMessage, perms: CompiledPermissions | undefined): void {
    if (perms !== undefined && perms.restrictsPublish && !perms.canPublish(will.subject, Date.now())) return;
    const expiresAt = will.expirySec > 0 ? Date.now() + will.expirySec * 1000 : 0;
    this.publish(null, will.topic, will.subject, will.qos, will.retain, will.payload, will.props, expiresAt, undefined);
  }

  // ---- the publish path ----------------------------------------------------------------

  /**
   * An MQTT publish (or will) onto the router. The payload is copied once, behind the NATS
   * header block, so queued and retained copies do not pin the socket chunk.
   */
  publish(origin: MqttSession | null, topic: string, subject: string, qos: QoS, retain: boolean, payload: Buffer, props: ForwardProps | undefined, expiresAt: number, receipt: StoreReceipt | undefined): void {
    const hdr = publishHeaders(qos, props);
    const hdrLen = Buffer.byteLength(hdr);
    const data = Buffer.allocUnsafe(hdrLen + payload.length);
    data.write(hdr, 0, 'utf8');
    payload.copy(data, hdrLen);
    const owned = data.subarray(hdrLen);
    let reply = '';
    const rt = props?.responseTopic;
    if (rt !== undefined) {
      try {
        reply = topicToSubject(rt);
      } catch {
        reply = '';
      }
      // A NATS answer carries no correlation data: it goes to a reply subject of ours that
      // remembers it (replies.ts). MQTT subscribers still see both properties unchanged.
      const corr = props?.correlationData;
      if (reply !== '' && corr !== undefined) reply = this.replies.register(reply, rt, corr, Date.now());
    }
    if (retain) {
      this.retained.set({ subject, topic, qos, payload: owned, props, expiresAt });
    }
    const msg = new MqttPublication(subject, reply, hdrLen, data, topic, qos, retain, owned, props, expiresAt, origin, receipt);
    this.router.publish(msg, origin);
  }

  /** A NATS answer to an MQTT v5 request: to the response topic, with the correlation data. */
  private republishAnswer(topic: string, subject: string, correlationData: Buffer, answer: Message): void {
    const props = natsProps(answer) ?? {};
    props.correlationData = correlationData;
    const data = answer.data;
    const off = answer.hdrLen > 0 ? answer.hdrLen : 0;
    // A view: publish() copies the payload once behind its own header block.
    const payload = Buffer.from(data.buffer, data.byteOffset + off, data.length - off);
    this.publish(null, topic, subject, 0, false, payload, props, 0, undefined);
  }

  // ---- timers, monitoring, shutdown -------------------------------------------------------

  private tick(): void {
    const now = Date.now();
    for (const c of this.conns.values()) c.tick(now);
    this.replies.sweep(now);
    for (const [id, w] of this.wills) {
      if (w.due > now) continue;
      this.wills.delete(id);
      this.publishWill(w.will, w.perms);
    }
    for (const [id, s] of this.sessions) {
      if (s.expiry === NEVER || !s.expired(now)) continue;
      s.end();
      this.sessions.delete(id);
    }
  }

  connections(): Iterable<MqttConnection> {
    return this.conns.values();
  }

  stats(): MqttStats {
    return { connections: this.conns.size, sessions: this.sessions.size, retained: this.retained.size, droppedQueued: this.droppedQueued, droppedQos0: this.droppedQos0 };
  }

  /** Server shutdown: close clients (v5: DISCONNECT 0x8B), keep persistent state in the store. */
  shutdown(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.replies.close();
    for (const c of [...this.conns.values()]) {
      c.will = null;
      c.close('Server Shutdown', 0x8b);
    }
    for (const s of this.sessions.values()) {
      s.save();
      s.unload();
    }
    this.sessions.clear();
  }
}

/** The mqtt block's own authorization (or no_auth_user), null when the server's users apply. */
function mqttAuthenticator(opts: MqttOptions, o: ServerOptions): Authenticator | null {
  if (opts.authorization !== undefined) {
    const a = opts.authorization;
    return new Authenticator({
      authorization: {
        timeoutMs: a.timeoutMs,
        ...(a.user !== undefined ? { user: a.user } : {}),
        ...(a.password !== undefined ? { password: a.password } : {}),
        ...(a.token !== undefined ? { token: a.token } : {}),
      },
    });
  }
  if (opts.noAuthUser !== undefined) {
    return new Authenticator({ ...(o.authorization !== undefined ? { authorization: o.authorization } : {}), noAuthUser: opts.noAuthUser });
  }
  return null;
}
