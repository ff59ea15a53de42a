/**
 * Builds ServerOptions from, in increasing priority: built-in defaults (nats-server's), the
 * firmware profile (--profile NAME or `profile: NAME`), the config file, the command line.
 * Keys are matched case-insensitively as nats-server does. nats-server keys that nats-edge does
 * not implement are warnings; keys nats-server does not know are fatal (`unknown field`).
 */
import { existsSync, statSync } from 'node:fs';
import { totalmem, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, type CliAction, type CliFlags } from './cli.js';
import { getEntry, kindName, parseConfigFile, toPlain, type ConfEntry, type ConfMap, type ConfNode } from './conf-parser.js';
import { ConfigError, formatPos, formatWhere, type SourcePos } from './errors.js';
import type {
  AuthorizationOptions,
  JetStreamOptions,
  Permissions,
  ProfileLimits,
  ResponsePermission,
  ServerOptions,
  SubjectPermission,
  TlsOptions,
  UserEntry,
} from './options.js';
import type { BoardChoice } from './board.js';
import { loadProfile } from './profiles.js';

export { usage } from './cli.js';

export type LoadAction = CliAction;

export interface LoadArgs {
  /** Command-line arguments without node and the script (process.argv.slice(2)). */
  argv: string[];
  /** For `$VAR` lookups in the config file; default process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Picks a firmware profile when neither --profile nor `profile:` names one (main.ts passes
   * board detection). Left out (tests, tools), no profile is picked.
   */
  detectProfile?: () => BoardChoice;
}

export interface LoadResult {
  options: ServerOptions;
  /** `file:line: ...` for config findings, plain text for flags. Log them at startup. */
  warnings: string[];
  action: LoadAction;
  /** What detectProfile chose and why, when it ran. */
  board?: BoardChoice;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const SECOND = 1000;
const MINUTE = 60 * SECOND;

export const DEFAULTS = {
  host: '0.0.0.0',
  port: 4222,
  maxPayload: MiB,
  maxControlLine: 4096,
  maxPending: 64 * MiB,
  maxConnections: 64 * KiB,
  pingIntervalMs: 2 * MINUTE,
  pingMax: 2,
  writeDeadlineMs: 10 * SECOND,
  lameDuckDurationMs: 2 * MINUTE,
  lameDuckGracePeriodMs: 10 * SECOND,
  authTimeoutMs: 2 * SECOND,
  tlsTimeoutMs: 2 * SECOND,
  maxClosedClients: 10000,
  /** nats-server's MAX_PAYLOAD_MAX_SIZE warning threshold. */
  maxPayloadWarn: 8 * MiB,
  /** nats-server's default JetStream sync interval. */
  jsSyncIntervalMs: 2 * MINUTE,
  /** nats-server's JetStream file store ceiling when nothing says otherwise. */
  jsMaxFileStore: 1024 * GiB,
  lameDuckMinimumMs: 30 * SECOND,
  maxSubTokens: 255,
} as const;

/** Without a profile: min(512 MiB, 25 % of RAM). */
export function defaultMemoryBudget(total = totalmem()): number {
  return Math.min(512 * MiB, Math.floor(total * 0.25));
}

export function defaultOptions(): ServerOptions {
  return {
    serverName: '',
    host: DEFAULTS.host,
    port: DEFAULTS.port,
    httpHost: DEFAULTS.host,
    httpBasePath: '/',
    maxPayload: DEFAULTS.maxPayload,
    maxControlLine: DEFAULTS.maxControlLine,
    maxPending: DEFAULTS.maxPending,
    maxConnections: DEFAULTS.maxConnections,
    maxSubscriptions: 0,
    maxSubTokens: 0,
    pingIntervalMs: DEFAULTS.pingIntervalMs,
    pingMax: DEFAULTS.pingMax,
    writeDeadlineMs: DEFAULTS.writeDeadlineMs,
    noHeaderSupport: false,
    lameDuckDurationMs: DEFAULTS.lameDuckDurationMs,
    lameDuckGracePeriodMs: DEFAULTS.lameDuckGracePeriodMs,
    maxClosedClients: DEFAULTS.maxClosedClients,
    serverTags: [],
    memoryBudget: defaultMemoryBudget(),
    maxPendingTotal: Math.floor(defaultMemoryBudget() / 4),
    allowNonTls: false,
    logging: { debug: false, trace: false, logtime: true, logtimeUtc: false },
    blocks: {},
  };
}

// --- Go durations ---

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  '\u00b5s': 1e-3,
  '\u03bcs': 1e-3,
  ms: 1,
  s: SECOND,
  m: MINUTE,
  h: 60 * MINUTE,
};

/** Go's time.ParseDuration, in milliseconds. Throws Error with Go's message. */
export function parseDuration(text: string): number {
  let s = text;
  let neg = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw new Error(`time: invalid duration ${JSON.stringify(text)}`);
  let total = 0;
  while (s !== '') {
    const m = /^(\d*)(?:\.(\d*))?([^\d.]*)/.exec(s)!;
    const whole = m[1]!;
    const frac = m[2];
    if (whole === '' && (frac === undefined || frac === '')) throw new Error(`time: invalid duration ${JSON.stringify(text)}`);
    const unit = m[3]!;
    if (unit === '') throw new Error(`time: missing unit in duration ${JSON.stringify(text)}`);
    const mult = DURATION_UNITS[unit];
    if (mult === undefined) throw new Error(`time: unknown unit ${JSON.stringify(unit)} in duration ${JSON.stringify(text)}`);
    total += Number(`${whole === '' ? '0' : whole}.${frac === undefined || frac === '' ? '0' : frac}`) * mult;
    s = s.slice(m[0].length);
  }
  return neg ? -total : total;
}

/** Go duration text for messages (5000 -> "5s"). */
function showDuration(ms: number): string {
  if (ms % MINUTE === 0 && ms >= MINUTE) return `${ms / MINUTE}m0s`;
  if (ms % SECOND === 0) return `${ms / SECOND}s`;
  return `${ms}ms`;
}

// --- keys nats-server knows that nats-edge does not implement ---

const UNSUPPORTED_TOP = new Set([
  'client_advertise',
  'trace_verbose',
  'mappings',
  'subject_mappings',
  'disable_sublist_cache',
  'no_sublist_cache',
  'https',
  'https_port',
  'cluster',
  'gateway',
  'log_size_limit',
  'logfile_size_limit',
  'log_max_num',
  'logfile_max_num',
  'syslog',
  'remote_syslog',
  'prof_port',
  'prof_block_rate',
  'max_traced_msg_len',
  'connect_error_reports',
  'reconnect_error_reports',
  'default_js_domain',
  'ocsp',
  'ocsp_cache',
  'server_metadata',
  'no_fast_producer_stall',
  'system_account',
  'system',
  'no_system_account',
  'no_system',
  'no_sys_acc',
]);

/** Ignoring these leaves the server open: say so loudly. */
const UNSUPPORTED_AUTH_TOP = new Set([
  'accounts',
  'operator',
  'operators',
  'trusted',
  'trusted_keys',
  'resolver',
  'account_resolver',
  'accounts_resolver',
  'resolver_tls',
  'resolver_preload',
  'resolver_pinned_accounts',
  'default_sentinel',
]);

// --- reading a parsed file ---

interface Findings {
  errors: string[];
  warnings: string[];
}

/** Positions of values that later cross-checks report against. */
interface Origins {
  maxPayload?: SourcePos;
  maxPending?: SourcePos;
  authorization?: SourcePos;
  noAuthUser?: SourcePos;
  lameDuck?: SourcePos;
  httpHostSet: boolean;
  jetstreamSet: boolean;
}

/** Thrown inside a reader to abandon one key; the message is already recorded. */
class Skip extends Error {}

class FileReader {
  constructor(private readonly f: Findings) {}

  error(pos: SourcePos, reason: string): never {
    this.f.errors.push(`${formatPos(pos)}: ${reason}`);
    throw new Skip(reason);
  }

  warn(pos: SourcePos, reason: string): void {
    this.f.warnings.push(`${formatWhere(pos)}: ${reason}`);
  }

  /** Runs one key's reader; a Skip only abandons that key, so all problems get reported. */
  guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof Skip)) throw e;
    }
  }

  private show(node: ConfNode): string {
    switch (node.kind) {
      case 'string':
        return `${kindName(node)} ${JSON.stringify(node.value)}`;
      case 'int':
      case 'float':
      case 'bool':
        return `${kindName(node)} ${String(node.value)}`;
      default:
        return kindName(node);
    }
  }

  typeError(e: ConfEntry, want: string, node: ConfNode = e.value): never {
    const hint = node.kind === 'string' && /^\d+\s*[kmgtpe]?i?b?$/i.test(node.value) ? ' (a quoted size is a string: remove the quotes)' : '';
    return this.error(node.pos, `"${e.key}" expects ${want}, got ${this.show(node)}${hint}`);
  }

  str(e: ConfEntry): string {
    return e.value.kind === 'string' ? e.value.value : this.typeError(e, 'a string');
  }

  bool(e: ConfEntry): boolean {
    return e.value.kind === 'bool' ? e.value.value : this.typeError(e, 'a boolean (true/false, yes/no, on/off)');
  }

  int(e: ConfEntry, opts: { min?: number; max?: number } = {}): number {
    const v = e.value;
    if (v.kind !== 'int') return this.typeError(e, 'an integer');
    const min = opts.min ?? 0;
    if (v.value < min) this.error(v.pos, `"${e.key}" must be ${min === 0 ? 'zero or more' : `at least ${min}`}, got ${v.raw}`);
    if (opts.max !== undefined && v.value > opts.max) this.error(v.pos, `${e.key.toLowerCase()} value is too big`);
    return v.value;
  }

  /** A port: -1 and 0 mean random (0 in ServerOptions). */
  port(e: ConfEntry): number {
    return normalizePort(this.int(e, { min: -1, max: 65535 }));
  }

  /**
   * A Go duration string. `intSeconds`: a bare integer is seconds with a warning (nats-server's
   * ping_interval/write_deadline) or an error (lame duck keys, which 2.9 rejects too).
   */
  duration(e: ConfEntry, intSeconds: 'warn' | 'error'): number {
    const v = e.value;
    if (v.kind === 'string') {
      try {
        return parseDuration(v.value);
      } catch (err) {
        return this.error(v.pos, `error parsing ${e.key}: ${(err as Error).message}`);
      }
    }
    if (v.kind === 'int' && intSeconds === 'warn') {
      if (!/^-?\d+$/.test(v.raw)) {
        // Unquoted 2m is the integer 2,000,000 (m = million), which nats-server then takes as seconds.
        this.error(v.pos, `"${e.key}": unquoted ${v.raw} is the number ${v.value}, not a duration; write "${v.raw}" in quotes`);
      }
      this.warn(v.pos, `${e.key} should be converted to a duration`);
      return v.value * SECOND;
    }
    return this.typeError(e, 'a duration string such as "30s" or "2m"');
  }

  /** Seconds as a number (int or float) or, as nats-server 2.10 allows, a duration string. */
  seconds(e: ConfEntry): number {
    const v = e.value;
    if (v.kind === 'int' || v.kind === 'float') {
      if (v.value < 0) this.error(v.pos, `"${e.key}" must not be negative`);
      return v.value * SECOND;
    }
    if (v.kind === 'string') {
      try {
        return parseDuration(v.value);
      } catch (err) {
        return this.error(v.pos, `error parsing ${e.key}: ${(err as Error).message}`);
      }
    }
    return this.typeError(e, 'a number of seconds');
  }

  map(e: ConfEntry): ConfMap {
    return e.value.kind === 'map' ? e.value : this.typeError(e, 'a map { ... }');
  }

  /** A string or an array of strings. */
  strings(e: ConfEntry, node: ConfNode = e.value): string[] {
    if (node.kind === 'string') return [node.value];
    if (node.kind !== 'array') return this.typeError(e, 'a string or an array of strings', node);
    return node.items.map((it) => (it.kind === 'string' ? it.value : this.typeError(e, 'strings', it)));
  }

  unknown(e: ConfEntry, where?: string): void {
    if (e.usedAsVariable) return;
    this.error(e.keyPos, `unknown field "${e.key}"${where === undefined ? '' : ` in ${where}`}`);
  }

  ignored(e: ConfEntry, where: string, why = ''): void {
    if (e.usedAsVariable) return;
    this.warn(e.keyPos, `config key "${e.key}"${where === '' ? '' : ` in ${where}`} is not supported by nats-edge and is ignored${why}`);
  }

  /** Each entry of a map, its key lower-cased, every problem reported. */
  each(m: ConfMap, fn: (key: string, e: ConfEntry) => void): void {
    for (const e of m.entries.values()) this.guard(() => fn(e.key.toLowerCase(), e));
  }
}

function normalizePort(p: number): number {
  // Kept as given until finishPorts(): 0 and -1 mean different things for -p and -m.
  return p;
}

/**
 * nats-server's port rules: client port 0 = the default 4222 and -1 = random; monitoring
 * port 0 = off and -1 = random. Options then say 0 for random (what listen(0) does).
 */
function finishPorts(o: ServerOptions): void {
  if (o.port === 0) o.port = DEFAULTS.port;
  else if (o.port < 0) o.port = 0;
  if (o.httpPort === 0) delete o.httpPort;
  else if (o.httpPort !== undefined && o.httpPort < 0) o.httpPort = 0;
}

/** `host:port`, `[v6]:port`; nats-server's net.SplitHostPort. */
function splitHostPort(r: FileReader, node: ConfNode, text: string): { host: string; port: number } {
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]*)\]:(.*)$/.exec(text);
  if (v6 !== null) {
    host = v6[1]!;
    portText = v6[2]!;
  } else {
    const i = text.lastIndexOf(':');
    if (i < 0 || text.indexOf(':') !== i) return r.error(node.pos, `could not parse address string ${JSON.stringify(text)}`);
    host = text.slice(0, i);
    portText = text.slice(i + 1);
  }
  if (!/^-?\d+$/.test(portText)) return r.error(node.pos, `could not parse port ${JSON.stringify(portText)}`);
  const port = Number(portText);
  if (port < -1 || port > 65535) return r.error(node.pos, `invalid port ${port}`);
  return { host: host === '' ? DEFAULTS.host : host, port: normalizePort(port) };
}

// --- authorization ---

const CONNECTION_TYPES = ['STANDARD', 'WEBSOCKET', 'LEAFNODE', 'MQTT', 'IN_PROCESS'];

function isValidSubject(s: string): boolean {
  if (s === '' || /\s/.test(s)) return false;
  const tokens = s.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '') return false;
    if (t === '>' && i !== tokens.length - 1) return false;
  }
  return true;
}

function checkSubjects(r: FileReader, node: ConfNode, subjects: string[]): void {
  for (const s of subjects) {
    if (isValidSubject(s)) continue;
    // "subject queue" restricts a subscribe permission to one queue group.
    const parts = s.trim().split(/\s+/);
    if (parts.length !== 2) r.error(node.pos, `subject ${JSON.stringify(s)} is not a valid subject`);
    if (!isValidSubject(parts[0]!)) r.error(node.pos, `subject ${JSON.stringify(parts[0])} is not a valid subject`);
  }
}

function readSubjectPermission(r: FileReader, e: ConfEntry): SubjectPermission {
  const v = e.value;
  if (v.kind === 'string' || v.kind === 'array') {
    const allow = r.strings(e);
    checkSubjects(r, v, allow);
    return { allow, deny: [] };
  }
  if (v.kind !== 'map') return r.error(v.pos, `Expected subject permissions to be a subject, or array of subjects, got ${kindName(v)}`);
  const p: SubjectPermission = { allow: [], deny: [] };
  r.each(v, (k, se) => {
    if (k === 'allow' || k === 'deny') {
      const list = r.strings(se);
      checkSubjects(r, se.value, list);
      p[k] = list;
    } else if (!se.usedAsVariable) {
      r.error(se.keyPos, `Unknown field name "${se.key}" parsing subject permissions, only 'allow' or 'deny' are permitted`);
    }
  });
  return p;
}

function readAllowResponses(r: FileReader, e: ConfEntry): ResponsePermission | undefined {
  const v = e.value;
  const def: ResponsePermission = { max: 1, expiresMs: 2 * MINUTE };
  if (v.kind === 'bool') return v.value ? def : undefined;
  if (v.kind !== 'map') return r.typeError(e, 'true/false or a map { max, expires }');
  r.each(v, (k, re) => {
    switch (k) {
      case 'max':
      case 'max_msgs':
      case 'max_messages':
      case 'max_responses':
        def.max = r.int(re);
        break;
      case 'expires':
      case 'expiration':
      case 'ttl':
        if (re.value.kind !== 'string') r.error(re.value.pos, `error parsing ${re.key}, not a duration string`);
        def.expiresMs = r.duration(re, 'error');
        break;
      default:
        if (!re.usedAsVariable) r.error(re.keyPos, `Unknown field "${re.key}" parsing allow_responses`);
    }
  });
  return def;
}

function readPermissions(r: FileReader, e: ConfEntry): Permissions {
  const m = r.map(e);
  const p: Permissions = {};
  r.each(m, (k, pe) => {
    switch (k) {
      case 'pub':
      case 'publish':
      case 'import':
        p.publish = readSubjectPermission(r, pe);
        break;
      case 'sub':
      case 'subscribe':
      case 'export':
        p.subscribe = readSubjectPermission(r, pe);
        break;
      case 'allow_responses':
      case 'publish_allow_responses': {
        const ar = readAllowResponses(r, pe);
        if (ar !== undefined) p.allowResponses = ar;
        else delete p.allowResponses;
        break;
      }
      default:
        if (!pe.usedAsVariable) r.error(pe.keyPos, `Unknown field "${pe.key}" parsing permissions`);
    }
  });
  return p;
}

function readUser(r: FileReader, node: ConfNode): UserEntry {
  if (node.kind !== 'map') {
    const shown = node.kind === 'string' || node.kind === 'int' || node.kind === 'bool' ? String(node.value) : kindName(node);
    return r.error(node.pos, `Expected user entry to be a map/struct, got ${shown}`);
  }
  let user: string | undefined;
  let password = '';
  let permissions: Permissions | undefined;
  let types: string[] | undefined;
  r.each(node, (k, ue) => {
    switch (k) {
      case 'user':
      case 'username':
        user = r.str(ue);
        break;
      case 'pass':
      case 'password':
        password = r.str(ue);
        break;
      case 'nkey':
        r.error(ue.keyPos, 'nkey users are not supported by nats-edge');
        break;
      case 'permission':
      case 'permissions':
      case 'authorization':
        permissions = readPermissions(r, ue);
        break;
      case 'allowed_connection_types':
      case 'connection_types':
      case 'clients': {
        const list = r.strings(ue).map((t) => t.toUpperCase());
        const bad = list.filter((t) => !CONNECTION_TYPES.includes(t));
        if (bad.length > 0) r.error(ue.value.pos, `invalid connection types ${JSON.stringify(bad)}`);
        types = list;
        break;
      }
      default:
        r.unknown(ue);
    }
  });
  if (user === undefined || user === '') return r.error(node.pos, 'User entry requires a user');
  const entry: UserEntry = { user, password };
  if (permissions !== undefined) entry.permissions = permissions;
  if (types !== undefined) entry.allowedConnectionTypes = types;
  return entry;
}

function readAuthorization(r: FileReader, e: ConfEntry): AuthorizationOptions {
  const m = r.map(e);
  const a: AuthorizationOptions = { timeoutMs: DEFAULTS.authTimeoutMs };
  r.each(m, (k, ae) => {
    switch (k) {
      case 'user':
      case 'username':
        a.user = r.str(ae);
        break;
      case 'pass':
      case 'password':
        a.password = r.str(ae);
        break;
      case 'token':
        a.token = r.str(ae);
        break;
      case 'timeout':
        a.timeoutMs = r.seconds(ae);
        break;
      case 'users': {
        if (ae.value.kind !== 'array') r.typeError(ae, 'an array of users');
        const users: UserEntry[] = [];
        const seen = new Set<string>();
        for (const item of ae.value.items) {
          r.guard(() => {
            const u = readUser(r, item);
            if (seen.has(u.user)) r.error(item.pos, `Duplicate user ${JSON.stringify(u.user)} detected`);
            seen.add(u.user);
            users.push(u);
          });
        }
        a.users = users;
        break;
      }
      case 'permissions':
      case 'default_permission':
      case 'default_permissions':
        a.defaultPermissions = readPermissions(r, ae);
        break;
      case 'auth_callout':
        r.error(ae.keyPos, 'auth_callout is not supported by nats-edge');
        break;
      default:
        r.unknown(ae);
    }
  });
  return a;
}

/** nats-server's mutual-exclusion rules; returns the first broken one. */
function authConflict(a: AuthorizationOptions): string | undefined {
  const single = a.user !== undefined || a.password !== undefined;
  if (a.token !== undefined && single) return 'Cannot have a user/pass and token';
  if (a.users !== undefined && a.users.length > 0) {
    if (single) return 'Can not have a single user/pass and a users array';
    if (a.token !== undefined) return 'Can not have a token and a users array';
  }
  return undefined;
}

// --- tls ---

const TLS_IGNORED = new Set(['cipher_suites', 'curve_preferences', 'min_version', 'connection_rate_limit', 'insecure', 'verify_cert_and_check_known_urls']);
const TLS_REFUSED = new Set(['verify_and_map', 'pinned_certs', 'cert_store', 'cert_match_by', 'cert_match', 'ca_certs_match', 'ocsp_peer', 'certs', 'cert_match_skip_invalid']);

function readTls(r: FileReader, e: ConfEntry): TlsOptions {
  const m = r.map(e);
  let certFile: string | undefined;
  let keyFile: string | undefined;
  const t: Omit<TlsOptions, 'certFile' | 'keyFile'> & { caFile?: string } = {
    verify: false,
    timeoutMs: DEFAULTS.tlsTimeoutMs,
    handshakeFirst: false,
  };
  const files: { key: string; node: ConfNode; path: string }[] = [];
  r.each(m, (k, te) => {
    switch (k) {
      case 'cert_file':
        certFile = r.str(te);
        files.push({ key: k, node: te.value, path: certFile });
        break;
      case 'key_file':
        keyFile = r.str(te);
        files.push({ key: k, node: te.value, path: keyFile });
        break;
      case 'ca_file':
        t.caFile = r.str(te);
        files.push({ key: k, node: te.value, path: t.caFile });
        break;
      case 'verify':
        t.verify = r.bool(te);
        break;
      case 'timeout':
        t.timeoutMs = r.seconds(te);
        break;
      case 'handshake_first':
      case 'first':
      case 'immediate': {
        const v = te.value;
        // 2.10: true, or "auto"/a duration meaning TLS-first with a plain-text fallback.
        if (v.kind === 'bool') t.handshakeFirst = v.value;
        else if (v.kind === 'string' && (v.value.toLowerCase() === 'auto' || safeDuration(v.value) !== undefined)) t.handshakeFirst = true;
        else r.typeError(te, 'true/false, "auto" or a duration');
        break;
      }
      default:
        if (TLS_IGNORED.has(k)) r.ignored(te, 'tls');
        else if (TLS_REFUSED.has(k)) r.error(te.keyPos, `tls option "${te.key}" is not supported by nats-edge`);
        else r.unknown(te, 'tls');
    }
  });
  if (certFile === undefined) return r.error(m.pos, "missing 'cert_file' in TLS configuration");
  if (keyFile === undefined) return r.error(m.pos, "missing 'key_file' in TLS configuration");
  for (const f of files) r.guard(() => checkReadableFile(r, f.node.pos, f.key, f.path));
  return { ...t, certFile, keyFile };
}

function safeDuration(s: string): number | undefined {
  try {
    return parseDuration(s);
  } catch {
    return undefined;
  }
}

function checkReadableFile(r: FileReader, pos: SourcePos, key: string, path: string): void {
  let ok = false;
  try {
    ok = statSync(path).isFile();
  } catch {
    ok = false;
  }
  if (!ok) r.error(pos, `${key} ${JSON.stringify(path)}: no such file`);
}

// --- jetstream ---

interface JsPartial {
  enabled?: boolean;
  storeDir?: string;
  maxMemoryStore?: number;
  maxFileStore?: number;
  domain?: string;
  syncInterval?: 'always' | number;
}

const JS_IGNORED = new Set([
  'unique_tag',
  'max_outstanding_catchup',
  'max_catchup',
  'limits',
  'extension_hint',
  'request_queue_limit',
  'max_buffered_msgs',
  'max_buffered_size',
  'strict',
  'max_ack_pending',
  'max_ha_assets',
]);
const JS_REFUSED = new Set(['key', 'ek', 'encryption_key', 'cipher', 'prev_key', 'prev_ek', 'tpm']);

/** JetStream sizes: integers, -1 = default, or nats-server's string form "10G" (K/M/G/T, powers of 2). */
function jsSize(r: FileReader, e: ConfEntry): number | undefined {
  const v = e.value;
  if (v.kind === 'int') {
    if (v.value === -1) return undefined;
    return r.int(e);
  }
  if (v.kind === 'string') {
    const m = /^(\d+)([KMGT])$/.exec(v.value);
    if (m === null) return r.error(v.pos, `${e.key} ${JSON.stringify(v.value)}: sizes defined as strings must be digits ending in K, M, G or T`);
    return Number(m[1]) * 2 ** ({ K: 10, M: 20, G: 30, T: 40 }[m[2] as 'K' | 'M' | 'G' | 'T']);
  }
  return r.typeError(e, 'a size');
}

function readJetStream(r: FileReader, e: ConfEntry, js: JsPartial): void {
  const v = e.value;
  if (v.kind === 'bool') {
    js.enabled = v.value;
    return;
  }
  if (v.kind === 'string') {
    const s = v.value.toLowerCase();
    if (s === 'enabled' || s === 'enable') js.enabled = true;
    else if (s === 'disabled' || s === 'disable') js.enabled = false;
    else r.error(v.pos, `Expected 'enabled' or 'disabled' for string value, got '${v.value}'`);
    return;
  }
  if (v.kind !== 'map') return r.error(v.pos, `Expected map, bool or string to define JetStream, got ${kindName(v)}`);
  js.enabled = true;
  r.each(v, (k, je) => {
    switch (k) {
      case 'store_dir':
      case 'store':
      case 'storedir':
        js.storeDir = r.str(je);
        break;
      case 'max_memory_store':
      case 'max_mem_store':
      case 'max_mem': {
        const n = jsSize(r, je);
        if (n === undefined) delete js.maxMemoryStore;
        else js.maxMemoryStore = n;
        break;
      }
      case 'max_file_store':
      case 'max_file': {
        const n = jsSize(r, je);
        if (n === undefined) delete js.maxFileStore;
        else js.maxFileStore = n;
        break;
      }
      case 'domain':
        js.domain = r.str(je);
        break;
      case 'enable':
      case 'enabled':
        js.enabled = r.bool(je);
        break;
      case 'sync_interval':
      case 'sync': {
        const sv = je.value;
        if (sv.kind === 'string' && sv.value.toLowerCase() === 'always') js.syncInterval = 'always';
        else {
          const ms = r.duration(je, 'error');
          if (ms <= 0) r.error(sv.pos, `${je.key} must be positive or "always"`);
          js.syncInterval = ms;
        }
        break;
      }
      default:
        if (JS_IGNORED.has(k)) r.ignored(je, 'jetstream');
        else if (JS_REFUSED.has(k)) r.error(je.keyPos, `jetstream option "${je.key}" (encryption at rest) is not supported by nats-edge`);
        else r.unknown(je, 'jetstream');
    }
  });
}

// --- the top level ---

function readTop(r: FileReader, top: ConfMap, o: ServerOptions, js: JsPartial, org: Origins): void {
  r.each(top, (k, e) => {
    switch (k) {
      case 'listen': {
        const v = e.value;
        if (v.kind === 'int') o.port = r.port(e);
        else if (v.kind === 'string') Object.assign(o, splitHostPort(r, v, v.value));
        else r.typeError(e, 'a "host:port" string or a port number');
        break;
      }
      case 'host':
      case 'net':
        o.host = r.str(e) || DEFAULTS.host;
        break;
      case 'port':
        o.port = r.port(e);
        break;
      case 'server_name':
        o.serverName = r.str(e);
        break;
      case 'http': {
        const v = e.value;
        if (v.kind === 'int') o.httpPort = r.port(e);
        else if (v.kind === 'string') {
          const hp = splitHostPort(r, v, v.value);
          o.httpHost = hp.host;
          o.httpPort = hp.port;
          org.httpHostSet = true;
        } else r.typeError(e, 'a "host:port" string or a port number');
        break;
      }
      case 'http_port':
      case 'monitor_port':
        o.httpPort = r.port(e);
        break;
      case 'http_base_path':
        o.httpBasePath = r.str(e);
        break;
      case 'max_payload': {
        const n = r.int(e, { max: 2 ** 31 - 1 });
        if (n > 0) {
          o.maxPayload = n;
          org.maxPayload = e.value.pos;
        }
        break;
      }
      case 'max_control_line': {
        const n = r.int(e, { max: 2 ** 31 - 1 });
        if (n > 0) o.maxControlLine = n;
        break;
      }
      case 'max_pending': {
        const n = r.int(e);
        if (n > 0) {
          o.maxPending = n;
          org.maxPending = e.value.pos;
        }
        break;
      }
      case 'max_connections':
      case 'max_conn': {
        const n = r.int(e);
        if (n > 0) o.maxConnections = n;
        break;
      }
      case 'max_subscriptions':
      case 'max_subs':
        o.maxSubscriptions = r.int(e);
        break;
      case 'max_sub_tokens':
        o.maxSubTokens = r.int(e, { max: DEFAULTS.maxSubTokens });
        break;
      case 'ping_interval': {
        const ms = r.duration(e, 'warn');
        if (ms < 0) r.error(e.value.pos, 'ping_interval must not be negative');
        if (ms > 0) o.pingIntervalMs = ms;
        break;
      }
      case 'ping_max': {
        const n = r.int(e);
        if (n > 0) o.pingMax = n;
        break;
      }
      case 'write_deadline': {
        const ms = r.duration(e, 'warn');
        if (ms < 0) r.error(e.value.pos, 'write_deadline must not be negative');
        if (ms > 0) o.writeDeadlineMs = ms;
        break;
      }
      case 'no_header_support':
        o.noHeaderSupport = r.bool(e);
        break;
      case 'lame_duck_duration': {
        const ms = r.duration(e, 'error');
        if (ms < DEFAULTS.lameDuckMinimumMs) r.error(e.value.pos, `invalid lame_duck_duration of ${showDuration(ms)}, minimum is 30 seconds`);
        o.lameDuckDurationMs = ms;
        break;
      }
      case 'lame_duck_grace_period': {
        const ms = r.duration(e, 'error');
        if (ms < 0) r.error(e.value.pos, 'invalid lame_duck_grace_period, needs to be positive');
        o.lameDuckGracePeriodMs = ms;
        break;
      }
      case 'max_closed_clients': {
        const n = r.int(e);
        if (n > 0) o.maxClosedClients = n;
        break;
      }
      case 'pid_file':
      case 'pidfile':
        o.pidFile = r.str(e);
        break;
      case 'ports_file_dir':
        o.portsFileDir = r.str(e);
        break;
      case 'server_tags':
        o.serverTags = r.strings(e);
        break;
      case 'no_auth_user':
        o.noAuthUser = r.str(e);
        org.noAuthUser = e.value.pos;
        break;
      case 'allow_non_tls':
        o.allowNonTls = r.bool(e);
        break;
      case 'debug':
        o.logging.debug = r.bool(e);
        break;
      case 'trace':
        o.logging.trace = r.bool(e);
        break;
      case 'logtime':
        o.logging.logtime = r.bool(e);
        break;
      case 'logtime_utc':
        o.logging.logtimeUtc = r.bool(e);
        break;
      case 'log_file':
      case 'logfile':
        o.logging.logFile = r.str(e);
        break;
      case 'authorization':
        o.authorization = readAuthorization(r, e);
        org.authorization = e.keyPos;
        break;
      case 'tls':
        o.tls = readTls(r, e);
        break;
      case 'jetstream':
        readJetStream(r, e, js);
        org.jetstreamSet = true;
        break;
      case 'store_dir':
        js.storeDir = r.str(e);
        break;
      case 'mqtt':
        o.blocks.mqtt = rawBlock(r, e);
        break;
      case 'leafnodes':
      case 'leaf':
        o.blocks.leafnodes = rawBlock(r, e);
        break;
      case 'websocket':
      case 'ws':
        o.blocks.websocket = rawBlock(r, e);
        break;
      case 'profile':
        r.str(e); // applied before the file, see loadOptions
        break;
      case 'max_pending_total': {
        // nats-edge's own key: the process-wide cap on queued outbound bytes.
        const n = r.int(e);
        if (n > 0) o.maxPendingTotal = n;
        break;
      }
      case 'memory_budget': {
        const n = r.int(e);
        if (n > 0) o.memoryBudget = n;
        break;
      }
      default:
        if (UNSUPPORTED_AUTH_TOP.has(k)) r.ignored(e, '', ': the authentication it configures is NOT enforced');
        else if (UNSUPPORTED_TOP.has(k)) r.ignored(e, '');
        else r.unknown(e);
    }
  });
}

function rawBlock(r: FileReader, e: ConfEntry): { value: unknown; where: string; node: ConfNode } {
  const m = r.map(e);
  return { value: toPlain(m), where: formatWhere(e.keyPos), node: m };
}

// --- the command line over the file ---

function applyCli(f: CliFlags, o: ServerOptions, js: JsPartial, found: Findings): void {
  if (f.host !== undefined) o.host = f.host || DEFAULTS.host;
  if (f.port !== undefined) o.port = cliPort(f.port, '-p', found);
  if (f.serverName !== undefined) o.serverName = f.serverName;
  if (f.pidFile !== undefined) o.pidFile = f.pidFile;
  if (f.httpPort !== undefined) o.httpPort = cliPort(f.httpPort, '-m', found);
  if (f.portsFileDir !== undefined) o.portsFileDir = f.portsFileDir;
  if (f.logFile !== undefined) o.logging.logFile = f.logFile;
  if (f.logtime !== undefined) o.logging.logtime = f.logtime;
  if (f.logtimeUtc !== undefined) o.logging.logtimeUtc = f.logtimeUtc;
  if (f.debug !== undefined) o.logging.debug = f.debug;
  if (f.trace !== undefined) o.logging.trace = f.trace;
  if (f.jetstream !== undefined) js.enabled = f.jetstream;
  if (f.storeDir !== undefined) js.storeDir = f.storeDir;

  if (f.user !== undefined || f.pass !== undefined || f.auth !== undefined) {
    const a = o.authorization ?? { timeoutMs: DEFAULTS.authTimeoutMs };
    if (f.user !== undefined) a.user = f.user;
    if (f.pass !== undefined) a.password = f.pass;
    if (f.auth !== undefined) a.token = f.auth;
    o.authorization = a;
  }

  const tlsOn = f.tls === true || f.tlsVerify === true;
  if (tlsOn) {
    if (f.tlsCert === undefined || !isFile(f.tlsCert)) found.errors.push('TLS Server certificate must be present and valid');
    else if (f.tlsKey === undefined || !isFile(f.tlsKey)) found.errors.push('TLS Server private key must be present and valid');
    else if (f.tlsCaCert !== undefined && !isFile(f.tlsCaCert)) found.errors.push(`TLS CA certificate ${JSON.stringify(f.tlsCaCert)}: no such file`);
    else {
      const t: TlsOptions = { certFile: f.tlsCert, keyFile: f.tlsKey, verify: f.tlsVerify === true, timeoutMs: DEFAULTS.tlsTimeoutMs, handshakeFirst: false };
      if (f.tlsCaCert !== undefined) t.caFile = f.tlsCaCert;
      o.tls = t;
    }
  } else if (f.tlsCert !== undefined || f.tlsKey !== undefined || f.tlsCaCert !== undefined) {
    found.warnings.push('--tlscert/--tlskey/--tlscacert have no effect without --tls or --tlsverify');
  }
}

function cliPort(p: number, flag: string, found: Findings): number {
  if (p < -1 || p > 65535) {
    found.errors.push(`invalid port ${p} for ${flag}`);
    return 0;
  }
  return normalizePort(p);
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

// --- checks across keys, after every layer ---

function at(pos: SourcePos | undefined): string {
  return pos === undefined ? '' : `${formatPos(pos)}: `;
}

function validate(o: ServerOptions, org: Origins, found: Findings): void {
  if (o.maxPayload > o.maxPending) {
    found.errors.push(`${at(org.maxPayload ?? org.maxPending)}max_payload (${o.maxPayload}) cannot be higher than max_pending (${o.maxPending})`);
  } else if (o.maxPayload > DEFAULTS.maxPayloadWarn) {
    found.warnings.push(
      `${org.maxPayload === undefined ? '' : formatWhere(org.maxPayload) + ': '}Maximum payloads over 8.00 MB are generally discouraged and could lead to poor performance`,
    );
  }
  const a = o.authorization;
  if (a !== undefined) {
    const conflict = authConflict(a);
    if (conflict !== undefined) found.errors.push(`${at(org.authorization)}${conflict}`);
  }
  if (o.noAuthUser !== undefined) {
    const users = a?.users ?? [];
    if (users.length === 0) found.errors.push(`${at(org.noAuthUser)}no_auth_user: ${JSON.stringify(o.noAuthUser)} present, but users are not defined`);
    else if (!users.some((u) => u.user === o.noAuthUser)) {
      found.errors.push(`${at(org.noAuthUser)}no_auth_user: ${JSON.stringify(o.noAuthUser)} not present as user in authorization block`);
    }
  }
}

/** Reads the command line (and the config file it names) into ServerOptions. Throws ConfigError. */
export function loadOptions(args: LoadArgs): LoadResult {
  const cli = parseArgs(args.argv);
  const found: Findings = { errors: [], warnings: [...cli.warnings] };
  const options = defaultOptions();
  if (cli.action === 'version' || cli.action === 'help' || typeof cli.action === 'object') {
    return { options, warnings: found.warnings, action: cli.action };
  }

  let top: ConfMap | undefined;
  if (cli.flags.configFile !== undefined) {
    const file = cli.flags.configFile;
    const abs = resolve(file);
    if (!existsSync(abs)) throw new ConfigError(`open ${file}: no such file or directory`);
    try {
      top = parseConfigFile(file, { env: args.env ?? process.env });
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      throw new ConfigError(`${file}: ${(e as Error).message}`);
    }
    options.configFile = abs;
  }

  // Profile first: it sits under the file and the flags.
  const r = new FileReader(found);
  let profileName = cli.flags.profile;
  let profilePos: SourcePos | undefined;
  if (profileName === undefined && top !== undefined) {
    const pe = getEntry(top, 'profile');
    if (pe !== undefined && pe.value.kind === 'string') {
      profileName = pe.value.value;
      profilePos = pe.value.pos;
    }
  }
  // `none` opts out of a profile, and of board detection.
  let board: BoardChoice | undefined;
  if (profileName === 'none') {
    profileName = undefined;
  } else if (profileName === undefined && args.detectProfile !== undefined) {
    board = args.detectProfile();
    if (board.profile !== null) profileName = board.profile;
  }
  const js: JsPartial = {};
  if (profileName !== undefined) {
    let p: ProfileLimits;
    try {
      p = loadProfile(profileName);
    } catch (e) {
      if (e instanceof ConfigError && profilePos !== undefined) throw ConfigError.at(profilePos, e.message);
      throw e;
    }
    options.profile = p;
    options.maxConnections = p.maxConnections;
    options.maxPending = p.maxPending;
    options.maxPayload = p.maxPayload;
    options.memoryBudget = p.memoryBudget;
    if (p.maxPendingTotal !== undefined) options.maxPendingTotal = p.maxPendingTotal;
  }

  const org: Origins = { httpHostSet: false, jetstreamSet: false };
  if (top !== undefined) readTop(r, top, options, js, org);
  applyCli(cli.flags, options, js, found);
  finishPorts(options);
  if (!org.httpHostSet) options.httpHost = options.host;
  if (js.enabled !== undefined || org.jetstreamSet) options.jetstream = buildJetStream(js, options);
  validate(options, org, found);

  if (found.errors.length > 0) throw new ConfigError(found.errors);
  return { options, warnings: found.warnings, action: cli.action, ...(board !== undefined ? { board } : {}) };
}

function buildJetStream(js: JsPartial, o: ServerOptions): JetStreamOptions {
  const p = o.profile;
  const out: JetStreamOptions = {
    enabled: js.enabled ?? false,
    storeDir: js.storeDir ?? join(tmpdir(), 'nats'),
    maxMemoryStore: js.maxMemoryStore ?? Math.min(Math.floor(totalmem() * 0.75), o.memoryBudget),
    maxFileStore: js.maxFileStore ?? p?.maxFileStore ?? DEFAULTS.jsMaxFileStore,
    syncInterval: js.syncInterval ?? p?.syncInterval ?? DEFAULTS.jsSyncIntervalMs,
  };
  if (js.domain !== undefined) out.domain = js.domain;
  return out;
}
