/**
 * One MQTT client connection over any Duplex stream (TCP, TLS, later WebSocket): frames the
 * byte stream itself (so oversized packets are refused before they are buffered), decodes
 * with mqtt-packet, checks what mqtt-packet does not (UTF-8, wildcards, aliases, packet ids,
 * duplicate properties), and speaks to its session and the router. Output goes through the
 * pooled, budgeted Outbound like every other connection.
 */
import type { Duplex } from 'node:stream';
import mqtt from 'mqtt-packet';
import type { IConnackPacket, IConnectPacket, IPublishPacket, ISubscribePacket, IUnsubscribePacket, Packet, QoS } from 'mqtt-packet';
import type { Pausable } from '../core/budget.js';
import type { StoreReceipt } from '../core/message.js';
import { Outbound } from '../core/outbound.js';
import type { Subscription } from '../core/subscription.js';
import type { ConnectionView } from '../monitor/source.js';
import type { Credentials } from '../nats/auth.js';
import type { CompiledPermissions } from '../nats/permissions.js';
import type { MqttBroker, WillMessage } from './broker.js';
import { MqttPublication, publishHeaders } from './publication.js';
import type { MqttSession, SessionLink } from './session.js';
import type { ForwardProps } from './store-schema.js';
import { filterToSubjects, isValidClientId, parseShared, topicToSubject, TopicMapError, wildcardFirst } from './topic-map.js';

// mqtt-packet would otherwise fill a table of 65,536 two-byte Buffers at the first packet id it
// writes (~8 MB of heap, measured with a heap snapshot): too much for a 256 MB board, when
// writing a packet id costs two bytes.
mqtt.writeToStream.cacheNumbers = false;

/** Topic aliases a v5 client may use towards us (mosquitto's default). */
export const TOPIC_ALIAS_MAX = 10;
/** Inbound QoS 1/2 publishes not yet acknowledged; more is Receive Maximum exceeded. */
const RECEIVE_MAXIMUM = 65535;
const MAX_VARINT = 268_435_455;

export interface StreamMeta {
  ip: string;
  port: number;
  tlsVersion?: string;
  tlsCipher?: string;
}

/** Reason strings for the DISCONNECTs the server sends (MQTT 5 §3.14.2.1 names). */
const DISCONNECT_REASONS: Record<number, string> = {
  0x81: 'Malformed Packet',
  0x82: 'Protocol Error',
  0x87: 'Not authorized',
  0x8b: 'Server shutting down',
  0x8d: 'Keep Alive timeout',
  0x8e: 'Session taken over',
  0x90: 'Topic Name invalid',
  0x93: 'Receive Maximum exceeded',
  0x94: 'Topic Alias invalid',
  0x95: 'Packet too large',
  0x97: 'Quota exceeded',
  0x9b: 'QoS not supported',
};

const enum State {
  AwaitConnect,
  Authenticating,
  Open,
  Closed,
}

/**
 * A property (or a user property's name or value) that mqtt-packet decoded as null, or a UTF-8
 * string property holding U+0000 or bytes that are not UTF-8 (decoded as U+FFFD): both make the
 * packet malformed (MQTT 5 §1.5.4), and mqtt-packet checks neither.
 */
function malformedProps(props: object | undefined): boolean {
  if (props === undefined || props === null) return false;
  for (const v of Object.values(props) as unknown[]) {
    if (v === null) return true;
    if (typeof v === 'string') {
      if (badString(v)) return true;
    } else if (Array.isArray(v)) {
      for (const x of v as unknown[]) if (x === null || (typeof x === 'string' && badString(x))) return true;
    } else if (typeof v === 'object' && !Buffer.isBuffer(v)) {
      for (const [name, u] of Object.entries(v as Record<string, unknown>)) {
        if (badString(name) || u === null) return true;
        if (typeof u === 'string' && badString(u)) return true;
        if (Array.isArray(u) && u.some((x) => x === null || (typeof x === 'string' && badString(x)))) return true;
      }
    }
  }
  return false;
}

/** Single-value properties: mqtt-packet turns a repeated one into an array (Protocol Error). */
function hasDuplicateProps(props: object | undefined): boolean {
  if (props === undefined) return false;
  for (const [k, v] of Object.entries(props)) {
    if (k === 'userProperties' || k === 'subscriptionIdentifier') continue;
    if (Array.isArray(v)) return true;
  }
  return false;
}

function badString(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || c === 0xfffd) return true;
  }
  return false;
}

/** PUBACK ordering: acks go out in the order the PUBLISHes came, whatever commits first. */
class PendingAck implements StoreReceipt {
  pending = 0;
  done = false;
  failed = false;
  constructor(
    readonly conn: MqttConnection,
    readonly packetId: number,
    readonly qos: QoS,
    public code: number,
  ) {}

  captured(): void {
    this.pending++;
  }

  stored(err: Error | null): void {
    if (err !== null) this.failed = true;
    if (--this.pending === 0) {
      this.done = true;
      this.conn.flushAcks();
    }
  }
}

export class MqttConnection implements SessionLink, Pausable, ConnectionView {
  readonly type = 'mqtt' as const;
  readonly cid: number;
  readonly ip: string;
  readonly port: number;
  readonly start = new Date();
  readonly tlsVersion: string | undefined;
  readonly tlsCipher: string | undefined;
  readonly rttMs = undefined;
  readonly lang = '';
  version = '';
  name = '';
  mqttClient = '';
  authorizedUser: string | undefined = undefined;
  inMsgs = 0;
  outMsgs = 0;
  inBytes = 0;
  outBytes = 0;
  stop: Date | undefined = undefined;
  reason: string | undefined = undefined;

  v5 = false;
  window = 1;
  perms: CompiledPermissions | undefined = undefined;
  private lastTopic: string | null = null;
  private lastSubject = '';
  /** What CONNECT carried, kept to check again when the configuration is reloaded. */
  private creds: Credentials | null = null;
  session: MqttSession | null = null;
  will: WillMessage | null = null;

  private state = State.AwaitConnect;
  private readonly out: Outbound;
  private readonly parser = mqtt.parser({ protocolVersion: 4 });
  private genOpts: { protocolVersion: 3 | 4 | 5 } = { protocolVersion: 4 };
  private rest: Buffer | null = null;
  /** Nothing read yet: the first byte must start a CONNECT. */
  private firstPacket = true;
  private backlog: Packet[] = [];
  private lastRx = Date.now();
  private keepaliveMs = 0;
  private readonly connectDeadline: number;
  private clientMaxPacket = MAX_VARINT + 5;
  private maxInbound: number;
  private aliases: Map<number, string> | null = null;
  private acks: PendingAck[] = [];
  private requestProblemInfo = true;
  private readingPaused = false;

  constructor(
    private readonly broker: MqttBroker,
    private readonly stream: Duplex,
    meta: StreamMeta,
  ) {
    this.cid = broker.ctx.nextCid();
    this.ip = meta.ip;
    this.port = meta.port;
    this.tlsVersion = meta.tlsVersion;
    this.tlsCipher = meta.tlsCipher;
    this.out = new Outbound(stream, broker.ctx.budget);
    this.maxInbound = broker.maxPacketSize();
    this.connectDeadline = Date.now() + broker.connectTimeoutMs();
    this.parser.on('packet', (p: Packet) => this.onPacket(p));
    this.parser.on('error', (err: Error) => this.onParseError(err));
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', () => this.close('Read Error', -1));
    stream.on('close', () => this.close('Client Closed', -1));
    stream.on('end', () => this.close('Client Closed', -1));
  }

  get lastActivity(): Date {
    return new Date(this.lastRx);
  }

  get pendingBytes(): number {
    return this.out.pending;
  }

  get closed(): boolean {
    return this.state === State.Closed;
  }

  subscriptions(): readonly Subscription[] {
    return this.session?.routerSubscriptions() ?? [];
  }

  // ---- input -----------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.state === State.Closed) return;
    this.lastRx = Date.now();
    let buf = this.rest === null ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = null;
    // Frame: fixed header byte + remaining length varint, checked against our limit.
    let pos = 0;
    const n = buf.length;
    // The first packet must be CONNECT: anything else (an HTTP request, TLS to a plain port)
    // is refused at its first byte, as mosquitto does, instead of waiting for a bogus length.
    if (this.state === State.AwaitConnect && this.firstPacket && n > 0) {
      this.firstPacket = false;
      if (buf[0]! >> 4 !== 1) {
        this.close('Protocol Violation', -1, true);
        return;
      }
    }
    while (pos < n) {
      let len = 0;
      let mul = 1;
      let i = pos + 1;
      let complete = false;
      for (let k = 0; k < 4 && i < n; k++, i++) {
        const b = buf[i]!;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          i++;
          break;
        }
      }
      if (!complete) {
        if (i - pos > 4) {
          this.protocolError(0x81, 'Parse Error');
          return;
        }
        break;
      }
      // Maximum Packet Size counts the whole packet: fixed header, length bytes and the rest.
      if (i - pos + len > this.maxInbound) {
        this.protocolError(0x95, 'Maximum Message Payload Exceeded');
        return;
      }
      if (i + len > n) break;
      pos = i + len;
    }
    if (pos < n) {
      this.rest = Buffer.from(buf.subarray(pos));
      buf = buf.subarray(0, pos);
    }
    if (pos > 0) this.parser.parse(buf);
    if (this.broker.ctx.budget.exhausted && !this.closed) this.broker.ctx.budget.hold(this);
  }

  pauseReading(): void {
    if (this.readingPaused || this.state === State.Closed) return;
    this.readingPaused = true;
    this.stream.pause();
  }

  resumeReading(): void {
    if (!this.readingPaused) return;
    this.readingPaused = false;
    if (this.state !== State.Closed) this.stream.resume();
  }

  private onParseError(err: Error): void {
    if (this.state === State.Closed) return;
    if (this.state === State.AwaitConnect && /protocol version/i.test(err.message)) {
      // Unsupported level: CONNACK 1 in 3.1.1 form, then close (nats-server, mosquitto).
      this.out.writeBytes(Buffer.from([0x20, 0x02, 0x00, 0x01]));
      this.close('Bad Client Protocol Version', -1);
      return;
    }
    this.broker.ctx.log.debug(`mqtt cid:${this.cid} - parse error: ${err.message}`);
    this.protocolError(0x81, 'Parse Error');
  }

  private onPacket(p: Packet): void {
    if (this.state === State.Closed) return;
    // mqtt-packet turns a property string or binary that runs past the packet into null without
    // an error, and takes any bytes as UTF-8; such a packet (CONNECT with a will included) is
    // malformed and must go no further.
    const withProps = p as { properties?: object; will?: { properties?: object } };
    if (malformedProps(withProps.properties) || malformedProps(withProps.will?.properties)) {
      this.close('Parse Error', 0x81);
      return;
    }
    if (this.state === State.Authenticating) {
      this.backlog.push(p);
      return;
    }
    if (this.state === State.AwaitConnect) {
      if (p.cmd !== 'connect') {
        this.close('Protocol Violation', -1);
        return;
      }
      this.onConnect(p);
      return;
    }
    try {
      this.handle(p);
    } catch (err) {
      this.broker.ctx.log.error(`mqtt cid:${this.cid} - ${(err as Error).message}`);
      this.protocolError(0x80, 'Protocol Violation');
    }
  }

  private handle(p: Packet): void {
    switch (p.cmd) {
      case 'puback':
      case 'pubrec':
      case 'pubrel':
      case 'pubcomp':
        // mqtt-packet accepts these with no packet identifier (remaining length 0); MQTT does not,
        // and answering one would mean writing a packet without its identifier.
        // (mqtt-packet reports a missing identifier as -1.)
        if (p.messageId === undefined || p.messageId <= 0) {
          this.protocolError(0x81, 'Parse Error');
          return;
        }
        break;
      default:
        break;
    }
    switch (p.cmd) {
      case 'publish':
        this.onPublish(p);
        return;
      case 'puback':
      case 'pubrec':
      case 'pubcomp': {
        const found = this.session?.acked(p.messageId ?? 0, p.cmd) ?? false;
        if (!found && p.cmd === 'pubrec' && this.v5) this.send({ cmd: 'pubrel', messageId: p.messageId ?? 0, reasonCode: 0x92 });
        return;
      }
      case 'pubrel': {
        const id = p.messageId ?? 0;
        const session = this.session;
        const known = session?.inboundQos2.delete(id) ?? false;
        const pubcomp = (): void => this.send(this.v5 && !known ? { cmd: 'pubcomp', messageId: id, reasonCode: 0x92 } : { cmd: 'pubcomp', messageId: id });
        // PUBCOMP once the id is gone from the store too: the client may reuse it at once.
        if (known && session !== null && session.persistent) session.save({ captured: () => undefined, stored: pubcomp });
        else pubcomp();
        return;
      }
      case 'subscribe':
        this.onSubscribe(p);
        return;
      case 'unsubscribe':
        this.onUnsubscribe(p);
        return;
      case 'pingreq':
        this.send({ cmd: 'pingresp' });
        return;
      case 'disconnect': {
        const code = this.v5 ? (p.reasonCode ?? 0) : 0;
        const sei = p.properties?.sessionExpiryInterval;
        const session = this.session;
        if (sei !== undefined && session !== null) {
          if (session.expiry === 0 && sei > 0) {
            this.protocolError(0x82, 'Protocol Violation');
            return;
          }
          session.expiry = sei;
        }
        // DISCONNECT 0x04 keeps the will; anything else is a normal end.
        if (code !== 0x04) this.will = null;
        this.close('Client Closed', -1);
        return;
      }
      case 'connect':
        this.protocolError(0x82, 'Protocol Violation');
        return;
      default:
        this.protocolError(0x82, 'Protocol Violation');
    }
  }

  // ---- CONNECT ------------------------------------------------------------------------

  private refuse(v3Code: number, v5Code: number, reason: string): void {
    this.send(this.v5 ? { cmd: 'connack', sessionPresent: false, reasonCode: v5Code } : { cmd: 'connack', sessionPresent: false, returnCode: v3Code });
    this.close(reason, -1);
  }

  private onConnect(c: IConnectPacket): void {
    const version = c.protocolVersion ?? 4;
    this.v5 = version === 5;
    this.genOpts = { protocolVersion: version };
    this.version = version === 5 ? '5.0' : version === 4 ? '3.1.1' : '3.1';
    const props = c.properties;
    if (hasDuplicateProps(props) || hasDuplicateProps(c.will?.properties) || props?.receiveMaximum === 0 || props?.maximumPacketSize === 0) {
      this.refuse(2, 0x82, 'Protocol Violation');
      return;
    }
    if (props?.authenticationMethod !== undefined) {
      this.refuse(5, 0x8c, 'Authentication Failure');
      return;
    }
    if (this.broker.overConnectionLimit()) {
      this.broker.ctx.log.warn(`${this.ip}:${this.port} - mid:${this.cid} - maximum connections exceeded (${this.broker.ctx.options().maxConnections})`);
      // 3.1.1: Server unavailable; 5.0: Quota exceeded.
      this.refuse(3, 0x97, 'Maximum Connections Exceeded');
      return;
    }
    let clientId = c.clientId ?? '';
    let assigned = false;
    const clean = c.clean !== false;
    if (clientId === '') {
      if (!this.v5 && (!clean || version === 3)) {
        this.refuse(2, 0x85, 'Protocol Violation');
        return;
      }
      clientId = this.broker.newClientId();
      assigned = true;
    }
    if (badString(clientId) || !isValidClientId(clientId)) {
      this.refuse(2, 0x85, 'Protocol Violation');
      return;
    }
    let will: WillMessage | null = null;
    if (c.will !== undefined) {
      const w = c.will;
      let subject: string;
      try {
        subject = topicToSubject(w.topic);
      } catch {
        this.refuse(2, 0x90, 'Protocol Violation');
        return;
      }
      const willPayload = w.payload;
      if (willPayload !== undefined && willPayload.length > this.broker.maxPayload()) {
        // v5 has a code for it; 3.1.1 has none that fits, so the connection is just closed.
        if (this.v5) this.refuse(0, 0x95, 'Maximum Payload Violation');
        else this.close('Maximum Payload Violation', -1);
        return;
      }
      const qos = (w.qos ?? 0) as QoS;
      if (qos === 2 && this.broker.opts.rejectQos2Publish) {
        this.refuse(2, 0x9b, 'Protocol Violation');
        return;
      }
      const wp = w.properties;
      will = {
        topic: w.topic,
        subject,
        qos,
        retain: w.retain === true,
        payload: typeof w.payload === 'string' ? Buffer.from(w.payload) : w.payload,
        props: forwardProps(wp),
        delaySec: wp?.willDelayInterval ?? 0,
        expirySec: wp?.messageExpiryInterval ?? 0,
      };
    }
    this.mqttClient = clientId;
    this.keepaliveMs = (c.keepalive ?? 0) * 1500;
    if (props?.maximumPacketSize !== undefined) this.clientMaxPacket = props.maximumPacketSize;
    // From now on the whole-packet limit is the one CONNACK announces (see maxPacketSizeV5).
    if (this.v5) this.maxInbound = this.broker.maxPacketSizeV5();
    if (props?.requestProblemInformation === false) this.requestProblemInfo = false;
    this.window = Math.max(1, Math.min(props?.receiveMaximum ?? 65535, this.broker.opts.maxAckPending));
    const sessionExpiry = this.v5 ? (props?.sessionExpiryInterval ?? 0) : clean ? 0 : 0xffffffff;
    const creds: Credentials = {};
    if (c.username !== undefined) creds.user = c.username;
    if (c.password !== undefined) {
      creds.pass = c.password.toString('utf8');
      // nats-server: a token travels in the password field.
      creds.authToken = creds.pass;
    }
    this.state = State.Authenticating;
    this.creds = creds;
    this.broker.authenticate(creds).then(
      (result) => {
        if (this.state === State.Closed) return;
        if (result === null) {
          this.broker.ctx.log.warn(`${this.ip}:${this.port} - mid:${this.cid} - "${clientId}" - authentication error${creds.user !== undefined ? ` - User "${creds.user}"` : ''}`);
          this.refuse(5, 0x87, 'Authentication Failure');
          return;
        }
        this.authorizedUser = result.user;
        this.perms = result.permissions;
        this.will = will;
        const { session, present } = this.broker.openSession(this, clientId, clean, sessionExpiry);
        this.session = session;
        this.state = State.Open;
        const ack: IConnackPacket = this.v5 ? { cmd: 'connack', sessionPresent: present, reasonCode: 0, properties: this.connackProps(assigned ? clientId : undefined) } : { cmd: 'connack', sessionPresent: present, returnCode: 0 };
        this.send(ack);
        session.attach(this, this.perms);
        const backlog = this.backlog;
        this.backlog = [];
        for (const p of backlog) this.onPacket(p);
      },
      (err: unknown) => {
        this.broker.ctx.log.error(`mqtt cid:${this.cid} - authentication failed unexpectedly: ${String(err)}`);
        this.refuse(3, 0x88, 'Authentication Failure');
      },
    );
  }

  /** Config reload: the credentials are checked against the new users, permissions applied again. */
  reauthenticate(): void {
    const creds = this.creds;
    if (this.state !== State.Open || creds === null) return;
    const refused = (): void => {
      if (this.state !== State.Open) return;
      this.broker.ctx.log.warn(`${this.ip}:${this.port} - mid:${this.cid} - "${this.mqttClient}" - authorization no longer valid after reload`);
      this.close('Authentication Failure', 0x87);
    };
    this.broker.authenticate(creds).then((result) => {
      if (this.state !== State.Open) return;
      if (result === null) return refused();
      this.authorizedUser = result.user;
      this.perms = result.permissions;
      for (const f of this.session?.applyPermissions(result.permissions) ?? []) {
        this.broker.ctx.log.warn(`mqtt cid:${this.cid} - "${this.mqttClient}" - subscription "${f}" no longer allowed after reload: removed`);
      }
    }, refused);
  }

  private connackProps(assignedId: string | undefined): IConnackPacket['properties'] {
    const p: NonNullable<IConnackPacket['properties']> = {
      topicAliasMaximum: TOPIC_ALIAS_MAX,
      maximumPacketSize: this.maxInbound,
      retainAvailable: true,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true,
      sharedSubscriptionAvailable: true,
    };
    if (this.broker.opts.rejectQos2Publish) p.maximumQoS = 1;
    if (assignedId !== undefined) p.assignedClientIdentifier = assignedId;
    return p;
  }

  // ---- PUBLISH in -------------------------------------------------------------------

  private onPublish(p: IPublishPacket): void {
    const qos = p.qos;
    const id = p.messageId ?? 0;
    const props = p.properties;
    if (p.payload.length > this.broker.maxPayload()) {
      // Over max_payload (NATS's limit on every message): v5 DISCONNECT 0x95, 3.1.1 closed.
      this.broker.ctx.log.debug(`mqtt cid:${this.cid} - Maximum Payload Violation (${p.payload.length} > ${this.broker.maxPayload()})`);
      this.protocolError(0x95, 'Maximum Payload Violation');
      return;
    }
    if ((qos > 0 && id <= 0) || hasDuplicateProps(props)) {
      this.protocolError(0x82, 'Protocol Violation');
      return;
    }
    if (qos === 2 && this.broker.opts.rejectQos2Publish) {
      this.protocolError(0x9b, 'Protocol Violation');
      return;
    }
    let topic = p.topic;
    const alias = props?.topicAlias;
    if (alias !== undefined) {
      if (!this.v5 || alias === 0 || alias > TOPIC_ALIAS_MAX) {
        this.protocolError(0x94, 'Protocol Violation');
        return;
      }
      this.aliases ??= new Map();
      if (topic === '') {
        const known = this.aliases.get(alias);
        if (known === undefined) {
          this.protocolError(0x82, 'Protocol Violation');
          return;
        }
        topic = known;
      } else {
        this.aliases.set(alias, topic);
      }
    }
    let subject: string;
    try {
      // A sensor publishes to the same topic again and again: convert it once.
      if (topic === this.lastTopic) subject = this.lastSubject;
      else {
        subject = topicToSubject(topic);
        this.lastTopic = topic;
        this.lastSubject = subject;
      }
    } catch (err) {
      const kind = err instanceof TopicMapError ? err.kind : 'bad-char';
      this.broker.ctx.log.debug(`mqtt cid:${this.cid} - ${(err as Error).message}`);
      this.protocolError(kind === 'bad-utf8' ? 0x81 : kind === 'empty' ? 0x82 : 0x90, 'Protocol Violation');
      return;
    }
    const session = this.session!;
    if (qos === 2 && session.inboundQos2.has(id)) {
      // A resent QoS 2 PUBLISH (DUP) before PUBREL: not routed twice.
      this.send({ cmd: 'pubrec', messageId: id });
      return;
    }
    if (qos > 0 && this.acks.length + session.inboundQos2.size >= RECEIVE_MAXIMUM) {
      this.protocolError(0x93, 'Protocol Violation');
      return;
    }
    const payload = typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload;
    const perms = this.perms;
    if (perms !== undefined && perms.restrictsPublish && !perms.canPublish(subject, Date.now())) {
      this.broker.ctx.log.debug(`mqtt cid:${this.cid} - Publish Violation - User "${this.authorizedUser ?? ''}", Subject "${subject}"`);
      // v5 says why; 3.1.1 has no way to, the message is dropped and acknowledged (nats-server).
      if (qos === 1) this.send(this.v5 ? { cmd: 'puback', messageId: id, reasonCode: 0x87 } : { cmd: 'puback', messageId: id });
      else if (qos === 2) this.send(this.v5 ? { cmd: 'pubrec', messageId: id, reasonCode: 0x87 } : { cmd: 'pubrec', messageId: id });
      return;
    }
    this.inMsgs++;
    this.inBytes += payload.length;
    const fwd = forwardProps(props);
    const expirySec = props?.messageExpiryInterval ?? 0;
    const expiresAt = expirySec > 0 ? Date.now() + expirySec * 1000 : 0;
    let ack: PendingAck | undefined;
    if (qos > 0) {
      ack = new PendingAck(this, id, qos, 0);
      this.acks.push(ack);
      if (qos === 2) {
        session.inboundQos2.add(id);
        // The id must be stored before PUBREC: a resend of it after a restart is a duplicate.
        if (session.persistent) session.save(ack);
      }
    }
    this.broker.publish(session, topic, subject, qos, p.retain, payload, fwd, expiresAt, ack);
    if (ack !== undefined && ack.pending === 0) {
      ack.done = true;
      this.flushAcks();
    }
  }

  /** Sends the acks at the head of the line that are done (PUBACK order = PUBLISH order). */
  flushAcks(): void {
    const acks = this.acks;
    let k = 0;
    while (k < acks.length && acks[k]!.done) {
      const a = acks[k]!;
      k++;
      if (this.state === State.Closed) continue;
      if (a.failed && !this.v5) {
        // 3.1.1 cannot say "not stored": close so the client resends after reconnecting.
        this.close('Protocol Violation', -1);
        continue;
      }
      const code = a.failed ? 0x80 : 0;
      const cmd = a.qos === 1 ? 'puback' : 'pubrec';
      this.send(this.v5 && code !== 0 ? { cmd, messageId: a.packetId, reasonCode: code } : { cmd, messageId: a.packetId });
    }
    if (k > 0) this.acks = acks.slice(k);
  }

  // ---- SUBSCRIBE / UNSUBSCRIBE ---------------------------------------------------------

  private onSubscribe(p: ISubscribePacket): void {
    const id = p.messageId ?? 0;
    const subIdProp = p.properties?.subscriptionIdentifier as number | number[] | undefined;
    if (id === 0 || Array.isArray(subIdProp) || subIdProp === 0 || p.subscriptions.length === 0) {
      this.protocolError(0x82, 'Protocol Violation');
      return;
    }
    const subId = subIdProp ?? 0;
    const session = this.session!;
    const granted: number[] = [];
    const retainedFor: { state: NonNullable<ReturnType<MqttSession['subs']['get']>>; subjects: string[] }[] = [];
    for (const s of p.subscriptions) {
      const code = this.subscribeOne(session, s.topic, s.qos, s.nl === true, s.rap === true, s.rh ?? 0, subId, retainedFor);
      if (code < 0) return;
      granted.push(code);
    }
    this.send({ cmd: 'suback', messageId: id, granted: this.v5 ? granted : granted.map((g) => (g >= 0x80 ? 0x80 : g)) });
    session.save();
    const now = Date.now();
    for (const r of retainedFor) for (const m of this.broker.retained.match(r.subjects, now)) session.deliverRetained(r.state, m);
  }

  /** Returns the SUBACK code, or -1 when the connection was closed. */
  private subscribeOne(session: MqttSession, filter: string, reqQos: QoS, nl: boolean, rap: boolean, rh: number, subId: number, retainedFor: { state: NonNullable<ReturnType<MqttSession['subs']['get']>>; subjects: string[] }[]): number {
    if (filter === '' || badString(filter)) {
      this.protocolError(filter === '' ? 0x82 : 0x81, 'Protocol Violation');
      return -1;
    }
    const shared = parseShared(filter);
    if (shared === 'invalid') return 0x8f;
    if (shared !== null && nl) {
      this.protocolError(0x82, 'Protocol Violation');
      return -1;
    }
    const topicFilter = shared === null ? filter : shared.filter;
    if (topicFilter.startsWith('$MQTT/sub/')) return 0x80;
    let subjects: string[];
    try {
      subjects = filterToSubjects(topicFilter);
    } catch {
      return 0x8f;
    }
    const group = shared === null ? '' : shared.group;
    const perms = this.perms;
    if (perms !== undefined) {
      for (const s of subjects) {
        if (!perms.canSubscribe(s, group)) {
          this.broker.ctx.log.debug(`mqtt cid:${this.cid} - Subscription Violation - User "${this.authorizedUser ?? ''}", Subject "${s}"`);
          return 0x87;
        }
      }
    }
    let qos = reqQos;
    if (qos === 2 && this.broker.opts.downgradeQos2Subscribe) qos = 1;
    const existed = session.subscribe(filter, group, subjects, { qos, nl, rap, rh, subId, wildFirst: wildcardFirst(topicFilter) });
    const state = session.subs.get(filter)!;
    // Retained messages: never for shared subscriptions; v5 Retain Handling 1 only for new ones, 2 never.
    if (shared === null && (rh === 0 || (rh === 1 && !existed))) retainedFor.push({ state, subjects });
    return qos;
  }

  private onUnsubscribe(p: IUnsubscribePacket): void {
    const id = p.messageId ?? 0;
    if (id === 0 || p.unsubscriptions.length === 0) {
      this.protocolError(0x82, 'Protocol Violation');
      return;
    }
    const session = this.session!;
    const codes = p.unsubscriptions.map((f) => (session.unsubscribe(f) ? 0 : 0x11));
    this.send(this.v5 ? { cmd: 'unsuback', messageId: id, granted: codes } : { cmd: 'unsuback', messageId: id, granted: [] });
    session.save();
  }

  // ---- output (SessionLink) -------------------------------------------------------------

  private send(packet: Packet): void {
    if (this.state === State.Closed) return;
    if (!this.requestProblemInfo && packet.cmd !== 'publish' && packet.cmd !== 'connack' && packet.cmd !== 'disconnect') {
      const withProps = packet as { properties?: { reasonString?: string; userProperties?: unknown } };
      if (withProps.properties !== undefined) delete withProps.properties.reasonString;
    }
    this.out.writeBytes(mqtt.generate(packet, this.genOpts));
  }

  canTakeQos0(): boolean {
    return this.state === State.Open && this.out.pending <= this.broker.ctx.options().maxPending && !this.broker.ctx.budget.exhausted;
  }

  sendPublish(topic: string, qos: QoS, retain: boolean, dup: boolean, packetId: number, payload: Buffer, props: ForwardProps | undefined, subIds: readonly number[] | undefined, expiresAt: number): boolean {
    if (this.state !== State.Open) return true;
    const packet: IPublishPacket = { cmd: 'publish', topic, qos, retain, dup, payload };
    if (qos > 0) packet.messageId = packetId;
    if (this.v5) {
      let pp: NonNullable<IPublishPacket['properties']> | undefined = props === undefined ? undefined : { ...props };
      if (subIds !== undefined) (pp ??= {}).subscriptionIdentifier = subIds.length === 1 ? subIds[0]! : [...subIds];
      if (expiresAt > 0) {
        const left = Math.ceil((expiresAt - Date.now()) / 1000);
        if (left <= 0) return true;
        (pp ??= {}).messageExpiryInterval = left;
      }
      if (pp !== undefined) packet.properties = pp;
    }
    const buf = mqtt.generate(packet, this.genOpts);
    if (buf.length > this.clientMaxPacket) return false;
    this.out.writeBytes(buf);
    this.outMsgs++;
    this.outBytes += payload.length;
    return true;
  }

  sendPubrel(packetId: number): void {
    this.send({ cmd: 'pubrel', messageId: packetId });
  }

  // ---- timers and closing -------------------------------------------------------------

  tick(now: number): void {
    if (this.state === State.Closed) return;
    if (this.state !== State.Open) {
      if (now >= this.connectDeadline) this.close('Authentication Timeout', -1);
      return;
    }
    if (this.keepaliveMs > 0 && now - this.lastRx >= this.keepaliveMs) {
      this.broker.ctx.log.debug(`mqtt cid:${this.cid} - "${this.mqttClient}" - keep alive timeout`);
      this.protocolError(0x8d, 'Stale Connection');
      return;
    }
    // MQTT 5 forbids resending on a live connection [MQTT-4.4.0-1]; 3.1.1 allows it and
    // nats-server does it after ack_wait.
    const session = this.session;
    if (!this.v5 && session !== null && session.link === this) session.redeliver(now, this.broker.opts.ackWaitMs);
    if (this.out.inflight > 0 && now - this.out.lastProgress > this.broker.ctx.options().writeDeadlineMs) {
      this.broker.ctx.slowConsumer();
      this.close('Slow Consumer (Write Deadline)', -1, true);
    }
  }

  /** A protocol violation: v5 gets DISCONNECT with the code (once CONNACK went out), 3.1.1 is just closed. */
  private protocolError(code: number, reason: string): void {
    this.close(reason, code);
  }

  /** Server-initiated close with a v5 DISCONNECT reason (takeover 0x8E, shutdown 0x8B); -1 = none. */
  close(reason: string, disconnectCode: number, abort = false): void {
    if (this.state === State.Closed) return;
    const wasOpen = this.state === State.Open;
    if (wasOpen && this.v5 && disconnectCode >= 0) {
      // A reason string is allowed on DISCONNECT whatever Request Problem Information says.
      const text = DISCONNECT_REASONS[disconnectCode];
      this.send({ cmd: 'disconnect', reasonCode: disconnectCode, ...(text !== undefined ? { properties: { reasonString: text } } : {}) });
    }
    this.state = State.Closed;
    this.reason = reason;
    this.stop = new Date();
    const stream = this.stream;
    if (abort) {
      this.out.close();
      stream.destroy();
    } else {
      this.out.flushNow();
      this.out.close();
      stream.end();
      setTimeout(() => stream.destroy(), 2000).unref();
    }
    this.broker.ctx.budget.forget(this);
    this.broker.connectionClosed(this, wasOpen);
  }
}

export function forwardProps(p: { payloadFormatIndicator?: boolean; contentType?: string; responseTopic?: string; correlationData?: Buffer; userProperties?: Record<string, string | string[]> } | undefined): ForwardProps | undefined {
  if (p === undefined) return undefined;
  let out: ForwardProps | undefined;
  if (p.payloadFormatIndicator !== undefined) (out ??= {}).payloadFormatIndicator = p.payloadFormatIndicator;
  if (p.contentType !== undefined) (out ??= {}).contentType = p.contentType;
  if (p.responseTopic !== undefined) (out ??= {}).responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) (out ??= {}).correlationData = p.correlationData;
  if (p.userProperties !== undefined) (out ??= {}).userProperties = p.userProperties;
  return out;
}

export { publishHeaders, MqttPublication };
