import { statSync } from 'node:fs';
import type { ConfEntry, ConfMap, ConfNode } from './conf-parser.js';
import { ConfigError, type SourcePos } from './errors.js';
import { parseDuration } from './load.js';
import type { TlsOptions } from './options.js';

/**
 * Typed readers for the entries of a component's own config block (mqtt {}, websocket {}):
 * each refuses the wrong kind of value with file:line:col, as the top-level loader does.
 */

export function fail(pos: SourcePos, reason: string): never {
  throw ConfigError.at(pos, reason);
}

export function str(e: ConfEntry): string {
  if (e.value.kind !== 'string') fail(e.value.pos, `${e.key}: expected a string`);
  return e.value.value;
}

export function int(e: ConfEntry): number {
  if (e.value.kind !== 'int') fail(e.value.pos, `${e.key}: expected an integer`);
  return e.value.value;
}

export function bool(e: ConfEntry): boolean {
  if (e.value.kind !== 'bool') fail(e.value.pos, `${e.key}: expected true or false`);
  return e.value.value;
}

/** A Go duration string, or a number of seconds; never negative. */
export function durationMs(e: ConfEntry): number {
  const v = e.value;
  let ms: number;
  if (v.kind === 'int' || v.kind === 'float') ms = v.value * 1000;
  else if (v.kind === 'string') {
    try {
      ms = parseDuration(v.value);
    } catch (err) {
      return fail(v.pos, `${e.key}: ${(err as Error).message}`);
    }
  } else return fail(v.pos, `${e.key}: expected a duration such as "30s"`);
  if (ms < 0) fail(v.pos, `${e.key}: must not be negative`);
  return ms;
}

export function map(e: ConfEntry): ConfMap {
  if (e.value.kind !== 'map') fail(e.value.pos, `${e.key}: expected a block { ... }`);
  return e.value;
}

const DEFAULT_TLS_TIMEOUT_MS = 2000;

/** The fields of a `tls {}` block, as written; files are checked to exist. */
export interface TlsBlockFields {
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  verify: boolean;
  timeoutMs: number;
  /** Dialing side only: skip verification of the peer's certificate. */
  insecure: boolean;
  /** Dialing side only: TLS before the peer's INFO. */
  handshakeFirst: boolean;
}

/**
 * Reads a `tls {}` block of component `block` (its name goes into the error texts). `dialing`:
 * the block of a connection this server makes (a leafnode remote), where a client certificate is
 * optional but takes both halves, and `insecure` / `handshake_first` are allowed.
 */
export function readTlsFields(e: ConfEntry, block: string, dialing = false): TlsBlockFields {
  const m = map(e);
  const t: TlsBlockFields = { verify: false, timeoutMs: DEFAULT_TLS_TIMEOUT_MS, insecure: false, handshakeFirst: false };
  const files: { node: ConfNode; path: string; key: string }[] = [];
  for (const [key, te] of m.entries) {
    if (te.usedAsVariable) continue;
    switch (key.toLowerCase()) {
      case 'cert_file':
        t.certFile = str(te);
        files.push({ node: te.value, path: t.certFile, key });
        break;
      case 'key_file':
        t.keyFile = str(te);
        files.push({ node: te.value, path: t.keyFile, key });
        break;
      case 'ca_file':
        t.caFile = str(te);
        files.push({ node: te.value, path: t.caFile, key });
        break;
      case 'verify':
        t.verify = bool(te);
        break;
      case 'timeout':
        t.timeoutMs = durationMs(te);
        break;
      case 'insecure':
        if (!dialing) fail(te.keyPos, `unknown field "${key}" in ${block} tls block`);
        t.insecure = bool(te);
        break;
      case 'handshake_first':
      case 'first':
        if (!dialing) fail(te.keyPos, `unknown field "${key}" in ${block} tls block`);
        t.handshakeFirst = bool(te);
        break;
      case 'cipher_suites':
      case 'curve_preferences':
      case 'min_version':
        // Node's defaults (TLS 1.2+, modern suites) stand in for Go's.
        break;
      default:
        fail(te.keyPos, `unknown field "${key}" in ${block} tls block`);
    }
  }
  // A listener needs its certificate; a dialer may present one, but then both halves.
  if (!dialing || t.keyFile !== undefined) {
    if (t.certFile === undefined) fail(m.pos, `missing 'cert_file' in ${block} TLS configuration`);
  }
  if (!dialing || t.certFile !== undefined) {
    if (t.keyFile === undefined) fail(m.pos, `missing 'key_file' in ${block} TLS configuration`);
  }
  for (const f of files) if (!isFile(f.path)) fail(f.node.pos, `${f.key}: no such file ${JSON.stringify(f.path)}`);
  return t;
}

/** A listener's `tls {}` block inside component `block`. */
export function readTlsBlock(e: ConfEntry, block: string): TlsOptions {
  const t = readTlsFields(e, block);
  return {
    certFile: t.certFile!,
    keyFile: t.keyFile!,
    ...(t.caFile !== undefined ? { caFile: t.caFile } : {}),
    verify: t.verify,
    timeoutMs: t.timeoutMs,
    handshakeFirst: false,
  };
}

/** True when `p` names a regular file (a certificate, a creds file). */
export function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** A component's own `authorization {}` (mqtt, websocket): one user or one token, a timeout. */
export interface BlockAuthorization {
  user?: string;
  password?: string;
  token?: string;
  timeoutMs?: number;
}

export function readAuthorizationBlock(e: ConfEntry, block: string): BlockAuthorization {
  const m = map(e);
  const a: BlockAuthorization = {};
  for (const [key, ae] of m.entries) {
    if (ae.usedAsVariable) continue;
    switch (key.toLowerCase()) {
      case 'user':
      case 'username':
        a.user = str(ae);
        break;
      case 'pass':
      case 'password':
        a.password = str(ae);
        break;
      case 'token':
        a.token = str(ae);
        break;
      case 'timeout':
        a.timeoutMs = durationMs(ae);
        break;
      case 'users':
      case 'nkeys':
        // As in nats-server, user lists belong to the top-level authorization block.
        fail(ae.keyPos, `unknown field "${key}" in ${block} authorization block: define users in the top-level authorization block`);
        break;
      default:
        fail(ae.keyPos, `unknown field "${key}" in ${block} authorization block`);
    }
  }
  if (a.token !== undefined && a.user !== undefined) fail(m.pos, `${block} authorization: token and user cannot both be set`);
  return a;
}

/** `host:port` of a component's `listen` key. */
export function splitHostPort(text: string, pos: SourcePos): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  if (i < 0) fail(pos, `listen: expected host:port, got ${JSON.stringify(text)}`);
  let host = text.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const port = Number(text.slice(i + 1));
  if (!Number.isInteger(port) || text.slice(i + 1) === '') fail(pos, `listen: bad port in ${JSON.stringify(text)}`);
  return { host, port };
}
