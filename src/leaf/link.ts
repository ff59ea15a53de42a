/**
 * One leafnode remote: the connection this server dials to a hub nats-server, from handshake
 * to reconnect (leafnode.md §1-§11). On the router the link is one subscriber: the hub's
 * interest (LS+) becomes its subscriptions, so a local publish reaches the link exactly when
 * the hub wants it, and messages from the hub are published on the router with the link as
 * origin (never echoed back to it).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { MemoryBudget } from '../core/budget.js';
import type { Message } from '../core/message.js';
import type { Router } from '../core/router.js';
import { isValidSubject, subjectIsSubsetOf, subjectMatches } from '../core/subject.js';
import type { LinkSubscriber, Subscription } from '../core/subscription.js';
import type { Logger } from '../log.js';
import { putInt, putString } from '../nats/encode.js';
import { LEAF_DEFAULT_PORT, redactUrl, urlCredentials } from './config.js';
import { nkeyAuth, readCredentials, signNonce } from './credentials.js';
import type { LocalInterest } from './interest.js';
import { LeafParser, LeafProtocolError, type LeafProtocolHandler } from './parser.js';
import type { ReplaySender, Replayer } from './replay.js';
import type { LeafLinkState, LeafLinkView, LeafRemoteOptions } from './types.js';
import { LinkWriter } from './writer.js';

/** What a link needs from the server around it. */
export interface LeafContext {
  readonly router: Router;
  readonly budget: MemoryBudget;
  readonly log: Logger;
  readonly serverId: string;
  readonly serverName: string;
  /** Version claimed in CONNECT (hubs with min_version compare it). */
  readonly version: string;
  readonly maxPayload: number;
  /** Bytes a link may queue before live messages are dropped (buffered ones go to the store). */
  readonly maxPending: number;
  readonly pingIntervalMs: number;
  readonly pingMax: number;
  /** Our JetStream domain ('' = none) and whether JetStream runs. */
  readonly jsDomain: string;
  readonly jetstream: boolean;
  nextCid(): number;
}

/** Interest a buffered subject's sid carries: the store-and-forward queue, not the hub. */
export const BUFFER_SID = '$buffer';

/** nats-server waits this long for the INFO that answers CONNECT ("Stale Leaf Node Connection"). */
const CONNECT_INFO_TIMEOUT_MS = 2000;
const SPECIAL_DELAY_MS = 30_000;
const MIN_VERSION_DELAY_MS = 5000;
const MAX_BACKOFF_MS = 10_000;
/** Never forwarded in a non-system account unless a domain maps them (leafnode.md §9.1). */
const JS_DENIED_PREFIXES = ['$JS.API.', '$KV.', '$OBJ.'];

interface HubInfo {
  server_id?: string;
  server_name?: string;
  headers?: boolean;
  tls_required?: boolean;
  max_payload?: number;
  client_id?: number;
  nonce?: string;
  domain?: string;
  leafnode_urls?: string[];
  info_on_connect?: boolean;
  connect_info?: boolean;
  remote_account?: string;
  ldm?: boolean;
  import?: { allow?: string[]; deny?: string[] };
  export?: { allow?: string[]; deny?: string[] };
}

type Phase = 'idle' | 'info' | 'connect_info' | 'syncing' | 'up';

interface HubSub extends Subscription {
  weight: number;
}

export class LeafLink implements LinkSubscriber, LeafProtocolHandler, ReplaySender {
  readonly kind = 'leaf' as const;
  readonly echo = false;
  readonly cid: number;
  private readonly urls: URL[];
  private urlIndex = 0;
  private current: URL | null = null;
  private sock: Socket | TLSSocket | null = null;
  private writer: LinkWriter | null = null;
  private parser: LeafParser | null = null;
  private hub: HubInfo | null = null;
  private phase: Phase = 'idle';
  private state: LeafLinkState = 'disconnected';
  private since = new Date();
  private upDownSince = new Date();
  private readonly hubSubs = new Map<string, HubSub>();
  private readonly bufferSubs: Subscription[] = [];
  /** The loop-detection subject of our account (leafnode.md §7). */
  private readonly lds = `$LDS.${randomToken(22)}`;
  private failures = 0;
  private nextDelayMs = 0;
  private stopped = false;
  private dialTimer: NodeJS.Timeout | null = null;
  private stepTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private pingsOut = 0;
  private pingSentAt = 0;
  private rttMs = -1;
  private closeReason = '';
  private lastError = '';
  private hubHeaders = false;
  private importDeny: string[] = [];
  private exportAllow: string[] | null = null;
  private exportDeny: string[] = [];
  private stopInterest: (() => void) | null = null;
  private readonly counters = { inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0, connects: 0, dropped: 0 };

  constructor(
    private readonly ctx: LeafContext,
    readonly remote: LeafRemoteOptions,
    private readonly interest: LocalInterest,
    private readonly replay: Replayer | null,
    private readonly reconnectMs: number,
  ) {
    this.cid = ctx.nextCid();
    this.urls = remote.noRandomize ? [...remote.urls] : shuffle([...remote.urls]);
    if (replay !== null && remote.buffer !== undefined) {
      for (const subject of remote.buffer.subjects) {
        const sub: Subscription = { subject, queue: '', sid: BUFFER_SID, owner: this, msgs: 0, max: 0 };
        this.bufferSubs.push(sub);
        ctx.router.subscribe(sub);
      }
    }
  }

  start(): void {
    this.dial();
  }

  /** Server shutdown: close the link and never redial. */
  stop(): void {
    this.stopped = true;
    if (this.dialTimer !== null) clearTimeout(this.dialTimer);
    this.teardown('Server Shutdown');
    if (this.bufferSubs.length > 0) this.ctx.router.unsubscribeAll(this.bufferSubs);
    this.bufferSubs.length = 0;
  }

  // ---- dialing and the handshake ---------------------------------------------------------

  private dial(): void {
    this.dialTimer = null;
    if (this.stopped) return;
    const url = this.urls[this.urlIndex % this.urls.length]!;
    this.urlIndex++;
    this.current = url;
    this.setState('connecting');
    this.hub = null;
    this.closeReason = '';
    this.nextDelayMs = 0;
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = Number(url.port === '' ? String(LEAF_DEFAULT_PORT) : url.port);
    const tlsFirst = this.remote.tls?.handshakeFirst === true;
    let sock: Socket | TLSSocket;
    try {
      sock = tlsFirst ? tlsConnect({ host, port, ...this.tlsOptions(host) }) : netConnect({ host, port });
    } catch (err) {
      this.failed(`Error trying to connect: ${(err as Error).message}`);
      return;
    }
    this.attach(sock);
    this.phase = 'info';
    this.armStep(this.remote.firstInfoTimeoutMs + (tlsFirst ? (this.remote.tls?.timeoutMs ?? 2000) : 0), 'Timeout waiting for the hub INFO');
  }

  private attach(sock: Socket | TLSSocket): void {
    this.sock = sock;
    sock.setNoDelay(true);
    this.parser ??= new LeafParser(this, this.ctx.maxPayload);
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (err) => {
      if (this.closeReason === '') this.closeReason = err.message;
    });
    sock.on('close', () => this.onSocketClose(sock));
  }

  private onData(chunk: Buffer): void {
    const p = this.parser;
    if (p === null) return;
    try {
      p.feed(chunk);
    } catch (err) {
      if (err instanceof LeafProtocolError) {
        this.ctx.log.error(`Leafnode ${this.label()} protocol error: ${err.message}`);
        this.closeLink(`Protocol Violation: ${err.message}`);
        return;
      }
      throw err;
    }
  }

  private tlsOptions(host: string): ConnectionOptions {
    const t = this.remote.tls;
    const o: ConnectionOptions = { servername: isIp(host) ? '' : host };
    if (t === undefined) return o;
    if (t.caFile !== undefined) o.ca = readFileSync(t.caFile);
    if (t.certFile !== undefined) o.cert = readFileSync(t.certFile);
    if (t.keyFile !== undefined) o.key = readFileSync(t.keyFile);
    o.rejectUnauthorized = !t.insecure;
    return o;
  }

  info(json: string): void {
    let info: HubInfo;
    try {
      info = JSON.parse(json) as HubInfo;
    } catch {
      this.closeLink('Invalid INFO from the hub');
      return;
    }
    if (this.phase === 'info') return this.firstInfo(info);
    if (info.connect_info === true && this.phase === 'connect_info') return this.connectInfo(info);
    this.asyncInfo(info);
  }

  private firstInfo(info: HubInfo): void {
    this.clearStep();
    if (info.leafnode_urls === undefined && info.info_on_connect !== true) {
      this.ctx.log.error(`Leafnode ${this.label()}: the remote is not a leafnode port (its INFO has no leafnode_urls)`);
      this.closeLink('Not a leafnode port');
      return;
    }
    this.hub = info;
    this.hubHeaders = info.headers === true;
    if (info.max_payload !== undefined && info.max_payload > 0) this.parser?.setMaxPayload(Math.max(info.max_payload, this.ctx.maxPayload));
    this.mergeUrls(info.leafnode_urls);
    const url = this.current!;
    const wantTls = url.protocol === 'tls:' || this.remote.tls !== undefined || info.tls_required === true;
    const sock = this.sock;
    if (wantTls && sock !== null && !(sock as TLSSocket).encrypted) {
      this.upgradeTls(sock as Socket, info);
      return;
    }
    this.sendConnect(info);
  }

  private upgradeTls(raw: Socket, info: HubInfo): void {
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('error');
    raw.on('error', () => undefined);
    const host = this.current!.hostname;
    const timeout = this.remote.tls?.timeoutMs ?? 2000;
    const tls = tlsConnect({ socket: raw, ...this.tlsOptions(host) });
    this.armStep(timeout, 'TLS handshake timeout');
    tls.once('secureConnect', () => {
      this.clearStep();
      this.sendConnect(info);
    });
    this.attach(tls);
  }

  private sendConnect(info: HubInfo): void {
    const connect: Record<string, unknown> = {
      version: this.ctx.version,
      server_id: this.ctx.serverId,
      name: this.ctx.serverName,
      headers: true,
      remote_account: this.remote.account,
      protocol: 1,
    };
    if (this.ctx.jetstream) connect['jetstream'] = true;
    if (this.ctx.jsDomain !== '') connect['domain'] = this.ctx.jsDomain;
    if (this.remote.denyImports.length > 0) connect['deny_pub'] = this.remote.denyImports;
    const nonce = info.nonce ?? '';
    try {
      if (this.remote.credentials !== undefined) {
        const creds = readCredentials(this.remote.credentials);
        connect['jwt'] = creds.jwt;
        connect['sig'] = signNonce(creds.seed, nonce);
        creds.seed.fill(0);
      } else if (this.remote.nkeySeed !== undefined) {
        const seed = new TextEncoder().encode(this.remote.nkeySeed);
        const a = nkeyAuth(seed, nonce);
        seed.fill(0);
        connect['nkey'] = a.nkey;
        connect['sig'] = a.sig;
      }
    } catch (err) {
      this.ctx.log.error(`Leafnode ${this.label()}: credentials: ${(err as Error).message}`);
      this.closeLink(`Credentials: ${(err as Error).message}`);
      return;
    }
    const u = urlCredentials(this.current!);
    const user = u.user ?? this.remote.user;
    const pass = u.user !== undefined ? u.pass : this.remote.password;
    if (user !== undefined && user !== '') {
      connect['user'] = user;
      if (pass !== undefined && pass !== '') connect['pass'] = pass;
      // A password-less URL user is a token: 2.9 hubs match it as `user`, 2.11 as `auth_token`.
      else connect['auth_token'] = user;
    }
    this.control(`CONNECT ${JSON.stringify(connect)}\r\n`);
    if (info.info_on_connect === true) {
      this.phase = 'connect_info';
      this.armStep(CONNECT_INFO_TIMEOUT_MS, 'Stale Leaf Node Connection');
    } else this.sync();
  }

  private connectInfo(info: HubInfo): void {
    this.clearStep();
    this.hub = { ...this.hub, ...info, nonce: '' };
    this.importDeny = info.import?.deny ?? [];
    this.exportAllow = info.export?.allow !== undefined && info.export.allow.length > 0 ? info.export.allow : null;
    this.exportDeny = info.export?.deny ?? [];
    this.mergeUrls(info.leafnode_urls);
    this.sync();
  }

  private asyncInfo(info: HubInfo): void {
    this.mergeUrls(info.leafnode_urls);
    if (info.import !== undefined) this.importDeny = info.import.deny ?? [];
    if (info.export !== undefined) {
      this.exportAllow = info.export.allow !== undefined && info.export.allow.length > 0 ? info.export.allow : null;
      this.exportDeny = info.export.deny ?? [];
    }
    if (info.ldm === true) this.ctx.log.warn(`Leafnode ${this.label()}: the hub is in lame duck mode; it will close the link`);
  }

  /** Send our whole interest, our loop-detection subject, then a PING whose PONG marks the end of the hub's LS+ burst. */
  private sync(): void {
    this.phase = 'syncing';
    let lines = `LS+ ${this.lds}\r\n`;
    for (const [subject, queue, weight] of this.interest.entries()) {
      if (!this.mayAdvertise(subject)) continue;
      lines += queue === '' ? `LS+ ${subject}\r\n` : `LS+ ${subject} ${queue} ${weight}\r\n`;
    }
    this.control(lines);
    this.out()?.ping('sync');
    this.pingSentAt = Date.now();
    this.pingsOut = 1;
    this.stopInterest = this.interest.listen((subject, queue, weight) => this.localInterest(subject, queue, weight));
    this.armStep(CONNECT_INFO_TIMEOUT_MS * 5, 'Timeout waiting for the hub to answer PING');
  }

  private up(): void {
    this.clearStep();
    this.phase = 'up';
    this.failures = 0;
    this.counters.connects++;
    this.lastError = '';
    this.setState('connected');
    const hubName = this.hub?.server_name !== undefined && this.hub.server_name !== '' ? this.hub.server_name : (this.hub?.server_id ?? '');
    this.ctx.log.info(`Leafnode connection created for account: ${this.remote.account} on ${redactUrl(this.current!)} (hub "${hubName}", remote account "${this.hub?.remote_account ?? this.remote.account}")`);
    this.pingTimer = setInterval(() => this.sendPing(), this.ctx.pingIntervalMs);
    this.pingTimer.unref();
    this.replay?.linkUp(this);
  }

  // ---- LeafProtocolHandler: what the hub sends ---------------------------------------------

  ping(): void {
    this.control('PONG\r\n');
  }

  pong(): void {
    const tag = this.writer?.pong() ?? null;
    // Any PONG shows the hub is reading: a busy link is alive even when its keepalive is queued.
    this.pingsOut = 0;
    if (tag === 'keepalive' || tag === 'sync') this.rttMs = Date.now() - this.pingSentAt;
    if (tag === 'sync' && this.phase === 'syncing') this.up();
  }

  err(text: string): void {
    this.lastError = text;
    this.ctx.log.error(`Leafnode ${this.label()} error from the hub: '${text}'`);
    const t = text.toLowerCase();
    if (t.includes('loop detected') || t.includes('same cluster name') || t.includes('permissions violation')) this.nextDelayMs = SPECIAL_DELAY_MS;
    else if (t.includes('minimum version')) this.nextDelayMs = MIN_VERSION_DELAY_MS;
    // The hub closes after every -ERR it sends a leaf; so do we, without waiting for it.
    this.closeLink(text);
  }

  subscribe(subject: string, queue: string, weight: number): void {
    if (subject === this.lds) {
      const text = `Loop detected for leafnode account="${this.remote.account}". Delaying attempt to reconnect for 30s`;
      this.ctx.log.error(`Leafnode ${this.label()}: ${text}`);
      this.lastError = text;
      this.nextDelayMs = SPECIAL_DELAY_MS;
      this.control(`-ERR '${text}'\r\n`);
      this.closeLink('Loop Detected');
      return;
    }
    if (subject.startsWith('$LDS.') || !isValidSubject(subject) || isJsDenied(subject)) return;
    for (const d of this.remote.denyExports) if (subjectIsSubsetOf(subject, d)) return;
    const key = queue === '' ? subject : subject + ' ' + queue;
    const existing = this.hubSubs.get(key);
    if (existing !== undefined) {
      existing.weight = weight;
      return;
    }
    const sub: HubSub = { subject, queue, sid: key, owner: this, msgs: 0, max: 0, weight };
    this.hubSubs.set(key, sub);
    this.ctx.router.subscribe(sub);
  }

  unsubscribe(subject: string, queue: string): void {
    const key = queue === '' ? subject : subject + ' ' + queue;
    const sub = this.hubSubs.get(key);
    if (sub === undefined) return;
    this.hubSubs.delete(key);
    this.ctx.router.unsubscribe(sub);
  }

  message(subject: string, reply: string, queues: string[] | null, hdrLen: number, data: Uint8Array): void {
    const c = this.counters;
    c.inMsgs++;
    c.inBytes += hdrLen > 0 ? data.length - hdrLen : data.length;
    for (const d of this.remote.denyImports) if (subjectMatches(d, subject)) return;
    for (const d of this.importDeny) if (subjectMatches(d, subject)) return;
    const at = jsAckDeliverAt(reply);
    const msg: Message =
      at < 0
        ? { subject, reply, hdrLen, data }
        : { subject: reply.slice(at + 1), reply: reply.slice(0, at), hdrLen, data, to: subject };
    this.ctx.router.publish(msg, this, queues);
  }

  // ---- LinkSubscriber: what local publishers send the hub ----------------------------------

  deliver(): void {
    // The router calls forward() for links; deliver() is never used.
  }

  forward(msg: Message, plain: readonly Subscription[], queues: readonly string[]): void {
    let hubWants = queues.length > 0;
    let buffered = false;
    for (let i = 0; i < plain.length; i++) {
      if (plain[i]!.sid === BUFFER_SID) buffered = true;
      else hubWants = true;
    }
    const replay = this.replay;
    if (buffered && replay !== null && replay.takes()) {
      replay.append(msg);
      return;
    }
    if (!hubWants || this.phase !== 'up' && this.phase !== 'syncing') return;
    const subject = msg.to ?? msg.subject;
    if (!this.mayExport(subject)) return;
    const w = this.writer;
    if (w === null) return;
    if (w.pending > this.ctx.maxPending) {
      this.counters.dropped++;
      return;
    }
    let reply = msg.reply;
    if (msg.to !== undefined && reply !== '') reply = `${reply}@${msg.subject}`;
    this.writeMsg(subject, reply, queues, msg.hdrLen, msg.data);
  }

  // ---- ReplaySender: the store-and-forward replay sends through the link -------------------

  /** The hub's interest in `subject` now: whether any plain interest, and its queue groups with no member here. */
  hubInterest(subject: string): { plain: boolean; queues: string[] } | null {
    if (this.phase !== 'up' || !this.mayExport(subject)) return null;
    const r = this.ctx.router.index.match(subject);
    let plain = false;
    for (const s of r.plain) if (s.owner === this && s.sid !== BUFFER_SID) plain = true;
    const queues: string[] = [];
    for (const group of r.queues) {
      let ours = false;
      let local = false;
      for (const s of group) {
        if (s.owner === this) ours = true;
        else if (s.owner.kind !== 'leaf') local = true;
      }
      if (ours && !local) queues.push(group[0]!.queue);
    }
    return plain || queues.length > 0 ? { plain, queues } : null;
  }

  get headers(): boolean {
    return this.hubHeaders;
  }

  get pendingBytes(): number {
    return this.writer?.pending ?? 0;
  }

  /** How far the hub has read the data lane (confirmed by PONGs), not just the local socket. */
  get flushedOffset(): number {
    return this.writer?.confirmedOffset ?? 0;
  }

  /** Queue one message for the hub; returns the data-lane offset after it (see LinkWriter). */
  send(subject: string, reply: string, queues: readonly string[], hdrLen: number, data: Uint8Array): number {
    this.writeMsg(subject, reply, queues, hdrLen, data);
    return this.writer?.queuedOffset ?? 0;
  }

  private writeMsg(subject: string, reply: string, queues: readonly string[], hdrLen: number, data: Uint8Array): void {
    const w = this.writer!;
    let hl = hdrLen;
    let body = data;
    if (hl >= 0 && !this.hubHeaders) {
      body = data.subarray(hl);
      hl = -1;
    }
    const c = this.counters;
    c.outMsgs++;
    c.outBytes += hl > 0 ? body.length - hl : body.length;
    let qlen = 0;
    for (let i = 0; i < queues.length; i++) qlen += queues[i]!.length + 1;
    // Worst case: 3 UTF-8 bytes per UTF-16 unit, two 10-digit sizes, verb and separators.
    const need = (subject.length + reply.length + qlen) * 3 + 40 + body.length;
    if (need <= 16 * 1024) {
      const buf = w.reserve(need);
      const start = w.cursor;
      let p = start;
      if (hl >= 0) buf[p++] = 0x48; // H
      else buf[p++] = 0x4c; // L
      buf[p++] = 0x4d; // M
      buf[p++] = 0x53; // S
      buf[p++] = 0x47; // G
      buf[p++] = 0x20;
      p = putString(buf, p, subject);
      if (queues.length > 0) {
        buf[p++] = 0x20;
        if (reply !== '') {
          buf[p++] = 0x2b; // +
          buf[p++] = 0x20;
          p = putString(buf, p, reply);
        } else buf[p++] = 0x7c; // |
        for (let i = 0; i < queues.length; i++) {
          buf[p++] = 0x20;
          p = putString(buf, p, queues[i]!);
        }
      } else if (reply !== '') {
        buf[p++] = 0x20;
        p = putString(buf, p, reply);
      }
      buf[p++] = 0x20;
      if (hl >= 0) {
        p = putInt(buf, p, hl);
        buf[p++] = 0x20;
      }
      p = putInt(buf, p, body.length);
      buf[p++] = 0x0d;
      buf[p++] = 0x0a;
      buf.set(body, p);
      p += body.length;
      buf[p++] = 0x0d;
      buf[p++] = 0x0a;
      w.commitData(p - start);
      return;
    }
    let line = hl >= 0 ? 'HMSG ' : 'LMSG ';
    line += subject;
    if (queues.length > 0) {
      line += reply !== '' ? ` + ${reply}` : ' |';
      for (let i = 0; i < queues.length; i++) line += ' ' + queues[i];
    } else if (reply !== '') line += ' ' + reply;
    line += hl >= 0 ? ` ${hl} ${body.length}\r\n` : ` ${body.length}\r\n`;
    const head = Buffer.from(line, 'utf8');
    w.dataBytes(head);
    w.dataBytes(Buffer.from(body));
    w.dataBytes(CRLF);
  }

  // ---- interest ----------------------------------------------------------------------------

  private localInterest(subject: string, queue: string, weight: number): void {
    if (!this.mayAdvertise(subject)) return;
    if (weight === 0) this.control(queue === '' ? `LS- ${subject}\r\n` : `LS- ${subject} ${queue}\r\n`);
    else this.control(queue === '' ? `LS+ ${subject}\r\n` : `LS+ ${subject} ${queue} ${weight}\r\n`);
  }

  /** What we may tell the hub we want: never the JetStream API, our deny_imports or the hub's import denies. */
  private mayAdvertise(subject: string): boolean {
    if (isJsDenied(subject)) return false;
    for (const d of this.remote.denyImports) if (subjectIsSubsetOf(subject, d)) return false;
    for (const d of this.importDeny) if (subjectIsSubsetOf(subject, d)) return false;
    return true;
  }

  private mayExport(subject: string): boolean {
    if (subject.charCodeAt(0) === 0x24 && isJsDenied(subject)) return false;
    const deny = this.remote.denyExports;
    for (let i = 0; i < deny.length; i++) if (subjectMatches(deny[i]!, subject)) return false;
    const hubDeny = this.exportDeny;
    for (let i = 0; i < hubDeny.length; i++) if (subjectMatches(hubDeny[i]!, subject)) return false;
    const allow = this.exportAllow;
    if (allow !== null) {
      for (const a of allow) if (subjectMatches(a, subject)) return true;
      return false;
    }
    return true;
  }

  // ---- PING, timers, close and redial ------------------------------------------------------

  private sendPing(): void {
    if (this.phase !== 'up') return;
    if (this.pingsOut >= this.ctx.pingMax) {
      this.ctx.log.error(`Leafnode ${this.label()}: Stale Connection (${this.pingsOut} PINGs unanswered)`);
      this.closeLink('Stale Connection');
      return;
    }
    this.pingsOut++;
    this.pingSentAt = Date.now();
    this.out()?.ping('keepalive');
  }

  private control(line: string): void {
    this.out()?.controlLine(line);
  }

  /** The writer of the current socket, made on first use (after TLS, when there is TLS). */
  private out(): LinkWriter | null {
    const sock = this.sock;
    if (sock === null) return null;
    if (this.writer === null) {
      this.writer = new LinkWriter(sock, this.ctx.budget);
      const replay = this.replay;
      if (replay !== null) this.writer.onProgress = () => replay.progress();
    }
    return this.writer;
  }

  private armStep(ms: number, reason: string): void {
    this.clearStep();
    this.stepTimer = setTimeout(() => {
      this.stepTimer = null;
      this.ctx.log.error(`Leafnode ${this.label()}: ${reason}`);
      this.lastError = reason;
      this.closeLink(reason);
    }, ms);
    this.stepTimer.unref();
  }

  private clearStep(): void {
    if (this.stepTimer !== null) clearTimeout(this.stepTimer);
    this.stepTimer = null;
  }

  private closeLink(reason: string): void {
    if (this.closeReason === '') this.closeReason = reason;
    const sock = this.sock;
    if (sock === null) return;
    this.writer?.flush();
    sock.end();
    sock.destroy();
  }

  private onSocketClose(sock: Socket | TLSSocket): void {
    if (sock !== this.sock) return;
    const wasUp = this.phase === 'up';
    const reason = this.closeReason !== '' ? this.closeReason : wasUp ? 'Remote closed the link' : 'Connection closed before the link was up';
    this.teardown(reason);
    if (this.stopped) return;
    if (wasUp) this.ctx.log.warn(`Leafnode connection to ${redactUrl(this.current!)} closed: ${reason}`);
    else this.failed(reason);
    this.scheduleDial();
  }

  private failed(reason: string): void {
    this.failures++;
    if (this.lastError === '' || !this.lastError.includes(reason)) this.lastError = reason;
    this.ctx.log.error(`Error trying to connect as leafnode to remote server ${redactUrl(this.current!)} (attempt ${this.failures}): ${reason}`);
  }

  private scheduleDial(): void {
    let delay = this.nextDelayMs;
    if (delay === 0) {
      const base = this.reconnectMs;
      const cap = Math.max(base, MAX_BACKOFF_MS);
      delay = Math.min(cap, base * 2 ** Math.min(Math.max(this.failures - 1, 0), 10));
      delay += Math.floor(Math.random() * (delay / 2));
    }
    this.dialTimer = setTimeout(() => this.dial(), delay);
    this.dialTimer.unref();
  }

  /** Drop everything of the current connection: its hub interest, timers, writer, socket. */
  private teardown(reason: string): void {
    this.clearStep();
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.stopInterest?.();
    this.stopInterest = null;
    if (this.hubSubs.size > 0) {
      this.ctx.router.unsubscribeAll([...this.hubSubs.values()]);
      this.hubSubs.clear();
    }
    const wasUp = this.phase === 'up';
    this.phase = 'idle';
    this.writer?.close();
    this.writer = null;
    this.parser = null;
    const sock = this.sock;
    this.sock = null;
    sock?.destroy();
    this.pingsOut = 0;
    this.importDeny = [];
    this.exportAllow = null;
    this.exportDeny = [];
    if (wasUp) this.replay?.linkDown();
    if (this.state !== 'disconnected') this.setState('disconnected');
    if (reason !== '' && this.lastError === '' && !wasUp) this.lastError = reason;
  }

  private setState(s: LeafLinkState): void {
    if ((s === 'connected') !== (this.state === 'connected')) this.upDownSince = new Date();
    this.state = s;
    this.since = new Date();
  }

  private mergeUrls(list: string[] | undefined): void {
    if (list === undefined) return;
    for (const hp of list) {
      const known = this.urls.some((u) => `${u.hostname}:${u.port === '' ? String(LEAF_DEFAULT_PORT) : u.port}` === hp);
      if (known) continue;
      try {
        const base = this.current!;
        const u = new URL(`${base.protocol}//${hp}`);
        if (base.username !== '') u.username = base.username;
        if (base.password !== '') u.password = base.password;
        this.urls.push(u);
      } catch {
        // A malformed URL from the hub is ignored; the configured ones still work.
      }
    }
  }

  private label(): string {
    return this.current === null ? redactUrl(this.remote.urls[0]!) : redactUrl(this.current);
  }

  // ---- monitoring --------------------------------------------------------------------------

  view(): LeafLinkView {
    const sock = this.sock;
    const c = this.counters;
    const hub = this.hub;
    const subs = [...this.hubSubs.values()];
    return {
      name: hub === null ? '' : hub.server_name !== undefined && hub.server_name !== '' ? hub.server_name : (hub.server_id ?? ''),
      url: this.current === null ? redactUrl(this.remote.urls[0]!) : redactUrl(this.current),
      state: this.state,
      since: this.since,
      upDownSince: this.upDownSince,
      failedDials: this.failures,
      account: this.remote.account,
      remoteAccount: hub?.remote_account ?? '',
      ip: sock?.remoteAddress ?? '',
      port: sock?.remotePort ?? 0,
      rttMs: this.rttMs,
      inMsgs: c.inMsgs,
      outMsgs: c.outMsgs,
      inBytes: c.inBytes,
      outBytes: c.outBytes,
      subscriptions: () => subs.map((s) => (s.queue === '' ? s.subject : `${s.subject} ${s.queue}`)),
      connects: c.connects,
      lastError: this.lastError,
      ...(this.replay !== null ? { buffer: this.replay.view() } : {}),
    };
  }

  /** Live messages dropped because the uplink could not keep up (buffered subjects go to the store instead). */
  get droppedLive(): number {
    return this.counters.dropped;
  }
}

const CRLF = Buffer.from('\r\n');

function isJsDenied(subject: string): boolean {
  for (const p of JS_DENIED_PREFIXES) if (subject.startsWith(p)) return true;
  return false;
}

/**
 * Where `reply` carries a JetStream delivery's original subject (`$JS.ACK....@subject`,
 * leafnode.md §5.0): the index of that '@', or -1.
 */
function jsAckDeliverAt(reply: string): number {
  if (!reply.startsWith('$JS.ACK.')) return -1;
  let dots = 0;
  for (let i = 0; i < reply.length; i++) {
    const c = reply.charCodeAt(i);
    if (c === 0x2e) dots++;
    else if (c === 0x40 && dots >= 8) return i;
  }
  return -1;
}

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function isIp(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}

const TOKEN_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export function randomToken(n: number): string {
  const b = randomBytes(n);
  let s = '';
  for (let i = 0; i < n; i++) s += TOKEN_ALPHABET[b[i]! % TOKEN_ALPHABET.length];
  return s;
}
