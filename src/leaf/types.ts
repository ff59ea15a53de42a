/**
 * The seams of the leaf component: its options (read from nats-server's `leafnodes { }` block),
 * the store-and-forward queue, and what /leafz reads.
 */
import type { TlsOptions } from '../config/options.js';

/** One `remotes: [ {...} ]` entry: a hub this server dials as a leaf. */
export interface LeafRemoteOptions {
  /** The URLs to try, in order (nats-leaf://, nats://, tls://; userinfo kept in the URL). */
  urls: URL[];
  /** Local account to bind; nats-edge has one account, so only '$G' (the default) is accepted. */
  account: string;
  /** Path of a `.creds` file (user JWT + nkey seed signing the hub's nonce). */
  credentials?: string;
  /** A user nkey seed (SU...) for nkey auth. */
  nkeySeed?: string;
  /** Username/password given in the remote block rather than the URL. */
  user?: string;
  password?: string;
  /** TLS toward the hub: a `tls {}` block on the remote (ca_file, cert_file, key_file, insecure). */
  tls?: LeafTlsOptions;
  /** Never subscribe to / accept these from the hub (sent to the hub as deny_pub). */
  denyImports: string[];
  /** Never send these to the hub. */
  denyExports: string[];
  /** false: shuffle the URLs at start, as nats-server does unless no_randomize. */
  noRandomize: boolean;
  firstInfoTimeoutMs: number;
  /** Store-and-forward of selected subjects while the link is down; absent = none. */
  buffer?: LeafBufferOptions;
  /** file:line of the remote's block, for log lines. */
  where: string;
}

export interface LeafTlsOptions extends Partial<TlsOptions> {
  /** Skip verification of the hub's certificate (nats-server `insecure`). */
  insecure: boolean;
  timeoutMs: number;
  /** TLS before the hub's INFO (nats-server `handshake_first`). */
  handshakeFirst: boolean;
}

export interface LeafBufferOptions {
  /** Subjects (wildcards allowed) whose local publishes are kept while the uplink is down. */
  subjects: string[];
  /** Bytes of subjects + headers + payloads the queue may hold; the oldest is dropped beyond it. */
  maxBytes: number;
  /** Messages older than this are dropped (0 = no age limit). */
  maxAgeMs: number;
  /** Messages per second replayed once the link is back (0 = as fast as the hub acknowledges). */
  replayRate: number;
  /** Messages the queue may hold (0 = no count limit). */
  maxMsgs: number;
}

export interface LeafOptions {
  remotes: LeafRemoteOptions[];
  /** Wait before redialing after a failure or a closed link (nats-server `reconnect`, default 1 s). */
  reconnectMs: number;
}

/** One message waiting in the store-and-forward queue, as read back for replay. */
export interface BufferedMessage {
  /** Row id: strictly increasing, never reused (the Nats-Msg-Id is derived from it). */
  readonly id: number;
  readonly subject: string;
  readonly reply: string;
  /** Header block length, -1 when none (as Message.hdrLen). */
  readonly hdrLen: number;
  /** Header block followed by payload. */
  readonly data: Buffer;
  /** When it was published, ms since the epoch. */
  readonly ts: number;
}

export interface BufferStats {
  /** Messages and bytes in the queue (committed and about to be). */
  msgs: number;
  bytes: number;
  /** Timestamp of the oldest message, 0 when empty. */
  oldestTs: number;
  /** Dropped because of max_bytes / max_msgs / max_age, since start. */
  droppedMsgs: number;
  droppedBytes: number;
  /** Appended since start. */
  appended: number;
}

/** Where a backlog replay stands (the numbers of its progress log line). */
export interface ReplayProgress {
  /** Messages of the backlog found at link-up already delivered, and that backlog. */
  readonly done: number;
  readonly total: number;
  /** Messages replayed per second since the replay started. */
  readonly ratePerSec: number;
  /** Time left at that rate, seconds; -1 while unknown. */
  readonly secondsLeft: number;
}

/** The state of one remote's link, as /leafz, /varz and the console show it. */
export type LeafLinkState = 'connecting' | 'connected' | 'disconnected';

/** What monitoring reads of one remote (a snapshot; no secrets: URLs are shown without userinfo). */
export interface LeafLinkView {
  /** The hub's server_name (server_id when it gave none); '' before the first INFO. */
  readonly name: string;
  /** The URL being used or tried, userinfo removed. */
  readonly url: string;
  readonly state: LeafLinkState;
  /** When `state` last changed. */
  readonly since: Date;
  /** When the link last came up or went down (redial attempts while down leave it as it is). */
  readonly upDownSince?: Date;
  /** Dials that failed since the link was last up. */
  readonly failedDials?: number;
  /** Local account bound ('$G'). */
  readonly account: string;
  /** The hub account we were bound to (connect_info INFO remote_account), '' until known. */
  readonly remoteAccount: string;
  readonly ip: string;
  readonly port: number;
  /** Last measured PING→PONG round trip, ms; -1 before the first. */
  readonly rttMs: number;
  readonly inMsgs: number;
  readonly outMsgs: number;
  readonly inBytes: number;
  readonly outBytes: number;
  /** Subjects the hub told us it wants (LS+), with queue groups as "subject queue". */
  subscriptions(): string[];
  /** Times the link came up. */
  readonly connects: number;
  /** The last error (dial, auth, -ERR from the hub), '' when none. */
  readonly lastError: string;
  /** Store-and-forward, when the remote has a buffer block. */
  readonly buffer?: BufferStats & {
    /** true while a backlog is being replayed. */
    readonly replaying: boolean;
    /** Messages replayed (acknowledged by the hub or flushed) since start. */
    readonly replayed: number;
    /** The running replay's progress; null when none runs. */
    readonly progress?: ReplayProgress | null;
  };
}
