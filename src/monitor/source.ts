import type { ServerOptions } from '../config/options.js';
import type { Subscription } from '../core/subscription.js';
import type { SublistStats } from '../core/sublist.js';
import type { MatchResult } from '../core/sublist.js';

/** One connection as the monitoring endpoints see it (open or closed). */
export interface ConnectionView {
  readonly cid: number;
  /** /connz `type`. */
  readonly type: 'nats' | 'websocket' | 'mqtt';
  readonly ip: string;
  readonly port: number;
  readonly start: Date;
  readonly lastActivity: Date;
  /** Round-trip time of the last PING/PONG the server measured, ms; undefined = not yet. */
  readonly rttMs: number | undefined;
  readonly pendingBytes: number;
  readonly inMsgs: number;
  readonly outMsgs: number;
  readonly inBytes: number;
  readonly outBytes: number;
  readonly name: string;
  readonly lang: string;
  readonly version: string;
  readonly tlsVersion?: string;
  readonly tlsCipher?: string;
  readonly authorizedUser?: string;
  readonly mqttClient?: string;
  /** Set once closed. */
  readonly stop?: Date;
  readonly reason?: string;
  subscriptions(): readonly Subscription[];
}

export interface ServerStats {
  inMsgs: number;
  outMsgs: number;
  inBytes: number;
  outBytes: number;
  slowConsumers: number;
  /** Bytes queued for readers across all connections, and the cap (max_pending_total). */
  pendingBytes: number;
  pendingLimit: number;
  /** Times publishers were paused because queued bytes reached the cap. */
  publisherPauses: number;
  totalConnections: number;
}

/** The subject index as far as /subsz needs it. */
export interface SubjectIndexView {
  readonly count: number;
  stats(): SublistStats;
  all(): IterableIterator<Subscription>;
  match(subject: string): MatchResult;
}

/** What the monitoring HTTP server reads from the running server. */
export interface MonitorSource {
  readonly serverId: string;
  readonly serverName: string;
  readonly version: string;
  readonly start: Date;
  readonly configLoadTime: Date;
  /** Current options (they change on reload). */
  options(): ServerOptions;
  /** Actual bound client port (options may say 0 = random). */
  clientPort(): number;
  /** Actual bound monitoring port. */
  httpPort(): number;
  stats(): ServerStats;
  /** Open connections, ordered by cid. */
  openConnections(): Iterable<ConnectionView>;
  /** Recently closed connections (bounded ring, max_closed_clients), oldest first. */
  closedConnections(): Iterable<ConnectionView>;
  subjectIndex(): SubjectIndexView;
  /** /healthz: null when healthy, else the error text. */
  healthError(): string | null;
}
