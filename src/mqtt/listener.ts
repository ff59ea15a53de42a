/**
 * The MQTT port: plain TCP, or TLS when the mqtt block has `tls` (MQTT has no STARTTLS, so the
 * handshake comes first). Each accepted stream becomes an MqttConnection; any other Duplex
 * (a WebSocket stream) can be handed to `attach`.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { MqttBroker } from './broker.js';
import { MqttConnection, type StreamMeta } from './connection.js';

function stripV4Mapped(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

export class MqttListener {
  private server: NetServer | null = null;

  constructor(private readonly broker: MqttBroker) {}

  listen(): Promise<number> {
    const o = this.broker.opts;
    const tls = o.tls;
    const server: NetServer =
      tls === undefined
        ? createServer({ noDelay: true }, (s: Socket) => this.attach(s, { ip: stripV4Mapped(s.remoteAddress ?? ''), port: s.remotePort ?? 0 }))
        : createTlsServer(
            {
              cert: readFileSync(tls.certFile),
              key: readFileSync(tls.keyFile),
              ...(tls.caFile !== undefined ? { ca: readFileSync(tls.caFile) } : {}),
              requestCert: tls.verify,
              rejectUnauthorized: tls.verify,
              handshakeTimeout: tls.timeoutMs,
            },
            (s: TLSSocket) => {
              const meta: StreamMeta = { ip: stripV4Mapped(s.remoteAddress ?? ''), port: s.remotePort ?? 0 };
              const v = s.getProtocol();
              if (v !== null) meta.tlsVersion = v.replace(/^TLSv/, '');
              const cipher = s.getCipher()?.standardName;
              if (cipher !== undefined) meta.tlsCipher = cipher;
              this.attach(s, meta);
            },
          );
    server.on('tlsClientError', () => {
      // A failed handshake never becomes a connection.
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: o.host, port: o.port }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.broker.ctx.log.error(`mqtt listener: ${err.message}`));
        const addr = server.address();
        resolve(typeof addr === 'object' && addr !== null ? addr.port : o.port);
      });
    });
  }

  /** Starts an MQTT connection on any byte stream (TCP, TLS, WebSocket). */
  attach(stream: Duplex, meta: StreamMeta): MqttConnection {
    const s = stream as Duplex & { setNoDelay?: (v: boolean) => void };
    s.setNoDelay?.(true);
    const conn = new MqttConnection(this.broker, stream, meta);
    this.broker.accepted(conn);
    return conn;
  }

  close(): void {
    this.server?.close();
    this.server = null;
  }
}
