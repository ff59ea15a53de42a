/**
 * Persistent MQTT sessions in SQLite (schema in store-schema.ts): the session record with its
 * subscriptions, and every QoS 1/2 message the session has not acknowledged, so both survive a
 * disconnect and a server restart (kill -9 included: rows are written in the next group commit).
 */
import type { Database, Statement } from 'better-sqlite3';
import type { QoS } from 'mqtt-packet';
import type { StoreReceipt } from '../core/message.js';
import { BatchWriter, propsFromJson, propsToJson, type ForwardProps, type StoreHost } from './store-schema.js';

export interface StoredSubscription {
  /** The filter as the client wrote it (with a $share/ prefix for shared ones). */
  f: string;
  q: QoS;
  nl?: boolean;
  rap?: boolean;
  rh?: number;
  /** v5 subscription identifier. */
  id?: number;
}

export interface SessionRecord {
  /** Session Expiry Interval in seconds; 0xFFFFFFFF = never (3.1.1 clean=0). */
  expiry: number;
  subs: StoredSubscription[];
  /** When the client disconnected (ms); null while connected. */
  offlineSince: number | null;
  /**
   * Inbound QoS 2 packet ids between PUBREC and PUBREL: a PUBLISH the client resends with one of
   * them after a server restart is a duplicate, not a new message (exactly once).
   */
  q2?: number[];
}

export interface QueuedRow {
  id: number;
  topic: string;
  qos: QoS;
  retain: boolean;
  payload: Buffer;
  props: ForwardProps | undefined;
  expiresAt: number;
}

type Op =
  | { k: 'session'; clientId: string; record: string }
  | { k: 'drop-session'; clientId: string }
  | { k: 'msg'; clientId: string; row: QueuedRow }
  | { k: 'drop-msg'; id: number };

export class SessionStore {
  private readonly writer: BatchWriter<Op>;
  private nextId: number;
  private stmts: Record<'putSession' | 'dropSession' | 'dropQueue' | 'putMsg' | 'dropMsg', Statement> | null = null;

  constructor(
    private readonly host: StoreHost,
    onError: (err: Error) => void,
  ) {
    this.writer = new BatchWriter<Op>(host, (db, ops) => this.apply(db, ops), onError);
    const row = host.db.prepare('SELECT MAX(id) AS m FROM mqtt_queue').get() as { m: number | null };
    this.nextId = (row.m ?? 0) + 1;
  }

  private statements(db: Database): NonNullable<SessionStore['stmts']> {
    if (this.stmts === null) {
      this.stmts = {
        putSession: db.prepare('INSERT INTO mqtt_sessions(client_id, record) VALUES(?, ?) ON CONFLICT(client_id) DO UPDATE SET record = excluded.record'),
        dropSession: db.prepare('DELETE FROM mqtt_sessions WHERE client_id = ?'),
        dropQueue: db.prepare('DELETE FROM mqtt_queue WHERE client_id = ?'),
        putMsg: db.prepare('INSERT INTO mqtt_queue(id, client_id, topic, qos, retain, payload, props, expires_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?)'),
        dropMsg: db.prepare('DELETE FROM mqtt_queue WHERE id = ?'),
      };
    }
    return this.stmts;
  }

  private apply(db: Database, ops: readonly Op[]): void {
    const s = this.statements(db);
    for (const op of ops) {
      switch (op.k) {
        case 'session':
          s.putSession.run(op.clientId, op.record);
          break;
        case 'drop-session':
          s.dropSession.run(op.clientId);
          s.dropQueue.run(op.clientId);
          break;
        case 'msg': {
          const r = op.row;
          s.putMsg.run(r.id, op.clientId, r.topic, r.qos, r.retain ? 1 : 0, r.payload, propsToJson(r.props), r.expiresAt);
          break;
        }
        case 'drop-msg':
          s.dropMsg.run(op.id);
          break;
      }
    }
  }

  /** Every stored session with its queued messages in arrival order (server start). */
  loadAll(): Map<string, { record: SessionRecord; queue: QueuedRow[] }> {
    const out = new Map<string, { record: SessionRecord; queue: QueuedRow[] }>();
    const db = this.host.db;
    for (const row of db.prepare('SELECT client_id, record FROM mqtt_sessions').all() as { client_id: string; record: string }[]) {
      try {
        out.set(row.client_id, { record: JSON.parse(row.record) as SessionRecord, queue: [] });
      } catch {
        // An unreadable record is a lost session, not a reason to refuse to start.
      }
    }
    const rows = db.prepare('SELECT id, client_id, topic, qos, retain, payload, props, expires_at FROM mqtt_queue ORDER BY id').all() as {
      id: number;
      client_id: string;
      topic: string;
      qos: number;
      retain: number;
      payload: Buffer;
      props: string | null;
      expires_at: number;
    }[];
    for (const r of rows) {
      const s = out.get(r.client_id);
      if (s === undefined) continue;
      s.queue.push({
        id: r.id,
        topic: r.topic,
        qos: (r.qos === 2 ? 2 : 1) as QoS,
        retain: r.retain !== 0,
        payload: r.payload,
        props: propsFromJson(r.props),
        expiresAt: r.expires_at,
      });
    }
    return out;
  }

  /** `receipt` (optional) hears when the record is committed. */
  saveSession(clientId: string, record: SessionRecord, receipt?: StoreReceipt): void {
    receipt?.captured();
    this.writer.push({ k: 'session', clientId, record: JSON.stringify(record) }, receipt);
  }

  dropSession(clientId: string): void {
    this.writer.push({ k: 'drop-session', clientId });
  }

  /**
   * Stores a queued message; returns its id (used to remove it once acknowledged). `receipt`
   * is told stored() once the row committed.
   */
  addMessage(clientId: string, row: Omit<QueuedRow, 'id'>, receipt?: StoreReceipt): number {
    const id = this.nextId++;
    this.writer.push({ k: 'msg', clientId, row: { ...row, id } }, receipt);
    return id;
  }

  dropMessage(id: number): void {
    this.writer.push({ k: 'drop-msg', id });
  }
}
