/**
 * The `leafnodes { }` block in nats-server's syntax (leafnode.md §10), read from the parsed
 * config tree so every problem names its file:line:col. nats-edge is always the leaf: it dials
 * the hubs listed in `remotes` and accepts no leafnode connections, so the accept-side keys are
 * refused by name rather than silently doing nothing. nats-server keys that mean nothing for a
 * plain-TCP leaf of one account (compression, websocket tuning, ...) are accepted and ignored;
 * unknown keys are errors, as in nats-server. Each remote may carry nats-edge's own `buffer {}`
 * (store-and-forward while the uplink is down).
 */
import { homedir } from 'node:os';
import { bool, durationMs, fail, int, isFile, map, readTlsFields, str } from '../config/block-reader.js';
import type { ConfEntry, ConfMap, ConfNode } from '../config/conf-parser.js';
import { formatWhere, type SourcePos } from '../config/errors.js';
import type { RawBlock, ServerOptions } from '../config/options.js';
import { isValidSubject, subjectIsSubsetOf } from '../core/subject.js';
import { isUserSeed, readCredentials } from './credentials.js';
import type { LeafBufferOptions, LeafOptions, LeafRemoteOptions, LeafTlsOptions } from './types.js';

export const LEAF_DEFAULT_PORT = 7422;
const DEFAULT_RECONNECT_MS = 1000;
const DEFAULT_FIRST_INFO_TIMEOUT_MS = 1000;
const DEFAULT_TLS_TIMEOUT_MS = 2000;
const DEFAULT_BUFFER_BYTES = 256 * 1024 * 1024;
/** The only account a single-account server can bind. */
const GLOBAL_ACCOUNT = '$G';

/** Keys of the hub role: nats-edge never listens for leafnodes. */
const ACCEPT_SIDE = new Set([
  'port',
  'listen',
  'host',
  'net',
  'advertise',
  'leafnode_advertise',
  'authorization',
  'tls',
  'min_version',
  'minimum_version',
]);
const IGNORED_TOP = new Set(['no_advertise', 'compression', 'isolate_leafnode_interest']);
const IGNORED_REMOTE = new Set([
  'compression',
  'ws_compress',
  'ws_compression',
  'websocket_compress',
  'websocket_compression',
  'ws_no_masking',
  'websocket_no_masking',
  'jetstream_cluster_migrate',
  'js_cluster_migrate',
  'jetstream_cluster_migrate_delay',
]);

/** Reads the leafnodes block; null when it lists no remotes (nothing to dial). */
export function parseLeafConfig(block: RawBlock, server: ServerOptions): LeafOptions | null {
  const node = block.node;
  const blockPos: SourcePos = node?.pos ?? { file: block.where, line: 0, col: 0 };
  if (node === undefined || node.kind !== 'map') fail(blockPos, 'leafnodes: expected a block { ... }');
  const o: LeafOptions = { remotes: [], reconnectMs: DEFAULT_RECONNECT_MS };
  for (const [key, e] of node.entries) {
    if (e.usedAsVariable) continue;
    const k = key.toLowerCase();
    switch (k) {
      case 'remotes':
        o.remotes = readRemotes(e, server);
        break;
      case 'reconnect':
      case 'reconnect_delay':
      case 'reconnect_interval': {
        const ms = durationMs(e);
        o.reconnectMs = ms > 0 ? ms : DEFAULT_RECONNECT_MS;
        break;
      }
      default:
        if (ACCEPT_SIDE.has(k)) fail(e.keyPos, `nats-edge accepts no leafnode connections; it is always the leaf: remove ${key}`);
        if (!IGNORED_TOP.has(k)) fail(e.keyPos, `unknown field "${key}" in leafnodes block`);
    }
  }
  return o.remotes.length === 0 ? null : o;
}

/** The URL as shown in logs and /leafz: no user or password. */
export function redactUrl(u: URL): string {
  if (u.username === '' && u.password === '') return u.href;
  const c = new URL(u.href);
  c.username = '';
  c.password = '';
  return c.href;
}

/** The user and password a URL carries, percent-decoded. */
export function urlCredentials(u: URL): { user?: string; pass?: string } {
  const out: { user?: string; pass?: string } = {};
  if (u.username !== '') out.user = decode(u.username);
  if (u.password !== '') out.pass = decode(u.password);
  return out;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function readRemotes(e: ConfEntry, server: ServerOptions): LeafRemoteOptions[] {
  const v = e.value;
  if (v.kind !== 'array') fail(v.pos, `${e.key}: expected a list of remote blocks, such as [ { url: "nats-leaf://hub:7422" } ]`);
  const out: LeafRemoteOptions[] = [];
  for (const item of v.items) {
    if (item.kind !== 'map') fail(item.pos, `${e.key}: each remote must be a block { url: ... }`);
    out.push(readRemote(item, server));
  }
  return out;
}

function readRemote(m: ConfMap, server: ServerOptions): LeafRemoteOptions {
  const r: LeafRemoteOptions = {
    urls: [],
    account: GLOBAL_ACCOUNT,
    denyImports: [],
    denyExports: [],
    noRandomize: false,
    firstInfoTimeoutMs: DEFAULT_FIRST_INFO_TIMEOUT_MS,
    where: formatWhere(m.pos),
  };
  let bufferEntry: ConfEntry | undefined;
  let passwordEntry: ConfEntry | undefined;
  let nkeyEntry: ConfEntry | undefined;
  let credsEntry: ConfEntry | undefined;
  let denyExportsEntry: ConfEntry | undefined;
  for (const [key, e] of m.entries) {
    if (e.usedAsVariable) continue;
    const k = key.toLowerCase();
    switch (k) {
      case 'url':
      case 'urls':
        for (const u of readUrls(e)) r.urls.push(u);
        break;
      case 'account':
      case 'local': {
        const a = str(e);
        if (a !== GLOBAL_ACCOUNT) {
          fail(e.value.pos, `${key}: nats-edge has a single account, so a remote can only bind "${GLOBAL_ACCOUNT}" (got ${JSON.stringify(a)}); the hub decides which of its accounts the link joins`);
        }
        r.account = a;
        break;
      }
      case 'credentials':
      case 'creds':
        r.credentials = readCredentialsPath(e);
        credsEntry = e;
        break;
      case 'nkey':
      case 'seed':
        r.nkeySeed = readSeed(e);
        nkeyEntry = e;
        break;
      case 'user':
      case 'username':
        r.user = str(e);
        break;
      case 'password':
      case 'pass':
        r.password = str(e);
        passwordEntry = e;
        break;
      case 'tls':
        r.tls = readRemoteTls(e);
        break;
      case 'deny_imports':
      case 'deny_import':
        r.denyImports = readSubjects(e);
        break;
      case 'deny_exports':
      case 'deny_export':
        r.denyExports = readSubjects(e);
        denyExportsEntry = e;
        break;
      case 'no_randomize':
      case 'dont_randomize':
        r.noRandomize = bool(e);
        break;
      case 'first_info_timeout': {
        const ms = durationMs(e);
        r.firstInfoTimeoutMs = ms > 0 ? ms : DEFAULT_FIRST_INFO_TIMEOUT_MS;
        break;
      }
      case 'hub':
        if (bool(e)) fail(e.value.pos, 'hub: nats-edge is always the leaf of a remote; remove "hub: true"');
        break;
      case 'buffer':
        bufferEntry = e;
        break;
      default:
        if (!IGNORED_REMOTE.has(k)) fail(e.keyPos, `unknown field "${key}" in leafnodes remote`);
    }
  }
  if (r.urls.length === 0) fail(m.pos, 'leafnodes remote: missing url (e.g. url: "nats-leaf://hub:7422")');
  if (passwordEntry !== undefined && r.user === undefined) fail(passwordEntry.keyPos, `${passwordEntry.key}: a password needs a user in the same remote`);
  if (credsEntry !== undefined && nkeyEntry !== undefined) {
    fail(nkeyEntry.keyPos, `${nkeyEntry.key}: a remote authenticates with either credentials or an nkey seed, not both (${credsEntry.key} is set)`);
  }
  // Read last: the defaults and the deny_exports check need the rest of the remote.
  if (bufferEntry !== undefined) r.buffer = readBuffer(bufferEntry, r, denyExportsEntry, server);
  return r;
}

function readUrls(e: ConfEntry): URL[] {
  const v = e.value;
  const items: readonly ConfNode[] = v.kind === 'array' ? v.items : [v];
  if (items.length === 0) fail(v.pos, `${e.key}: expected at least one URL`);
  return items.map((item) => {
    if (item.kind !== 'string') fail(item.pos, `${e.key}: expected a URL string such as "nats-leaf://hub:7422"`);
    return parseLeafUrl(item.value, item.pos, e.key);
  });
}

/** Userinfo hidden, for error texts about a URL that may not even parse. */
function hideUserinfo(text: string): string {
  return text.replace(/\/\/[^/@]*@/, '//***@');
}

function parseLeafUrl(text: string, pos: SourcePos, key: string): URL {
  const t = text.trim();
  const shown = JSON.stringify(hideUserinfo(t));
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(t)) fail(pos, `${key}: ${shown} needs a scheme, such as "nats-leaf://hub:7422"`);
  let u: URL;
  try {
    u = new URL(t);
  } catch {
    return fail(pos, `${key}: cannot parse ${shown} as a URL`);
  }
  switch (u.protocol) {
    case 'nats-leaf:':
    case 'nats:':
    case 'tls:':
      break;
    case 'ws:':
    case 'wss:':
      return fail(pos, `${key}: websocket leafnode remotes (${u.protocol}//) are not supported by nats-edge; use nats-leaf:// or tls://`);
    default:
      return fail(pos, `${key}: unsupported scheme ${JSON.stringify(u.protocol.slice(0, -1))} in ${shown}; use nats-leaf://, nats:// or tls://`);
  }
  if (u.hostname === '') fail(pos, `${key}: ${shown} has no host`);
  if (u.port === '') u.port = String(LEAF_DEFAULT_PORT);
  else if (u.port === '0') fail(pos, `${key}: ${shown}: port 0 cannot be dialed`);
  return u;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? homedir() + p.slice(1) : p;
}

function readCredentialsPath(e: ConfEntry): string {
  const path = expandHome(str(e));
  if (!isFile(path)) fail(e.value.pos, `${e.key}: no such file ${JSON.stringify(path)}`);
  // Read once now so a broken file stops the start rather than every dial.
  try {
    readCredentials(path).seed.fill(0);
  } catch (err) {
    fail(e.value.pos, `${e.key} ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
  return path;
}

function readSeed(e: ConfEntry): string {
  const s = str(e);
  // The seed is a secret: errors never echo it.
  if (!/^SU[A-Z2-7]{56}$/.test(s) || !isUserSeed(Buffer.from(s, 'latin1'))) {
    fail(e.value.pos, `${e.key}: not a valid user nkey seed (expected "SU" followed by 56 base32 characters)`);
  }
  return s;
}

function readSubjects(e: ConfEntry): string[] {
  const v = e.value;
  const items: readonly ConfNode[] = v.kind === 'array' ? v.items : [v];
  return items.map((item) => {
    if (item.kind !== 'string') fail(item.pos, `${e.key}: expected a subject or a list of subjects`);
    if (!isValidSubject(item.value)) fail(item.pos, `${e.key}: invalid subject ${JSON.stringify(item.value)}`);
    return item.value;
  });
}

function readRemoteTls(e: ConfEntry): LeafTlsOptions {
  const f = readTlsFields(e, 'leafnodes remote', true);
  const t: LeafTlsOptions = { insecure: f.insecure, timeoutMs: f.timeoutMs > 0 ? f.timeoutMs : DEFAULT_TLS_TIMEOUT_MS, handshakeFirst: f.handshakeFirst };
  // `verify` is a listener's setting (client certificates); a dialer has no use for it.
  if (f.verify) t.verify = true;
  if (f.caFile !== undefined) t.caFile = f.caFile;
  if (f.certFile !== undefined) t.certFile = f.certFile;
  if (f.keyFile !== undefined) t.keyFile = f.keyFile;
  return t;
}

function readBuffer(e: ConfEntry, r: LeafRemoteOptions, denyExports: ConfEntry | undefined, server: ServerOptions): LeafBufferOptions {
  const m = map(e);
  if (server.jetstream?.enabled !== true) {
    fail(m.pos, 'buffer: store-and-forward keeps its queue in the JetStream store, so it requires jetstream to be enabled (add a jetstream { store_dir: ... } block)');
  }
  const storeCap = storeLimit(server);
  const b: LeafBufferOptions = {
    subjects: [],
    maxBytes: storeCap > 0 ? Math.floor(storeCap / 4) : DEFAULT_BUFFER_BYTES,
    maxAgeMs: 0,
    replayRate: 0,
    maxMsgs: 0,
  };
  let subjectsEntry: ConfEntry | undefined;
  for (const [key, be] of m.entries) {
    if (be.usedAsVariable) continue;
    switch (key.toLowerCase()) {
      case 'subjects':
      case 'subject':
        b.subjects = readSubjects(be);
        subjectsEntry = be;
        break;
      case 'max_bytes': {
        const n = readSize(be);
        if (n <= 0) fail(be.value.pos, `${be.key}: must be positive`);
        if (storeCap > 0 && n > storeCap) {
          fail(be.value.pos, `${be.key}: ${n} bytes exceeds the JetStream store limit (max_file_store ${storeCap}) that holds the buffer`);
        }
        b.maxBytes = n;
        break;
      }
      case 'max_age':
        b.maxAgeMs = durationMs(be);
        break;
      case 'replay_rate':
        b.replayRate = nonNegativeInt(be);
        break;
      case 'max_msgs':
        b.maxMsgs = nonNegativeInt(be);
        break;
      default:
        fail(be.keyPos, `unknown field "${key}" in leafnodes remote buffer block`);
    }
  }
  if (subjectsEntry === undefined || b.subjects.length === 0) {
    fail(subjectsEntry?.value.pos ?? m.pos, 'buffer: subjects is required: the subjects whose publishes are kept while the uplink is down');
  }
  // A buffered subject that may never be exported would fill the queue for nothing.
  if (denyExports !== undefined) {
    const items = subjectsEntry.value.kind === 'array' ? subjectsEntry.value.items : [subjectsEntry.value];
    b.subjects.forEach((s, i) => {
      const denied = r.denyExports.find((d) => subjectIsSubsetOf(s, d));
      if (denied !== undefined) fail(items[i]!.pos, `buffer: subject ${JSON.stringify(s)} is covered by deny_exports ${JSON.stringify(denied)}, so it would never be sent`);
    });
  }
  return b;
}

/** The JetStream file-store cap the buffer shares, 0 when none is known. */
function storeLimit(server: ServerOptions): number {
  const js = server.jetstream?.maxFileStore ?? 0;
  if (js > 0) return js;
  return server.profile?.maxFileStore ?? 0;
}

function nonNegativeInt(e: ConfEntry): number {
  const n = int(e);
  if (n < 0) fail(e.value.pos, `${e.key}: must not be negative`);
  return n;
}

const SIZE_SHIFT: Record<string, number> = { K: 10, M: 20, G: 30, T: 40 };

/**
 * A byte size: an integer (the config parser already turned unquoted `1GB` into bytes) or a
 * string of digits with K, M, G or T, optionally followed by B or iB ("512MB", "1G", "2GiB"),
 * all powers of two as in nats-server's quoted sizes.
 */
function readSize(e: ConfEntry): number {
  const v = e.value;
  if (v.kind === 'int') return v.value;
  if (v.kind === 'string') {
    const m = /^\s*(\d+)\s*(?:([KMGT])(?:I?B)?|B)?\s*$/i.exec(v.value);
    if (m !== null) return Number(m[1]) * 2 ** (m[2] === undefined ? 0 : SIZE_SHIFT[m[2].toUpperCase()]!);
  }
  return fail(v.pos, `${e.key}: expected a size such as 1GB or "512MB"`);
}
