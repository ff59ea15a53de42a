import { createServer } from 'node:net';
import type { Server as NetServer, Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { createServer as createTlsServer } from 'node:tls';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { TlsOptions } from '../config/options.js';
import { ClientConnection } from './client.js';
import type { ClientContext } from './context.js';

/**
 * A tls.Server used only for its handshake logic (client certificate verification,
 * handshake timeout): raw sockets from our own listener are handed to it one by one.
 */
function makeTlsServer(tls: TlsOptions): TlsServer {
  return createTlsServer({
    cert: readFileSync(tls.certFile),
    key: readFileSync(tls.keyFile),
    ...(tls.caFile !== undefined ? { ca: readFileSync(tls.caFile) } : {}),
    requestCert: tls.verify,
    rejectUnauthorized: tls.verify,
    handshakeTimeout: tls.timeoutMs,
  });
}

export interface ListenerHooks {
  /** Number of clients currently connected (max_connections). */
  clientCount(): number;
  accepted(client: ClientConnection): void;
  /** INFO line for this client (with client_id / client_ip). */
  infoLine(client: ClientConnection): string;
}

/** The NATS client port: accepts sockets, applies max_connections, starts each client. */
export class NatsListener {
  private server: NetServer | null = null;
  private tlsServer: TlsServer | null = null;
  /** Clients in the middle of a handshake, by remote address:port (the TLS socket has the same). */
  private readonly handshaking = new Map<string, ClientConnection>();

  constructor(
    private readonly ctx: ClientContext,
    private readonly hooks: ListenerHooks,
  ) {}

  /** (Re)load the TLS certificates; called at start and on reload. */
  configureTls(): void {
    const tls = this.ctx.options().tls;
    if (tls === undefined) {
      this.tlsServer = null;
      return;
    }
    const server = makeTlsServer(tls);
    server.on('secureConnection', (socket: TLSSocket) => {
      const client = this.takeHandshaking(socket);
      if (client === undefined) socket.destroy();
      else client.tlsReady(socket);
    });
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      this.takeHandshaking(socket)?.tlsFailed(err);
      socket.destroy();
    });
    this.tlsServer = server;
  }

  private takeHandshaking(socket: TLSSocket): ClientConnection | undefined {
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    const client = this.handshaking.get(key);
    this.handshaking.delete(key);
    return client;
  }

  private upgrade(client: ClientConnection, raw: Socket): void {
    const server = this.tlsServer;
    if (server === null) {
      client.close('TLS Handshake Failure', true);
      return;
    }
    this.handshaking.set(`${raw.remoteAddress}:${raw.remotePort}`, client);
    server.emit('connection', raw);
  }

  listen(host: string, port: number): Promise<number> {
    this.configureTls();
    // Sockets start paused so that TLS can take over before any byte is read.
    const server = createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.accept(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: port < 0 ? 0 : port }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.ctx.log.error(`client listener: ${err.message}`));
        const addr = server.address();
        resolve(typeof addr === 'object' && addr !== null ? addr.port : port);
      });
    });
  }

  /** Stop accepting (lame duck, shutdown); open connections stay until the server closes them. */
  close(): void {
    // net.Server#close stops accepting at once; its callback would wait for every open connection.
    this.server?.close();
    this.server = null;
  }

  private accept(socket: Socket): void {
    const o = this.ctx.options();
    const client = new ClientConnection(this.ctx, socket);
    socket.on('error', () => {
      // Errors before the client attached its own handlers (e.g. reset during TLS) end here.
    });
    this.hooks.accepted(client);
    if (this.hooks.clientCount() > o.maxConnections) {
      this.ctx.log.warn(`${client.ip}:${client.port} - maximum connections exceeded (${o.maxConnections})`);
      client.refuse(this.hooks.infoLine(client));
      return;
    }
    const info = this.hooks.infoLine(client);
    const tls = o.tls;
    if (tls === undefined || this.tlsServer === null) {
      client.begin(info);
      return;
    }
    const upgrade = (raw: Socket): void => this.upgrade(client, raw);
    if (o.allowNonTls && !tls.handshakeFirst) {
      // TLS optional: the client's first byte says which (0x16 = TLS handshake record).
      socket.write(info);
      socket.once('readable', () => {
        const first = socket.read(1) as Buffer | null;
        if (first === null) return;
        socket.unshift(first);
        if (first[0] === 0x16) client.beginTls('', true, upgrade);
        else client.begin('');
      });
      return;
    }
    client.beginTls(info, tls.handshakeFirst, upgrade);
  }
}
