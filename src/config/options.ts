/**
 * The typed server options every component reads. Produced by the config loader from
 * (in increasing priority) built-in defaults, the firmware profile, the config file and the
 * command-line flags. Durations are milliseconds, sizes are bytes.
 */
import type { ConfNode } from './conf-parser.js';

export interface SubjectPermission {
  /** Empty = everything allowed (unless denied). Entries may hold wildcards; "subj queue" restricts queues. */
  allow: string[];
  deny: string[];
}

export interface ResponsePermission {
  /** Replies allowed per request received (nats-server default 1). */
  max: number;
  /** How long the reply stays allowed, 0 = no limit (nats-server default 2 m). */
  expiresMs: number;
}

export interface Permissions {
  publish?: SubjectPermission;
  subscribe?: SubjectPermission;
  allowResponses?: ResponsePermission;
}

export interface UserEntry {
  user: string;
  /** Plain text or a bcrypt hash ($2a$/$2b$/$2x$/$2y$). */
  password: string;
  permissions?: Permissions;
  /** STANDARD, WEBSOCKET, LEAFNODE, MQTT, IN_PROCESS; empty = all. */
  allowedConnectionTypes?: string[];
}

export interface AuthorizationOptions {
  /** Plain text or bcrypt hash. Exclusive with user/password and users. */
  token?: string;
  user?: string;
  password?: string;
  users?: UserEntry[];
  /** Permissions for users that have none of their own (authorization.permissions). */
  defaultPermissions?: Permissions;
  /** Time a client has to send CONNECT when auth is required. */
  timeoutMs: number;
}

export interface TlsOptions {
  certFile: string;
  keyFile: string;
  caFile?: string;
  /** Require and verify a client certificate. */
  verify: boolean;
  /** TLS handshake timeout. */
  timeoutMs: number;
  /** TLS before INFO (nats-server 2.10 handshake_first). */
  handshakeFirst: boolean;
}

export interface LoggingOptions {
  debug: boolean;
  trace: boolean;
  logtime: boolean;
  logtimeUtc: boolean;
  logFile?: string;
}

/** JetStream settings; the jetstream component interprets them. */
export interface JetStreamOptions {
  enabled: boolean;
  storeDir: string;
  maxMemoryStore: number;
  maxFileStore: number;
  domain?: string;
  /** 'always' or an interval in ms. */
  syncInterval: 'always' | number;
}

/** A config block kept as parsed, for components that read their own block (mqtt, leafnodes, websocket). */
export interface RawBlock {
  readonly value: unknown;
  /** Where the block was defined (file:line), for error messages. */
  readonly where: string;
  /** The same block as parsed, with file/line/column on every key and value. */
  readonly node?: ConfNode;
}

/** Limits a firmware profile sets (see firmware-profiles/). */
export interface ProfileLimits {
  name: string;
  description: string;
  /** Process-wide budget for queued outbound and pending inbound bytes. */
  memoryBudget: number;
  /** RSS the process must stay under (systemd MemoryMax). */
  rssCeiling: number;
  /** Where reclaim should start (systemd MemoryHigh), about 85 % of rssCeiling. */
  memoryHigh?: number;
  maxOldSpaceMb: number;
  maxSemiSpaceMb: number;
  maxConnections: number;
  maxPending: number;
  /** Outbound bytes queued across all connections together (boards.md "global" max_pending). */
  maxPendingTotal?: number;
  maxPayload: number;
  /** Total SQLite store size cap. */
  maxFileStore: number;
  /** SQLite page cache (PRAGMA cache_size, negative = KiB). */
  sqliteCacheSize: number;
  /** 'always' or durable-every interval in ms under synchronous=NORMAL. */
  syncInterval: 'always' | number;
  walMaxBytes: number;
  /** Least ms between two store commits under load (group-commit.ts): fewer page rewrites on SD cards. */
  commitLingerMs?: number;
}

export interface ServerOptions {
  /** Absolute path of the config file, if any (SIGHUP reloads it). */
  configFile?: string;
  /** '' means: use the server id. */
  serverName: string;
  host: string;
  /** Client port; -1 or 0 = random. */
  port: number;
  /** Monitoring HTTP; port undefined = off, -1 or 0 = random. */
  httpHost: string;
  httpPort?: number;
  httpBasePath: string;

  maxPayload: number;
  maxControlLine: number;
  maxPending: number;
  maxConnections: number;
  /** 0 = unlimited. */
  maxSubscriptions: number;
  /** 0 = off. */
  maxSubTokens: number;
  pingIntervalMs: number;
  pingMax: number;
  writeDeadlineMs: number;
  noHeaderSupport: boolean;
  lameDuckDurationMs: number;
  lameDuckGracePeriodMs: number;
  maxClosedClients: number;
  pidFile?: string;
  portsFileDir?: string;
  serverTags: string[];

  /** Process-wide byte budget of the broker (DESIGN.md "Memory is a budget"). */
  memoryBudget: number;
  /**
   * The part of the budget that outbound queues may hold across all connections; near it,
   * publishers are paused (config key max_pending_total, or the profile's).
   */
  maxPendingTotal: number;
  profile?: ProfileLimits;

  authorization?: AuthorizationOptions;
  /** User assumed when a client sends no credentials. */
  noAuthUser?: string;
  tls?: TlsOptions;
  allowNonTls: boolean;
  logging: LoggingOptions;
  jetstream?: JetStreamOptions;
  /** Blocks of later components, kept raw: mqtt, leafnodes, websocket. */
  blocks: Partial<Record<'mqtt' | 'leafnodes' | 'websocket', RawBlock>>;
}
