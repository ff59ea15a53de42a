import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Message } from '../core/message.js';
import { payloadSize } from '../core/message.js';
import { Outbound } from '../core/outbound.js';
import type { Pausable } from '../core/budget.js';
import type { Subscriber, Subscription } from '../core/subscription.js';
import { countTokens, isValidLiteralSubject, isValidSubject, subjectMatches } from '../core/subject.js';
import type { ConnectionView } from '../monitor/source.js';
import type { AuthResult, Authenticator, ConnectionType, Credentials } from './auth.js';
import type { ClientContext } from './context.js';
import { writeMsgLine, writePayload } from './encode.js';
import { Parser } from './parser.js';
import type { ProtocolErrorKind, ProtocolHandler } from './parser.js';
import {
  goQuote,
  isReservedReply,
  permissionViolationPublish,
  permissionViolationReply,
  permissionViolationSubscribe,
} from './permissions.js';
import type { CompiledPermissions } from './permissions.js';

/** A subscription made by a NATS client: the sid is the client's own token. */
interface ClientSub extends Subscription {
  readonly owner: ClientConnection;
}

/** Closed-connection reasons as /connz reports them (nats-server's ClosedState strings). */
export type CloseReason =
  | 'Client Closed'
  | 'Authentication Timeout'
  | 'Authentication Failure'
  | 'TLS Handshake Failure'
  | 'Slow Consumer (Pending Bytes)'
  | 'Slow Consumer (Write Deadline)'
  | 'Write Error'
  | 'Read Error'
  | 'Parse Error'
  | 'Stale Connection'
  | 'Protocol Violation'
  | 'Bad Client Protocol Version'
  | 'Maximum Connections Exceeded'
  | 'Maximum Message Payload Exceeded'
  | 'Maximum Control Line Exceeded'
  | 'Server Shutdown'
  | 'No Responders Requires Headers';

const enum State {
  /** Waiting for CONNECT (or any op when auth is not required). */
  Fresh,
  /** CONNECT received, credentials being checked (bcrypt runs async). */
  Authenticating,
  Open,
  Closed,
}

const NO_RESPONDERS_HDR = 'NATS/1.0 503\r\n\r\n';

/** Where a connection comes from; for a WebSocket, the address of its HTTP upgrade request. */
export interface PeerAddress {
  ip: string;
  port: number;
}

function peerOf(stream: Duplex): PeerAddress {
  if (!(stream instanceof Socket)) return { ip: '', port: 0 };
  return { ip: stripV4Mapped(stream.remoteAddress ?? ''), port: stream.remotePort ?? 0 };
}

/** One NATS client connection: parser callbacks in, MSG/HMSG out through the router. */
export class ClientConnection implements Subscriber, ProtocolHandler, Pausable, ConnectionView {
  readonly kind = 'client' as const;
  readonly cid: number;
  readonly type: 'nats' | 'websocket';
  readonly ip: string;
  readonly port: number;
  readonly start = new Date();
  private lastActivityMs = Date.now();
  /** Last time any bytes arrived from the client (ping timer). */
  private lastRxMs = Date.now();

  echo = true;
  private verbose = true;
  private pedantic = true;
  private headers = false;
  private noResponders = false;
  private protocol = 0;
  name = '';
  lang = '';
  version = '';
  authorizedUser: string | undefined = undefined;
  private perms: CompiledPermissions | undefined = undefined;

  inMsgs = 0;
  outMsgs = 0;
  inBytes = 0;
  outBytes = 0;
  rttMs: number | undefined = undefined;
  stop: Date | undefined = undefined;
  reason: CloseReason | undefined = undefined;
  tlsVersion: string | undefined = undefined;
  tlsCipher: string | undefined = undefined;

  private state = State.Fresh;
  private readonly subs = new Map<string, ClientSub>();
  private readonly parser: Parser;
  private out: Outbound;
  /** A TCP or TLS socket, or a WebSocket's byte stream. */
  private socket: Duplex;
  private pingsOutstanding = 0;
  private pingSentAt = 0;
  private nextPingAt: number;
  /** Async INFO (lame duck) only goes to protocol-1 clients once we answered their first PING. */
  private firstPongSent = false;
  private firstPingSent = false;
  private readingPaused = false;
  private authDeadline = 0;
  /** Credentials from CONNECT; null when the client never sent CONNECT. */
  private creds: Credentials | null = null;
  /** INFO to send once TLS is up (TLS first). */
  private pendingInfo = '';

  constructor(
    private readonly ctx: ClientContext,
    socket: Duplex,
    private readonly connType: ConnectionType = 'STANDARD',
    peer: PeerAddress = peerOf(socket),
  ) {
    this.cid = ctx.nextCid();
    this.type = connType === 'WEBSOCKET' ? 'websocket' : 'nats';
    this.socket = socket;
    this.ip = peer.ip;
    this.port = peer.port;
    const o = ctx.options();
    this.parser = new Parser(this, { maxControlLine: o.maxControlLine, maxPayload: o.maxPayload });
    this.out = new Outbound(socket, ctx.budget);
    this.nextPingAt = Date.now() + Math.min(o.pingIntervalMs, 2000) * (1 + Math.random() * 0.2);
  }

  get lastActivity(): Date {
    return new Date(this.lastActivityMs);
  }

  get pendingBytes(): number {
    return this.out.pending;
  }

  get closed(): boolean {
    return this.state === State.Closed;
  }

  subscriptions(): readonly Subscription[] {
    return [...this.subs.values()];
  }

  /** Start speaking: INFO now, or after the TLS handshake when TLS comes first. */
  begin(info: string): void {
    this.armAuth();
    this.attach(this.socket);
    this.out.writeString(info);
  }

  /** max_connections reached: INFO, then the -ERR, as nats-server answers. */
  refuse(info: string): void {
    this.attach(this.socket);
    this.out.writeString(info);
    this.fail('maximum connections exceeded', 'Maximum Connections Exceeded');
  }

  /** Until credentials arrive: the auth timer, and the parser refusing anything but CONNECT. */
  private armAuth(): void {
    const auth = this.ctx.authenticator();
    if (auth.configured) this.authDeadline = Date.now() + auth.timeoutMs;
    // Headers stay refused until CONNECT says the client speaks them.
    this.parser.headers = false;
    this.parser.awaitingAuth = auth.required;
  }

  /**
   * TLS: in nats-server's default order INFO goes in plaintext, then the client starts the
   * handshake on the same socket; with TLS first the handshake comes before INFO.
   * `upgrade` hands the raw socket to the TLS server, which calls tlsReady() or tlsFailed().
   */
  beginTls(info: string, tlsFirst: boolean, upgrade: (raw: Socket) => void): void {
    const raw = this.socket;
    if (!(raw instanceof Socket)) {
      this.close('TLS Handshake Failure', true);
      return;
    }
    this.pendingInfo = tlsFirst ? info : '';
    raw.on('error', () => this.close('Read Error'));
    raw.on('close', () => this.close('TLS Handshake Failure'));
    if (tlsFirst) upgrade(raw);
    else raw.write(info, () => this.state !== State.Closed && upgrade(raw));
  }

  /** The handshake (and client certificate check, when verify is on) succeeded. */
  tlsReady(tls: TLSSocket): void {
    if (this.state === State.Closed) {
      tls.destroy();
      return;
    }
    this.socket.removeAllListeners('close');
    this.socket = tls;
    this.out = new Outbound(tls, this.ctx.budget);
    // /connz shows the version as nats-server does: "1.3", not Node's "TLSv1.3".
    this.tlsVersion = tls.getProtocol()?.replace(/^TLSv/, '') ?? undefined;
    this.tlsCipher = tls.getCipher()?.standardName ?? undefined;
    this.ctx.log.debug(`cid:${this.cid} - TLS handshake complete (${this.tlsVersion ?? '?'})`);
    this.armAuth();
    this.attach(tls);
    if (this.pendingInfo !== '') this.out.writeString(this.pendingInfo);
    this.pendingInfo = '';
  }

  tlsFailed(err: Error): void {
    this.ctx.log.debug(`${this.ip}:${this.port} - cid:${this.cid} - TLS handshake error: ${err.message}`);
    this.close('TLS Handshake Failure', true);
  }

  private attach(socket: Duplex): void {
    if (socket instanceof Socket) socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.ctx.log.debug(`cid:${this.cid} - socket error: ${err.message}`);
      this.close(err.syscall === 'write' ? 'Write Error' : 'Read Error');
    });
    socket.on('close', () => this.close('Client Closed'));
    socket.on('end', () => socket.end());
    socket.resume();
  }

  private onData(chunk: Buffer): void {
    if (this.state === State.Closed) return;
    const now = Date.now();
    this.lastRxMs = now;
    this.lastActivityMs = now;
    this.parser.parse(chunk);
    if (this.ctx.budget.exhausted && !this.closed) this.ctx.budget.hold(this);
  }

  pauseReading(): void {
    if (this.readingPaused || this.state === State.Closed) return;
    this.readingPaused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.readingPaused) return;
    this.readingPaused = false;
    if (this.state !== State.Closed) this.socket.resume();
  }

  // ---- ProtocolHandler -------------------------------------------------------------

  onConnect(json: string): void {
    if (this.state === State.Closed) return;
    let raw: unknown;
    try {
      raw = JSON.parse(json);
    } catch {
      this.close('Protocol Violation');
      return;
    }
    // nats-server decodes CONNECT null as no options at all.
    if (raw === null) raw = {};
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      this.close('Protocol Violation');
      return;
    }
    const c = raw as Record<string, unknown>;
    if (c['account'] !== undefined || c['new_account'] !== undefined) {
      this.fail('Authorization Violation', 'Authentication Failure');
      return;
    }
    if (c['protocol'] !== undefined) {
      const p = c['protocol'];
      if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 1) {
        this.fail('invalid client protocol', 'Bad Client Protocol Version');
        return;
      }
      this.protocol = p;
    }
    if (typeof c['verbose'] === 'boolean') this.verbose = c['verbose'];
    if (typeof c['pedantic'] === 'boolean') this.pedantic = c['pedantic'];
    if (typeof c['echo'] === 'boolean') this.echo = c['echo'];
    if (typeof c['headers'] === 'boolean') this.headers = c['headers'] && !this.ctx.options().noHeaderSupport;
    if (typeof c['no_responders'] === 'boolean') this.noResponders = c['no_responders'];
    if (typeof c['name'] === 'string') this.name = c['name'];
    if (typeof c['lang'] === 'string') this.lang = c['lang'];
    if (typeof c['version'] === 'string') this.version = c['version'];
    this.parser.headers = this.headers;
    if (this.noResponders && !this.headers) {
      this.fail('no responders requires headers support', 'No Responders Requires Headers');
      return;
    }
    const auth = this.ctx.authenticator();
    if (!auth.configured) {
      this.opened();
      return;
    }
    const creds: Credentials = {
      ...(typeof c['user'] === 'string' ? { user: c['user'] } : {}),
      ...(typeof c['pass'] === 'string' ? { pass: c['pass'] } : {}),
      ...(typeof c['auth_token'] === 'string' ? { authToken: c['auth_token'] } : {}),
    };
    // Kept for config reloads, which check every client's credentials again.
    this.creds = creds;
    this.state = State.Authenticating;
    this.parser.pause();
    auth.authenticate(creds, this.connType).then(
      (result) => {
        if (this.state === State.Closed) return;
        if (result === null) {
          this.ctx.log.warn(`${this.ip}:${this.port} - cid:${this.cid} - authentication error${creds.user ? ` - User "${creds.user}"` : ''}`);
          this.fail('Authorization Violation', 'Authentication Failure');
          return;
        }
        this.authorizedUser = result.user;
        this.perms = result.permissions;
        this.opened();
        this.parser.resume();
      },
      (err: unknown) => {
        this.ctx.log.error(`cid:${this.cid} - authentication failed unexpectedly: ${String(err)}`);
        this.fail('Authorization Violation', 'Authentication Failure');
      },
    );
  }

  private opened(): void {
    this.state = State.Open;
    this.authDeadline = 0;
    this.parser.awaitingAuth = false;
    if (this.verbose) this.out.writeString('+OK\r\n');
  }

  /** Ops other than CONNECT are refused until credentials were accepted, when auth is required. */
  private ready(): boolean {
    if (this.state === State.Open) return true;
    if (this.state === State.Closed) return false;
    const auth = this.ctx.authenticator();
    if (this.state === State.Fresh) {
      if (!auth.configured) return true;
      // Without CONNECT a client can only be the no_auth_user (nats-server does the same).
      const result = auth.authenticateWithoutConnect(this.connType);
      if (result !== null) {
        this.authorizedUser = result.user;
        this.perms = result.permissions;
        this.state = State.Open;
        this.authDeadline = 0;
        this.parser.awaitingAuth = false;
        return true;
      }
    }
    this.fail('Authorization Violation', 'Authentication Failure');
    return false;
  }

  onInfo(): void {
    // Clients may send INFO; nats-server ignores it.
  }

  onOk(): void {
    // +OK from a client is ignored.
  }

  onPub(subject: string, reply: string, hdrLen: number, data: Buffer): void {
    if (!this.ready()) return;
    if (hdrLen >= 0 && !this.headers) {
      // HPUB from a client that did not announce headers: closed without -ERR.
      this.close('Protocol Violation');
      return;
    }
    // An empty header block (nats.js sends one for empty headers()) travels as a plain message.
    if (hdrLen === 0) hdrLen = -1;
    if (this.pedantic && !isValidLiteralSubject(subject)) this.sendErr('Invalid Publish Subject');
    const perms = this.perms;
    if (perms !== undefined && !perms.canPublish(subject, Date.now())) {
      this.sendErr(permissionViolationPublish(subject));
      return;
    }
    if (reply !== '' && isReservedReply(reply)) {
      this.sendErr(permissionViolationReply(reply));
      return;
    }
    if (this.verbose) this.out.writeString('+OK\r\n');
    const msg: Message = { subject, reply, hdrLen, data };
    this.inMsgs++;
    this.inBytes += payloadSize(msg);
    const delivered = this.ctx.router.publish(msg, this);
    if (delivered === 0 && reply !== '' && this.noResponders) this.sendNoResponders(reply);
  }

  /** A 503 status on the requester's own subscription that matches the reply subject. */
  private sendNoResponders(reply: string): void {
    for (const sub of this.subs.values()) {
      if (sub.queue !== '' || !subjectMatches(sub.subject, reply)) continue;
      this.out.writeString(`HMSG ${reply} ${sub.sid} 16 16\r\n${NO_RESPONDERS_HDR}\r\n`);
      return;
    }
  }

  onSub(subject: string, queue: string, sid: string): void {
    if (!this.ready()) return;
    if (!isValidSubject(subject)) {
      this.sendErr('Invalid Subject');
      return;
    }
    const o = this.ctx.options();
    if (queue === '_sys_') {
      this.sendErr(permissionViolationSubscribe(subject, queue));
      return;
    }
    if (o.maxSubTokens > 0 && countTokens(subject) > o.maxSubTokens) {
      this.sendErr(`Permissions Violation for Subscription to ${goQuote(subject)}, too many tokens`);
      return;
    }
    if (this.perms !== undefined && !this.perms.canSubscribe(subject, queue)) {
      this.sendErr(permissionViolationSubscribe(subject, queue));
      return;
    }
    if (this.subs.has(sid)) {
      // A reused sid is ignored, the original subscription stays (nats-server).
      if (this.verbose) this.out.writeString('+OK\r\n');
      return;
    }
    if (o.maxSubscriptions > 0 && this.subs.size >= o.maxSubscriptions) {
      this.sendErr('maximum subscriptions exceeded');
      return;
    }
    const sub: ClientSub = { subject, queue, sid, owner: this, msgs: 0, max: 0 };
    this.subs.set(sid, sub);
    this.ctx.router.subscribe(sub);
    if (this.verbose) this.out.writeString('+OK\r\n');
  }

  onUnsub(sid: string, max: number): void {
    if (!this.ready()) return;
    const sub = this.subs.get(sid);
    if (sub !== undefined) {
      if (max > 0 && sub.msgs < max) sub.max = max;
      else this.removeSub(sub);
    }
    if (this.verbose) this.out.writeString('+OK\r\n');
  }

  onPing(): void {
    if (!this.ready()) return;
    this.out.writeString('PONG\r\n');
    this.firstPongSent = true;
  }

  onPong(): void {
    if (this.pingsOutstanding > 0 && this.pingSentAt > 0) {
      this.rttMs = Number(process.hrtime.bigint() / 1000n) / 1000 - this.pingSentAt;
      this.pingSentAt = 0;
    }
    this.pingsOutstanding = 0;
  }

  onError(kind: ProtocolErrorKind): void {
    switch (kind) {
      case 'unknown-op':
        this.fail('Unknown Protocol Operation', 'Protocol Violation');
        return;
      case 'bad-args':
        this.close('Protocol Violation');
        return;
      case 'control-line':
        this.fail('maximum control line exceeded', 'Maximum Control Line Exceeded');
        return;
      case 'max-payload':
        this.fail('Maximum Payload Violation', 'Maximum Message Payload Exceeded');
        return;
      case 'client-err':
        this.close('Parse Error');
        return;
      case 'auth-violation':
        this.fail('Authorization Violation', 'Authentication Failure');
        return;
    }
  }

  // ---- Subscriber ------------------------------------------------------------------

  deliver(sub: Subscription, msg: Message): void {
    if (this.state === State.Closed) return;
    const perms = this.perms;
    if (perms !== undefined && !perms.canDeliver(msg.subject)) return;
    const out = this.out;
    const hdrLen = msg.hdrLen;
    const data = msg.data;
    if (hdrLen >= 0 && this.headers) {
      writeMsgLine(out, msg.subject, sub.sid, msg.reply, hdrLen, data.length);
      writePayload(out, data);
      this.outBytes += data.length - hdrLen;
    } else {
      // Subscribers without header support get the payload alone, as MSG.
      const payload = hdrLen > 0 ? data.subarray(hdrLen) : data;
      writeMsgLine(out, msg.subject, sub.sid, msg.reply, -1, payload.length);
      writePayload(out, payload);
      this.outBytes += payload.length;
    }
    this.outMsgs++;
    if (perms !== undefined && msg.reply !== '' && perms.tracksResponses) perms.noteRequest(msg.reply, Date.now());
    if (sub.max > 0 && sub.msgs >= sub.max) this.removeSub(sub as ClientSub);
    if (out.pending > this.ctx.options().maxPending) this.slowConsumer('Slow Consumer (Pending Bytes)');
  }

  private removeSub(sub: ClientSub): void {
    if (this.subs.get(sub.sid) !== sub) return;
    this.subs.delete(sub.sid);
    this.ctx.router.unsubscribe(sub);
  }

  // ---- timers (driven by the server's housekeeping tick) ------------------------------

  /** Ping timer, stale detection, auth timeout and write deadline. */
  tick(now: number): void {
    if (this.state === State.Closed) return;
    const o = this.ctx.options();
    if (this.authDeadline > 0 && now >= this.authDeadline && this.state !== State.Open) {
      this.fail('Authentication Timeout', 'Authentication Timeout');
      return;
    }
    if (this.out.inflight > 0 && now - this.out.lastProgress > o.writeDeadlineMs) {
      this.slowConsumer('Slow Consumer (Write Deadline)');
      return;
    }
    if (now < this.nextPingAt) return;
    this.nextPingAt = now + o.pingIntervalMs;
    // Traffic from the client within the interval proves it is alive: no PING needed. The
    // first PING (about 2 s after connect) always goes, as nats-server's does: it measures RTT.
    if (this.firstPingSent && now - this.lastRxMs < o.pingIntervalMs) return;
    this.firstPingSent = true;
    if (this.pingsOutstanding + 1 > o.pingMax) {
      this.fail('Stale Connection', 'Stale Connection');
      return;
    }
    this.pingsOutstanding++;
    this.pingSentAt = Number(process.hrtime.bigint() / 1000n) / 1000;
    this.out.writeString('PING\r\n');
  }

  /** Lame duck mode: tell protocol-1 clients to go elsewhere. */
  sendAsyncInfo(info: string): void {
    if (this.state === State.Open && this.protocol >= 1 && this.firstPongSent) this.out.writeString(info);
  }

  /** Config reload: new limits apply to the parser at once. */
  applyLimits(maxControlLine: number, maxPayload: number): void {
    this.parser.maxControlLine = maxControlLine;
    this.parser.maxPayload = maxPayload;
  }

  /**
   * Config reload: check the credentials this client logged in with against the new
   * authorization (as nats-server does), then apply the user's new permissions.
   */
  reauthenticate(auth: Authenticator): void {
    if (this.state !== State.Open) return;
    const done = (result: AuthResult | null): void => {
      if (this.state !== State.Open) return;
      if (result === null) {
        this.fail('Authorization Violation', 'Authentication Failure');
        return;
      }
      this.authorizedUser = result.user;
      this.applyPermissions(result.permissions);
    };
    if (!auth.configured) {
      done({});
      return;
    }
    if (this.creds === null) {
      done(auth.authenticateWithoutConnect(this.connType));
      return;
    }
    auth.authenticate(this.creds, this.connType).then(done, () => done(null));
  }

  private applyPermissions(perms: CompiledPermissions | undefined): void {
    this.perms = perms;
    if (perms === undefined) return;
    for (const sub of [...this.subs.values()]) {
      if (!perms.canSubscribe(sub.subject, sub.queue)) {
        this.sendErr(`Permissions Violation for Subscription to ${goQuote(sub.subject)} (sid ${goQuote(sub.sid)})`);
        this.removeSub(sub);
      }
    }
  }

  // ---- closing ---------------------------------------------------------------------

  private sendErr(text: string): void {
    this.out.writeString(`-ERR '${text}'\r\n`);
  }

  /** Send -ERR, then close. */
  private fail(err: string, reason: CloseReason): void {
    if (this.state === State.Closed) return;
    this.sendErr(err);
    this.close(reason);
  }

  private slowConsumer(reason: CloseReason): void {
    if (this.state === State.Closed) return;
    this.ctx.log.warn(`${this.ip}:${this.port} - cid:${this.cid} - "${this.name}" - Slow Consumer Detected: ${reason === 'Slow Consumer (Write Deadline)' ? 'WriteDeadline exceeded' : 'MaxPending exceeded'} with ${this.out.pending} bytes pending`);
    this.ctx.slowConsumer(this);
    // nats-server 2.9 cuts a slow consumer without an -ERR.
    this.close(reason, true);
  }

  /** Close the connection; queued output (an -ERR) is flushed first unless `abort`. */
  close(reason: CloseReason, abort = false): void {
    if (this.state === State.Closed) return;
    this.state = State.Closed;
    this.reason = reason;
    this.stop = new Date();
    this.parser.stop();
    const socket = this.socket;
    if (abort) {
      this.out.close();
      socket.destroy();
    } else {
      this.out.flushNow();
      this.out.close();
      socket.end();
      // A peer that never reads must not keep the socket (and its buffers) forever.
      setTimeout(() => socket.destroy(), 2000).unref();
    }
    this.ctx.router.unsubscribeAll([...this.subs.values()]);
    this.ctx.budget.forget(this);
    this.ctx.clientClosed(this);
    this.subs.clear();
  }
}

function stripV4Mapped(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
