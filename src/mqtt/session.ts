/**
 * An MQTT session: a Subscriber on the one router (kind 'mqtt'), alive while its client is
 * connected and, for persistent sessions, while it is not (it keeps receiving QoS 1/2 messages
 * into its bounded queue). Owns the subscriptions, the outgoing in-flight window and packet ids.
 */
import type { QoS } from 'mqtt-packet';
import type { MemoryBudget } from '../core/budget.js';
import type { Message, StoreReceipt } from '../core/message.js';
import type { Router } from '../core/router.js';
import type { Subscriber, Subscription } from '../core/subscription.js';
import { headerEntries } from '../jetstream/headers.js';
import type { CompiledPermissions } from '../nats/permissions.js';
import { MqttPublication } from './publication.js';
import type { RetainedMsg } from './retained-store.js';
import type { QueuedRow, SessionRecord, SessionStore, StoredSubscription } from './session-store.js';
import type { ForwardProps } from './store-schema.js';
import { subjectToTopic } from './topic-map.js';

/** What a session needs of the connection its client is on. */
export interface SessionLink {
  readonly v5: boolean;
  /** Outgoing QoS 1/2 window: min(client Receive Maximum, max_ack_pending). */
  readonly window: number;
  readonly perms: CompiledPermissions | undefined;
  /** false while the connection is over its pending-bytes limit: QoS 0 is dropped. */
  canTakeQos0(): boolean;
  /** false: the packet exceeded the client's Maximum Packet Size and was not sent. */
  sendPublish(topic: string, qos: QoS, retain: boolean, dup: boolean, packetId: number, payload: Buffer, props: ForwardProps | undefined, subIds: readonly number[] | undefined, expiresAt: number): boolean;
  sendPubrel(packetId: number): void;
}

export interface SessionHost {
  readonly router: Router;
  readonly budget: MemoryBudget;
  readonly store: SessionStore;
  maxQueued(): number;
  /** A message was dropped (queue overflow, slow QoS 0 subscriber). */
  dropped(kind: 'queue' | 'qos0'): void;
}

/** One MQTT subscription (a filter) and the NATS subscriptions it made. */
export interface MqttSubState {
  readonly filter: string;
  /** Shared subscription group ('' = not shared). */
  readonly group: string;
  qos: QoS;
  nl: boolean;
  rap: boolean;
  rh: number;
  subId: number;
  /** The filter starts with '+' or '#': topics starting with '$' are not delivered. */
  readonly wildFirst: boolean;
  readonly subs: MqttRouterSub[];
}

export interface MqttRouterSub extends Subscription {
  readonly owner: MqttSession;
  readonly state: MqttSubState;
}

/** A QoS 1/2 message waiting in the queue or in flight. */
interface OutMsg {
  storeId: number;
  topic: string;
  qos: QoS;
  retain: boolean;
  payload: Buffer;
  props: ForwardProps | undefined;
  subIds: number[] | undefined;
  expiresAt: number;
  subject: string;
  packetId: number;
  /** QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP. */
  released: boolean;
  /** When it was last sent (ms; ack_wait redelivery), 0 = not in flight. */
  sentAt: number;
}

const NEVER = 0xffffffff;

export class MqttSession implements Subscriber {
  readonly kind = 'mqtt' as const;
  readonly echo = true;
  readonly cid: number;
  link: SessionLink | null = null;
  /** Seconds; 0 = ends with the connection; 0xFFFFFFFF = never expires. */
  expiry = 0;
  offlineSince = 0;
  perms: CompiledPermissions | undefined = undefined;
  readonly subs = new Map<string, MqttSubState>();
  /** Inbound QoS 2 packet ids between PUBREC and PUBREL (duplicate PUBLISHes are not routed twice). */
  readonly inboundQos2 = new Set<number>();
  private queue: OutMsg[] = [];
  private readonly inflight = new Map<number, OutMsg>();
  private nextPacketId = 1;
  private heldBytes = 0;
  private ended = false;
  droppedMsgs = 0;

  constructor(
    readonly clientId: string,
    private readonly host: SessionHost,
    cid: number,
  ) {
    this.cid = cid;
  }

  get persistent(): boolean {
    return this.expiry > 0;
  }

  get queued(): number {
    return this.queue.length + this.inflight.size;
  }

  // ---- subscriptions --------------------------------------------------------------

  /** Adds or replaces a subscription; true when it already existed (Retain Handling 1). */
  subscribe(filter: string, group: string, subjects: readonly string[], opts: { qos: QoS; nl: boolean; rap: boolean; rh: number; subId: number; wildFirst: boolean }): boolean {
    const existing = this.subs.get(filter);
    if (existing !== undefined) {
      existing.qos = opts.qos;
      existing.nl = opts.nl;
      existing.rap = opts.rap;
      existing.rh = opts.rh;
      existing.subId = opts.subId;
      return true;
    }
    const state: MqttSubState = { filter, group, ...opts, subs: [] };
    for (const subject of subjects) {
      const sub: MqttRouterSub = { subject, queue: group, sid: filter, owner: this, msgs: 0, max: 0, state };
      state.subs.push(sub);
      this.host.router.subscribe(sub);
    }
    this.subs.set(filter, state);
    return false;
  }

  unsubscribe(filter: string): boolean {
    const state = this.subs.get(filter);
    if (state === undefined) return false;
    this.subs.delete(filter);
    this.host.router.unsubscribeAll(state.subs);
    return true;
  }

  /** New permissions (a config reload): subscriptions they no longer allow are dropped; returns their filters. */
  applyPermissions(perms: CompiledPermissions | undefined): string[] {
    this.perms = perms;
    if (perms === undefined) return [];
    const dropped: string[] = [];
    for (const s of [...this.subs.values()]) {
      if (s.subs.some((sub) => !perms.canSubscribe(sub.subject, s.group))) {
        this.unsubscribe(s.filter);
        dropped.push(s.filter);
      }
    }
    if (dropped.length > 0) this.save();
    return dropped;
  }

  routerSubscriptions(): Subscription[] {
    const out: Subscription[] = [];
    for (const s of this.subs.values()) out.push(...s.subs);
    return out;
  }

  record(): SessionRecord {
    const subs: StoredSubscription[] = [];
    for (const s of this.subs.values()) {
      const r: StoredSubscription = { f: s.filter, q: s.qos };
      if (s.nl) r.nl = true;
      if (s.rap) r.rap = true;
      if (s.rh !== 0) r.rh = s.rh;
      if (s.subId !== 0) r.id = s.subId;
      subs.push(r);
    }
    const r: SessionRecord = { expiry: this.expiry, subs, offlineSince: this.link === null ? this.offlineSince || Date.now() : null };
    if (this.inboundQos2.size > 0) r.q2 = [...this.inboundQos2];
    return r;
  }

  /** Stores the record of a persistent session; `receipt` hears when it is committed. */
  save(receipt?: StoreReceipt): void {
    if (this.persistent && !this.ended) this.host.store.saveSession(this.clientId, this.record(), receipt);
  }

  // ---- delivery (Subscriber) --------------------------------------------------------

  deliver(sub: Subscription, msg: Message): void {
    if (this.ended) return;
    const state = (sub as MqttRouterSub).state;
    const perms = this.perms;
    if (perms !== undefined && perms.filtersDelivery && !perms.canDeliver(msg.subject)) return;
    if (msg instanceof MqttPublication) {
      if (state.nl && msg.origin === this) return;
      if (state.wildFirst && msg.topic.charCodeAt(0) === 0x24) return;
      const qos = (msg.qos < state.qos ? msg.qos : state.qos) as QoS;
      const retain = state.rap ? msg.retain : false;
      const subIds = state.subId > 0 ? [state.subId] : undefined;
      if (qos === 0) {
        const link = this.link;
        if (link === null) return;
        if (!link.canTakeQos0()) {
          this.droppedMsgs++;
          this.host.dropped('qos0');
          return;
        }
        link.sendPublish(msg.topic, 0, retain, false, 0, msg.payload, msg.props, subIds, msg.expiresAt);
        return;
      }
      this.enqueue({ topic: msg.topic, qos, retain, payload: msg.payload, props: msg.props, subIds, expiresAt: msg.expiresAt, subject: msg.subject }, msg.receipt);
      return;
    }
    // From NATS (clients, JetStream, leafnodes): QoS 0, payload only for 3.1.1 (nats-server).
    const link = this.link;
    if (link === null) return;
    if (state.wildFirst && msg.subject.charCodeAt(0) === 0x24) return;
    if (!link.canTakeQos0()) {
      this.droppedMsgs++;
      this.host.dropped('qos0');
      return;
    }
    const data = msg.data;
    const hdrLen = msg.hdrLen;
    const payload = Buffer.from(data.buffer, data.byteOffset + (hdrLen > 0 ? hdrLen : 0), data.length - (hdrLen > 0 ? hdrLen : 0));
    const props = link.v5 ? natsProps(msg) : undefined;
    link.sendPublish(subjectToTopic(msg.subject), 0, false, false, 0, payload, props, state.subId > 0 ? [state.subId] : undefined, 0);
  }

  /** Retained messages sent because of a SUBSCRIBE (RETAIN=1, min(stored QoS, granted QoS)). */
  deliverRetained(state: MqttSubState, m: RetainedMsg): void {
    const perms = this.perms;
    if (perms !== undefined && perms.filtersDelivery && !perms.canDeliver(m.subject)) return;
    if (state.wildFirst && m.topic.charCodeAt(0) === 0x24) return;
    const qos = (m.qos < state.qos ? m.qos : state.qos) as QoS;
    const subIds = state.subId > 0 ? [state.subId] : undefined;
    if (qos === 0) {
      this.link?.sendPublish(m.topic, 0, true, false, 0, m.payload, m.props, subIds, m.expiresAt);
      return;
    }
    this.enqueue({ topic: m.topic, qos, retain: true, payload: m.payload, props: m.props, subIds, expiresAt: m.expiresAt, subject: m.subject });
  }

  /**
   * `receipt`: the publisher's (QoS 1/2 PUBLISH). A persistent session's queue row is a store
   * like a capturing stream: the publisher is acknowledged only after the row committed.
   */
  private enqueue(m: Omit<OutMsg, 'storeId' | 'packetId' | 'released' | 'sentAt'>, receipt?: StoreReceipt): void {
    const out: OutMsg = { ...m, storeId: 0, packetId: 0, released: false, sentAt: 0 };
    if (this.persistent) {
      receipt?.captured();
      out.storeId = this.host.store.addMessage(
        this.clientId,
        {
          topic: m.topic,
          qos: m.qos,
          retain: m.retain,
          payload: m.payload,
          props: m.props,
          expiresAt: m.expiresAt,
        },
        receipt,
      );
    }
    this.heldBytes += m.payload.length;
    this.host.budget.charge(m.payload.length);
    this.queue.push(out);
    const max = this.host.maxQueued();
    if (max > 0 && this.queue.length > max) {
      // Bounded: the oldest waiting message makes room (counted).
      const old = this.queue.shift()!;
      this.release(old);
      this.droppedMsgs++;
      this.host.dropped('queue');
    }
    this.pump();
  }

  /** Restored from the store at server start. */
  restoreQueued(rows: readonly QueuedRow[]): void {
    for (const r of rows) {
      this.queue.push({ storeId: r.id, topic: r.topic, qos: r.qos, retain: r.retain, payload: r.payload, props: r.props, subIds: undefined, expiresAt: r.expiresAt, subject: '', packetId: 0, released: false, sentAt: 0 });
      this.heldBytes += r.payload.length;
      this.host.budget.charge(r.payload.length);
    }
  }

  private release(m: OutMsg): void {
    this.heldBytes -= m.payload.length;
    this.host.budget.release(m.payload.length);
    if (m.storeId > 0) this.host.store.dropMessage(m.storeId);
  }

  private allocPacketId(): number {
    for (let i = 0; i < 65535; i++) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
    return 0;
  }

  /** Sends queued messages while the window has room. */
  pump(): void {
    const link = this.link;
    if (link === null) return;
    const now = Date.now();
    while (this.queue.length > 0 && this.inflight.size < link.window) {
      const m = this.queue.shift()!;
      if (m.expiresAt > 0 && m.expiresAt <= now) {
        this.release(m);
        continue;
      }
      // Permissions may have changed since the message was queued (reconnect as another user).
      const perms = this.perms;
      if (m.subject !== '' && perms !== undefined && perms.filtersDelivery && !perms.canDeliver(m.subject)) {
        this.release(m);
        continue;
      }
      const id = this.allocPacketId();
      if (id === 0) {
        this.queue.unshift(m);
        return;
      }
      m.packetId = id;
      m.sentAt = now;
      this.inflight.set(id, m);
      if (!link.sendPublish(m.topic, m.qos, m.retain, false, id, m.payload, m.props, m.subIds, m.expiresAt)) {
        // Too big for the client: dropped as if delivered.
        this.inflight.delete(id);
        this.release(m);
      }
      if (this.link !== link) return;
    }
  }

  /** PUBACK / PUBREC / PUBCOMP from the client; false when the packet id is unknown. */
  acked(packetId: number, kind: 'puback' | 'pubrec' | 'pubcomp'): boolean {
    const m = this.inflight.get(packetId);
    if (m === undefined) return false;
    if (kind === 'pubrec') {
      if (m.qos !== 2) return false;
      m.released = true;
      this.touch(m, Date.now());
      this.link?.sendPubrel(packetId);
      return true;
    }
    if (kind === 'puback' ? m.qos !== 1 : !m.released) return false;
    this.inflight.delete(packetId);
    this.release(m);
    this.pump();
    return true;
  }

  /** Moves an in-flight message to the end of the map: the map stays in sentAt order. */
  private touch(m: OutMsg, now: number): void {
    m.sentAt = now;
    this.inflight.delete(m.packetId);
    this.inflight.set(m.packetId, m);
  }

  /**
   * ack_wait (nats-server's mqtt option): what is in flight longer than `ackWaitMs` without its
   * PUBACK / PUBREC is sent again with DUP=1, and a PUBREL without its PUBCOMP is sent again.
   * Called from the connection's tick (one timer for all connections, none per message).
   */
  redeliver(now: number, ackWaitMs: number): void {
    const link = this.link;
    if (link === null || this.inflight.size === 0) return;
    const due = now - ackWaitMs;
    let again: OutMsg[] | null = null;
    for (const m of this.inflight.values()) {
      if (m.sentAt > due) break;
      (again ??= []).push(m);
    }
    if (again === null) return;
    for (const m of again) {
      this.touch(m, now);
      if (m.released) link.sendPubrel(m.packetId);
      else link.sendPublish(m.topic, m.qos, m.retain, true, m.packetId, m.payload, m.props, m.subIds, m.expiresAt);
      if (this.link !== link) return;
    }
  }

  // ---- connection life --------------------------------------------------------------

  /** A client connected to this session: resend what is in flight (DUP), then drain the queue. */
  attach(link: SessionLink, perms: CompiledPermissions | undefined): void {
    this.link = link;
    this.perms = perms;
    this.offlineSince = 0;
    const now = Date.now();
    for (const m of this.inflight.values()) {
      m.sentAt = now;
      if (m.released) link.sendPubrel(m.packetId);
      else link.sendPublish(m.topic, m.qos, m.retain, true, m.packetId, m.payload, m.props, m.subIds, m.expiresAt);
    }
    this.pump();
  }

  detach(link: SessionLink): void {
    if (this.link !== link) return;
    this.link = null;
    this.offlineSince = Date.now();
  }

  /** The session ends: subscriptions leave the router, queued messages and the stored record go. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.link = null;
    this.host.router.unsubscribeAll(this.routerSubscriptions());
    this.subs.clear();
    for (const m of this.queue) this.release(m);
    for (const m of this.inflight.values()) this.release(m);
    this.queue = [];
    this.inflight.clear();
    this.host.store.dropSession(this.clientId);
  }

  /** Server shutdown: memory goes back to the budget, stored state stays. */
  unload(): void {
    this.ended = true;
    this.host.budget.release(this.heldBytes);
    this.heldBytes = 0;
    this.host.router.unsubscribeAll(this.routerSubscriptions());
  }

  expired(now: number): boolean {
    if (this.link !== null || this.expiry === NEVER || this.offlineSince === 0) return false;
    return now - this.offlineSince >= this.expiry * 1000;
  }
}

/** v5: NATS headers become user properties (Content-Type the content type), the reply the response topic. */
export function natsProps(msg: Message): ForwardProps | undefined {
  let props: ForwardProps | undefined;
  if (msg.hdrLen > 0) {
    const entries = headerEntries(msg.data, msg.hdrLen);
    for (const [k, v] of entries) {
      if (k.startsWith('Nmqtt-')) continue;
      props ??= {};
      if (k === 'Content-Type') {
        props.contentType = v;
        continue;
      }
      const up = (props.userProperties ??= {});
      const prev = up[k];
      up[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
  }
  if (msg.reply !== '') {
    props ??= {};
    props.responseTopic = subjectToTopic(msg.reply);
  }
  return props;
}
