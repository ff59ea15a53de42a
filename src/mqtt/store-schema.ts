/**
 * The MQTT tables in the JetStream SQLite database (component `mqtt` in schema_version).
 *
 *   mqtt_sessions   one row per persistent session (3.1.1 clean=0, v5 Session Expiry > 0)
 *     client_id  TEXT PRIMARY KEY
 *     record     TEXT  JSON SessionRecord: session expiry, subscriptions (filter, QoS, v5 options,
 *                      subscription identifier), when it went offline
 *   mqtt_queue      QoS 1/2 messages a persistent session has not acknowledged yet (queued or in flight)
 *     id         INTEGER PRIMARY KEY  assigned by the broker, in arrival order per session
 *     client_id  TEXT
 *     topic      TEXT      MQTT topic as delivered
 *     qos        INTEGER   delivery QoS (1 or 2)
 *     retain     INTEGER   RETAIN flag to deliver with
 *     payload    BLOB
 *     props      TEXT      forwarded v5 properties (JSON, correlation data base64), NULL when none
 *     expires_at INTEGER   message expiry, ms since the epoch; 0 = never
 *   mqtt_retained   one retained message per topic
 *     subject    TEXT PRIMARY KEY  the topic's NATS subject
 *     topic, qos, payload, props, expires_at  as above
 */
import type { Database } from 'better-sqlite3';
import type { StoreReceipt } from '../core/message.js';
import { applyMigrations, type Migration } from '../store/database.js';
import type { StoreHost } from '../store/host.js';

export type { StoreHost };

export const MQTT_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'persistent sessions, their unacknowledged QoS 1/2 messages, retained messages',
    sql: `CREATE TABLE IF NOT EXISTS mqtt_sessions(
        client_id TEXT PRIMARY KEY,
        record TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS mqtt_queue(
        id INTEGER PRIMARY KEY,
        client_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        qos INTEGER NOT NULL,
        retain INTEGER NOT NULL,
        payload BLOB NOT NULL,
        props TEXT,
        expires_at INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS mqtt_queue_client ON mqtt_queue(client_id, id);
      CREATE TABLE IF NOT EXISTS mqtt_retained(
        subject TEXT PRIMARY KEY,
        topic TEXT NOT NULL,
        qos INTEGER NOT NULL,
        payload BLOB NOT NULL,
        props TEXT,
        expires_at INTEGER NOT NULL DEFAULT 0
      )`,
  },
];

export function migrateMqtt(db: Database): number {
  return applyMigrations(db, 'mqtt', MQTT_MIGRATIONS);
}


/** v5 properties forwarded from publisher to subscriber (mqtt-bridge.md §3.3). */
export interface ForwardProps {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: Record<string, string | string[]>;
}

export function propsToJson(p: ForwardProps | undefined): string | null {
  if (p === undefined) return null;
  return JSON.stringify({ ...p, correlationData: p.correlationData?.toString('base64') });
}

export function propsFromJson(s: string | null): ForwardProps | undefined {
  if (s === null || s === '') return undefined;
  const o = JSON.parse(s) as Omit<ForwardProps, 'correlationData'> & { correlationData?: string };
  const p: ForwardProps = {};
  if (o.payloadFormatIndicator !== undefined) p.payloadFormatIndicator = o.payloadFormatIndicator;
  if (o.contentType !== undefined) p.contentType = o.contentType;
  if (o.responseTopic !== undefined) p.responseTopic = o.responseTopic;
  if (o.correlationData !== undefined) p.correlationData = Buffer.from(o.correlationData, 'base64');
  if (o.userProperties !== undefined) p.userProperties = o.userProperties;
  return p;
}

/**
 * Writes collected during one event-loop turn go into the next group commit together (one
 * closure per batch, not per message). A write may carry a receipt: it is told stored() once
 * the transaction holding the write committed (or failed), as a capturing stream does.
 */
export class BatchWriter<Op> {
  private ops: Op[] = [];
  private receipts: StoreReceipt[] = [];
  private enlisted = false;

  constructor(
    private readonly host: StoreHost,
    private readonly apply: (db: Database, ops: readonly Op[]) => void,
    private readonly onError: (err: Error) => void,
  ) {}

  push(op: Op, receipt?: StoreReceipt): void {
    this.ops.push(op);
    if (receipt !== undefined) this.receipts.push(receipt);
    if (this.enlisted) return;
    this.enlisted = true;
    let batch: StoreReceipt[] | null = null;
    this.host.inNextCommit(
      (db) => {
        const ops = this.ops;
        this.ops = [];
        batch = this.receipts;
        this.receipts = [];
        this.enlisted = false;
        this.apply(db, ops);
      },
      (err) => {
        if (err !== null) this.onError(err);
        if (batch === null) {
          // Never written (store closed): what waited on it failed too.
          batch = this.receipts;
          this.receipts = [];
        }
        for (const r of batch) r.stored(err);
      },
    );
  }

  /** Shutdown: apply what is queued now, directly. */
  flushSync(): void {
    const receipts = this.receipts;
    this.receipts = [];
    if (this.ops.length > 0) {
      const ops = this.ops;
      this.ops = [];
      this.apply(this.host.db, ops);
    }
    for (const r of receipts) r.stored(null);
  }
}
