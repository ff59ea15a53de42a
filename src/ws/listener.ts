/**
 * The websocket port, as nats-server runs it: an HTTP (or HTTPS) server whose upgrade requests
 * become NATS client connections, or MQTT connections when the path starts with `/mqtt`
 * (nats-server's prefix rule). Origin checks and the websocket block's own credential apply
 * before a connection exists; after the upgrade the NATS and MQTT connections run unchanged
 * over a WebSocketStream.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import WebSocket, { WebSocketServer } from 'ws';
import type { ServerOptions } from '../config/options.js';
import type { StreamMeta } from '../mqtt/connection.js';
import { Authenticator } from '../nats/auth.js';
import { ClientConnection, type PeerAddress } from '../nats/client.js';
import type { ClientContext } from '../nats/context.js';
import type { WebsocketOptions } from './config.js';
import { OriginPolicy } from './origin.js';
import { WebSocketStream } from './stream.js';

const MQTT_PATH = '/mqtt';
const LEAFNODE_PATH = '/leafnode';
/**
 * Largest WebSocket message accepted. Clients batch many protocol operations into one message,
 * so it is well above max_payload, but bounded: the ws default (100 MiB) is most of an edge
 * board's memory.
 */
const MIN_MESSAGE_LIMIT = 16 * 1024 * 1024;

export interface WebsocketHooks {
  /** Clients connected now (max_connections counts websocket clients too). */
  clientCount(): number;
  accepted(client: ClientConnection): void;
  /** Starts MQTT on an upgraded stream; null when the mqtt block is off. */
  mqtt(): ((stream: Duplex, meta: StreamMeta) => void) | null;
}

function stripV4Mapped(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

/** A plain HTTP error answer on a socket that asked to upgrade (nats-server's bodies). */
function refuse(socket: Duplex, status: number, text: string): void {
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nSec-Websocket-Version: 13\r\n` +
      `X-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** The block's credential or no_auth_user replace the top-level ones (nats-server's "auth override"). */
function overridesAuth(wo: WebsocketOptions): boolean {
  const a = wo.authorization;
  return a?.user !== undefined || a?.token !== undefined || wo.noAuthUser !== undefined;
}

/**
 * What websocket NATS clients are checked against, as in nats-server: the block's own user or
 * token when given; else the top-level users, with the block's no_auth_user and auth timeout
 * when given. null: exactly the server's own authenticator.
 */
function ownAuthenticator(wo: WebsocketOptions, server: ServerOptions): Authenticator | null {
  const a = wo.authorization;
  if (a !== undefined && (a.user !== undefined || a.token !== undefined)) {
    return new Authenticator({
      authorization: {
        timeoutMs: a.timeoutMs ?? server.authorization?.timeoutMs ?? 2000,
        ...(a.user !== undefined ? { user: a.user, password: a.password ?? '' } : {}),
        ...(a.token !== undefined ? { token: a.token } : {}),
      },
    });
  }
  if (wo.noAuthUser === undefined && a?.timeoutMs === undefined) return null;
  const base = server.authorization;
  const noAuthUser = wo.noAuthUser ?? server.noAuthUser;
  return new Authenticator({
    ...(base !== undefined ? { authorization: a?.timeoutMs !== undefined ? { ...base, timeoutMs: a.timeoutMs } : base } : {}),
    ...(noAuthUser !== undefined ? { noAuthUser } : {}),
  });
}

export class WebsocketListener {
  private http: HttpServer | null = null;
  private readonly wss: WebSocketServer;
  private readonly origins: OriginPolicy;
  private auth: Authenticator | null;
  /** What websocket NATS clients see as their server: the same one, with our authenticator. */
  private readonly clientCtx: ClientContext;
  private boundPort = 0;

  constructor(
    private readonly ctx: ClientContext,
    readonly opts: WebsocketOptions,
    private readonly hooks: WebsocketHooks,
  ) {
    this.origins = new OriginPolicy(opts.sameOrigin, opts.allowedOrigins);
    this.auth = ownAuthenticator(opts, ctx.options());
    this.clientCtx = {
      router: ctx.router,
      budget: ctx.budget,
      log: ctx.log,
      options: () => ctx.options(),
      authenticator: () => this.auth ?? ctx.authenticator(),
      infoBase: () => ctx.infoBase(),
      nextCid: () => ctx.nextCid(),
      clientClosed: (c) => ctx.clientClosed(c),
      slowConsumer: (c) => ctx.slowConsumer(c),
    };
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: opts.compression,
      maxPayload: Math.max(MIN_MESSAGE_LIMIT, 4 * ctx.options().maxPayload),
      // mqtt.js asks for `mqtt` (or `mqttv3.1`); a browser fails the handshake unless one it
      // offered comes back. NATS clients ask for none.
      handleProtocols: (offered: Set<string>, req: IncomingMessage) => {
        if (!isMqttPath(req.url)) return false;
        if (offered.has('mqtt')) return 'mqtt';
        const first = offered.values().next();
        return first.done === true ? false : first.value;
      },
    });
  }

  get port(): number {
    return this.boundPort;
  }

  get scheme(): 'ws' | 'wss' {
    return this.opts.tls !== undefined ? 'wss' : 'ws';
  }

  /** The authenticator websocket NATS clients are checked against (config reload re-checks them). */
  authenticator(): Authenticator {
    return this.auth ?? this.ctx.authenticator();
  }

  /** Config reload: the top-level users may have changed under a websocket no_auth_user. */
  reload(next: ServerOptions): void {
    this.auth = ownAuthenticator(this.opts, next);
  }

  listen(): Promise<number> {
    const o = this.opts;
    const tls = o.tls;
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      // Only upgrades are served here; nats-server answers the same codes.
      const status = req.method !== 'GET' ? 405 : 400;
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Sec-Websocket-Version': '13', 'X-Content-Type-Options': 'nosniff' });
      res.end(`${status === 405 ? 'Method Not Allowed' : 'Bad Request'}\n`);
    };
    const server =
      tls === undefined
        ? createHttpServer(onRequest)
        : createHttpsServer(
            {
              cert: readFileSync(tls.certFile),
              key: readFileSync(tls.keyFile),
              ...(tls.caFile !== undefined ? { ca: readFileSync(tls.caFile) } : {}),
              requestCert: tls.verify,
              rejectUnauthorized: tls.verify,
              handshakeTimeout: o.handshakeTimeoutMs > 0 ? o.handshakeTimeoutMs : tls.timeoutMs,
            },
            onRequest,
          );
    if (o.handshakeTimeoutMs > 0) {
      server.headersTimeout = o.handshakeTimeoutMs;
      server.requestTimeout = o.handshakeTimeoutMs;
    }
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    server.on('clientError', (_err: Error, socket: Duplex) => {
      if (socket.writable) refuse(socket, 400, 'Bad Request');
      else socket.destroy();
    });
    server.on('tlsClientError', () => {
      // A failed handshake never becomes a connection.
    });
    this.http = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: o.host, port: o.port }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.ctx.log.error(`websocket listener: ${err.message}`));
        const addr = server.address();
        this.boundPort = typeof addr === 'object' && addr !== null ? addr.port : o.port;
        resolve(this.boundPort);
      });
    });
  }

  /** Stop accepting (lame duck, shutdown); upgraded connections are closed by their owners. */
  close(): void {
    this.http?.close();
    this.http = null;
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {
      // A reset during the handshake; the connection owners attach their own handlers after it.
    });
    const peer = this.peer(req);
    const why = this.origins.check(originOf(req), req.headers.host, req.socket instanceof TLSSocket);
    if (why !== null) {
      this.ctx.log.error(`${peer.ip}:${peer.port} - websocket handshake error: origin not allowed: ${why}`);
      refuse(socket, 403, 'Forbidden');
      return;
    }
    const path = pathOf(req.url);
    if (path.startsWith(LEAFNODE_PATH)) {
      this.ctx.log.error(`${peer.ip}:${peer.port} - websocket: not configured to accept leaf node connections`);
      socket.destroy();
      return;
    }
    const mqtt = isMqttPath(req.url) ? this.hooks.mqtt() : undefined;
    if (mqtt === null) {
      refuse(socket, 404, 'Not Found');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const stream = new WebSocketStream(ws);
      const meta: StreamMeta = { ip: peer.ip, port: peer.port };
      if (req.socket instanceof TLSSocket) {
        const v = req.socket.getProtocol();
        if (v !== null) meta.tlsVersion = v.replace(/^TLSv/, '');
        const cipher = req.socket.getCipher()?.standardName;
        if (cipher !== undefined) meta.tlsCipher = cipher;
      }
      if (mqtt !== undefined) mqtt(stream, meta);
      else this.startNats(stream, meta);
    });
  }

  /** The client's address; X-Forwarded-For wins when it holds an IP address, as in nats-server. */
  private peer(req: IncomingMessage): PeerAddress {
    const port = req.socket.remotePort ?? 0;
    const fwd = req.headers['x-forwarded-for'];
    const first = (Array.isArray(fwd) ? fwd[0] : fwd)?.split(',')[0]?.trim();
    // nats-server takes the header only when it holds a literal address.
    if (first !== undefined && isIP(first) !== 0) return { ip: first, port };
    return { ip: stripV4Mapped(req.socket.remoteAddress ?? ''), port };
  }

  private startNats(stream: WebSocketStream, meta: StreamMeta): void {
    const client = new ClientConnection(this.clientCtx, stream, 'WEBSOCKET', meta);
    client.tlsVersion = meta.tlsVersion;
    client.tlsCipher = meta.tlsCipher;
    stream.on('error', () => {
      // Errors before the client attached its own handlers end here.
    });
    this.hooks.accepted(client);
    const info = this.infoLine(client);
    const max = this.ctx.options().maxConnections;
    if (this.hooks.clientCount() > max) {
      this.ctx.log.warn(`${client.ip}:${client.port} - maximum connections exceeded (${max})`);
      client.refuse(info);
      return;
    }
    client.begin(info);
  }

  /**
   * INFO for a websocket client: the server's, without the client port's TLS fields (TLS, if
   * any, was the HTTPS layer's), auth_required when the websocket block has its own credential.
   */
  private infoLine(client: ClientConnection): string {
    const info = this.ctx.infoBase();
    delete info['tls_required'];
    delete info['tls_available'];
    delete info['tls_verify'];
    if (overridesAuth(this.opts)) info['auth_required'] = true;
    info['client_id'] = client.cid;
    if (client.ip !== '') info['client_ip'] = client.ip;
    return `INFO ${JSON.stringify(info)} \r\n`;
  }

  /** /varz `websocket` as nats-server fills it (empty values left out). */
  varz(): Record<string, unknown> {
    const o = this.opts;
    const v: Record<string, unknown> = { host: o.host, port: this.boundPort };
    if (o.advertise !== undefined) v['advertise'] = o.advertise;
    if (o.noAuthUser !== undefined) v['no_auth_user'] = o.noAuthUser;
    if (o.handshakeTimeoutMs > 0) v['handshake_timeout'] = o.handshakeTimeoutMs * 1_000_000;
    if (o.authorization?.timeoutMs !== undefined) v['auth_timeout'] = o.authorization.timeoutMs / 1000;
    if (o.tls === undefined) v['no_tls'] = true;
    if (o.sameOrigin) v['same_origin'] = true;
    if (o.allowedOrigins.length > 0) v['allowed_origins'] = o.allowedOrigins;
    if (o.compression) v['compression'] = true;
    return v;
  }
}

function originOf(req: IncomingMessage): string | undefined {
  const o = req.headers.origin ?? req.headers['sec-websocket-origin'];
  return Array.isArray(o) ? o[0] : o;
}

function pathOf(url: string | undefined): string {
  const u = url ?? '/';
  const q = u.indexOf('?');
  return q < 0 ? u : u.slice(0, q);
}

function isMqttPath(url: string | undefined): boolean {
  return pathOf(url).startsWith(MQTT_PATH);
}
