/**
 * The `websocket { }` block (alias `ws`) in nats-server's syntax (config-and-monitoring.md §2.7),
 * read from the parsed config tree so every problem names its file:line:col. As in nats-server,
 * a block without a port turns the listener off, and a plaintext listener must be asked for
 * with `no_tls: true`.
 */
import type { ConfEntry, ConfNode } from '../config/conf-parser.js';
import type { SourcePos } from '../config/errors.js';
import { bool, durationMs, fail, int, readAuthorizationBlock, readTlsBlock, splitHostPort, str } from '../config/block-reader.js';
import type { RawBlock, ServerOptions, TlsOptions } from '../config/options.js';

/** The websocket block's own credential (nats-server parses it as a "simple" authorization). */
export interface WebsocketAuthorization {
  user?: string;
  password?: string;
  token?: string;
  /** Overrides the top-level authorization timeout for websocket clients. */
  timeoutMs?: number;
}

export interface WebsocketOptions {
  host: string;
  /** 0 = a random port (nats-server's -1). */
  port: number;
  advertise?: string;
  /** TLS wins over no_tls when both are given, as in nats-server. */
  tls?: TlsOptions;
  noTls: boolean;
  sameOrigin: boolean;
  /** As written in the config (for /varz). */
  allowedOrigins: string[];
  /** permessage-deflate, when the client offers it. */
  compression: boolean;
  /** Time for the whole HTTP upgrade (TLS included); 0 = no limit. */
  handshakeTimeoutMs: number;
  authorization?: WebsocketAuthorization;
  noAuthUser?: string;
  /** file:line of the block. */
  where: string;
}

/** nats-server's default host for the websocket listener (not the client port's host). */
const DEFAULT_HOST = '0.0.0.0';



/** An origin must name a scheme and a host; nats-server compares scheme, host and port. */
function readOrigins(e: ConfEntry): string[] {
  const v = e.value;
  const items: ConfNode[] = v.kind === 'array' ? [...v.items] : [v];
  const out: string[] = [];
  for (const item of items) {
    if (item.kind !== 'string') fail(item.pos, `${e.key}: expected a URL string such as "https://example.com"`);
    let url: URL;
    try {
      url = new URL(item.value);
    } catch {
      return fail(item.pos, `${e.key}: unable to parse allowed origin ${JSON.stringify(item.value)}`);
    }
    if (url.host === '') fail(item.pos, `${e.key}: allowed origin ${JSON.stringify(item.value)} has no host`);
    out.push(item.value);
  }
  return out;
}

/**
 * Reads the websocket block; null when it has no port (nats-server leaves the listener off).
 * `server` gives the top-level users, which the block's own credential cannot be combined with.
 */
export function parseWebsocketConfig(block: RawBlock, server: ServerOptions): WebsocketOptions | null {
  const node = block.node;
  const blockPos: SourcePos = node?.pos ?? { file: block.where, line: 0, col: 0 };
  if (node === undefined || node.kind !== 'map') fail(blockPos, 'websocket: expected a block { ... }');
  const o: WebsocketOptions = {
    host: DEFAULT_HOST,
    port: 0,
    noTls: false,
    sameOrigin: false,
    allowedOrigins: [],
    compression: false,
    handshakeTimeoutMs: 0,
    where: block.where,
  };
  let portSet = false;
  for (const [key, e] of node.entries) {
    if (e.usedAsVariable) continue;
    switch (key.toLowerCase()) {
      case 'host':
      case 'net':
        o.host = str(e);
        break;
      case 'port': {
        const p = int(e);
        if (p > 65535 || p < -1) fail(e.value.pos, `port: ${p} out of range`);
        portSet = p !== 0;
        o.port = p < 0 ? 0 : p;
        break;
      }
      case 'listen': {
        const hp = e.value.kind === 'int' ? { host: '', port: e.value.value } : splitHostPort(str(e), e.value.pos);
        if (hp.port > 65535 || hp.port < -1) fail(e.value.pos, `listen: port ${hp.port} out of range`);
        if (hp.host !== '') o.host = hp.host;
        portSet = hp.port !== 0;
        o.port = hp.port < 0 ? 0 : hp.port;
        break;
      }
      case 'advertise':
        o.advertise = str(e);
        break;
      case 'no_tls':
        o.noTls = bool(e);
        break;
      case 'tls':
        o.tls = readTlsBlock(e, 'websocket');
        break;
      case 'same_origin':
        o.sameOrigin = bool(e);
        break;
      case 'allowed_origins':
      case 'allowed_origin':
      case 'allow_origins':
      case 'allow_origin':
      case 'origins':
      case 'origin':
        o.allowedOrigins = readOrigins(e);
        break;
      case 'compression':
        o.compression = bool(e);
        break;
      case 'handshake_timeout':
        o.handshakeTimeoutMs = durationMs(e);
        break;
      case 'authorization':
      case 'authentication':
        o.authorization = readAuthorizationBlock(e, 'websocket');
        break;
      case 'no_auth_user':
        o.noAuthUser = str(e);
        break;
      case 'jwt_cookie':
      case 'user_cookie':
      case 'pass_cookie':
      case 'token_cookie':
        fail(e.keyPos, `${key}: credentials from cookies are not supported by nats-edge`);
        break;
      default:
        fail(e.keyPos, `unknown field "${key}"`);
    }
  }
  if (!portSet) return null;
  if (o.tls === undefined && !o.noTls) fail(blockPos, 'websocket requires TLS configuration');
  const users = server.authorization?.users ?? [];
  if (users.length > 0) {
    if (o.authorization?.user !== undefined) fail(blockPos, 'websocket authentication username not compatible with presence of users/nkeys');
    if (o.authorization?.token !== undefined) fail(blockPos, 'websocket authentication token not compatible with presence of users/nkeys');
  }
  if (o.noAuthUser !== undefined) {
    if (users.length === 0) fail(blockPos, `no_auth_user: "${o.noAuthUser}" present, but users are not defined`);
    if (!users.some((u) => u.user === o.noAuthUser)) {
      fail(blockPos, `no_auth_user: "${o.noAuthUser}" not present as user or nkey in authorization block or account configuration`);
    }
  }
  return o;
}
