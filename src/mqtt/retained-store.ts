/**
 * Retained messages: one per topic, held in memory for matching on SUBSCRIBE and persisted in
 * SQLite (mqtt_retained, see store-schema.ts) so they survive restarts.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { QoS } from 'mqtt-packet';
import { subjectMatches } from '../core/subject.js';
import { BatchWriter, propsFromJson, propsToJson, type ForwardProps, type StoreHost } from './store-schema.js';

export interface RetainedMsg {
  readonly subject: string;
  readonly topic: string;
  readonly qos: QoS;
  readonly payload: Buffer;
  readonly props: ForwardProps | undefined;
  /** ms since the epoch; 0 = never. */
  readonly expiresAt: number;
}

type Op = { k: 'set'; m: RetainedMsg } | { k: 'clear'; subject: string };

export class RetainedStore {
  private readonly msgs = new Map<string, RetainedMsg>();
  private readonly writer: BatchWriter<Op>;
  private stmts: { set: Statement; clear: Statement } | null = null;

  constructor(host: StoreHost, onError: (err: Error) => void) {
    this.writer = new BatchWriter<Op>(host, (db, ops) => this.apply(db, ops), onError);
    const rows = host.db.prepare('SELECT subject, topic, qos, payload, props, expires_at FROM mqtt_retained').all() as {
      subject: string;
      topic: string;
      qos: number;
      payload: Buffer;
      props: string | null;
      expires_at: number;
    }[];
    for (const r of rows) {
      let props: ForwardProps | undefined;
      try {
        props = propsFromJson(r.props);
      } catch {
        props = undefined;
      }
      this.msgs.set(r.subject, { subject: r.subject, topic: r.topic, qos: Math.min(2, Math.max(0, r.qos)) as QoS, payload: r.payload, props, expiresAt: r.expires_at });
    }
  }

  private apply(db: Database, ops: readonly Op[]): void {
    if (this.stmts === null) {
      this.stmts = {
        set: db.prepare('INSERT INTO mqtt_retained(subject, topic, qos, payload, props, expires_at) VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(subject) DO UPDATE SET topic = excluded.topic, qos = excluded.qos, payload = excluded.payload, props = excluded.props, expires_at = excluded.expires_at'),
        clear: db.prepare('DELETE FROM mqtt_retained WHERE subject = ?'),
      };
    }
    for (const op of ops) {
      if (op.k === 'set') {
        const m = op.m;
        this.stmts.set.run(m.subject, m.topic, m.qos, m.payload, propsToJson(m.props), m.expiresAt);
      } else {
        this.stmts.clear.run(op.subject);
      }
    }
  }

  get size(): number {
    return this.msgs.size;
  }

  /** RETAIN=1 PUBLISH: an empty payload clears the topic's retained message. */
  set(m: RetainedMsg): void {
    if (m.payload.length === 0) {
      if (this.msgs.delete(m.subject)) this.writer.push({ k: 'clear', subject: m.subject });
      return;
    }
    this.msgs.set(m.subject, m);
    this.writer.push({ k: 'set', m });
  }

  /** Retained messages matching any of the NATS subjects of a filter; expired ones are removed. */
  match(subjects: readonly string[], now: number): RetainedMsg[] {
    const out: RetainedMsg[] = [];
    for (const m of this.msgs.values()) {
      if (m.expiresAt > 0 && m.expiresAt <= now) {
        this.msgs.delete(m.subject);
        this.writer.push({ k: 'clear', subject: m.subject });
        continue;
      }
      for (const s of subjects) {
        if (subjectMatches(s, m.subject)) {
          out.push(m);
          break;
        }
      }
    }
    return out;
  }
}
