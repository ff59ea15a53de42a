/**
 * Durable consumer state in the file database. Rows are written inside the store's group
 * commit (JetStreamRuntime.inNextCommit), so consumer acks share the stream writes' fsync and
 * may lag them by one commit, as nats-server's do.
 */
import type { Database, Statement } from 'better-sqlite3';

/**
 * The consumer tables, run by the store when it opens the file database.
 *
 * js_consumer — one row per durable consumer of a file stream:
 *   stream, name   the consumer's identity (name = durable name)
 *   config         ConsumerConfig JSON with defaults filled in, as CONSUMER.INFO echoes it
 *   created        creation time, µs since the epoch
 *   dseq, dsseq    delivered.consumer_seq / delivered.stream_seq
 *   adflr, asflr   ack_floor.consumer_seq / ack_floor.stream_seq
 *   next_seq       the next stream seq to deliver for the first time (the resume point)
 *   lps_end        last_per_subject: the stream's last seq at creation while the initial pass over
 *                  each subject's newest message is unfinished; 0 once it is done
 *
 * js_consumer_pending — one row per message a durable consumer delivered and that is not yet
 * acknowledged, or that reached max_deliver:
 *   sseq           the stream sequence
 *   dseq           consumer seq of its latest delivery; 0 once max_deliver took it out of pending
 *                  (it then only counts in num_redelivered)
 *   dc             deliveries so far
 *   ts             latest delivery time, µs (the redelivery deadline is ts + ack wait)
 */
export const CONSUMER_SCHEMA = `
CREATE TABLE IF NOT EXISTS js_consumer (
  stream TEXT NOT NULL,
  name TEXT NOT NULL,
  config TEXT NOT NULL,
  created INTEGER NOT NULL,
  dseq INTEGER NOT NULL,
  dsseq INTEGER NOT NULL,
  adflr INTEGER NOT NULL,
  asflr INTEGER NOT NULL,
  next_seq INTEGER NOT NULL,
  lps_end INTEGER NOT NULL,
  PRIMARY KEY (stream, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS js_consumer_pending (
  stream TEXT NOT NULL,
  name TEXT NOT NULL,
  sseq INTEGER NOT NULL,
  dseq INTEGER NOT NULL,
  dc INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  PRIMARY KEY (stream, name, sseq)
) WITHOUT ROWID;
`;

export interface ConsumerRow {
  stream: string;
  name: string;
  config: string;
  created: number;
  dseq: number;
  dsseq: number;
  adflr: number;
  asflr: number;
  next_seq: number;
  lps_end: number;
}

export interface PendingRow {
  sseq: number;
  dseq: number;
  dc: number;
  ts: number;
}

interface Statements {
  upsertConsumer: Statement;
  upsertPending: Statement;
  deletePending: Statement;
  eraseConsumer: Statement;
  erasePending: Statement;
  loadConsumers: Statement;
  loadPending: Statement;
}

const prepared = new WeakMap<Database, Statements>();

function statements(db: Database): Statements {
  let s = prepared.get(db);
  if (s === undefined) {
    s = {
      upsertConsumer: db.prepare(
        `INSERT INTO js_consumer (stream, name, config, created, dseq, dsseq, adflr, asflr, next_seq, lps_end)
         VALUES (@stream, @name, @config, @created, @dseq, @dsseq, @adflr, @asflr, @next_seq, @lps_end)
         ON CONFLICT (stream, name) DO UPDATE SET config = excluded.config, dseq = excluded.dseq,
           dsseq = excluded.dsseq, adflr = excluded.adflr, asflr = excluded.asflr,
           next_seq = excluded.next_seq, lps_end = excluded.lps_end`,
      ),
      upsertPending: db.prepare(
        `INSERT INTO js_consumer_pending (stream, name, sseq, dseq, dc, ts) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (stream, name, sseq) DO UPDATE SET dseq = excluded.dseq, dc = excluded.dc, ts = excluded.ts`,
      ),
      deletePending: db.prepare('DELETE FROM js_consumer_pending WHERE stream = ? AND name = ? AND sseq = ?'),
      eraseConsumer: db.prepare('DELETE FROM js_consumer WHERE stream = ? AND name = ?'),
      erasePending: db.prepare('DELETE FROM js_consumer_pending WHERE stream = ? AND name = ?'),
      loadConsumers: db.prepare('SELECT * FROM js_consumer WHERE stream = ? ORDER BY name'),
      loadPending: db.prepare('SELECT sseq, dseq, dc, ts FROM js_consumer_pending WHERE stream = ? AND name = ? ORDER BY sseq'),
    };
    prepared.set(db, s);
  }
  return s;
}

export function saveConsumer(db: Database, row: ConsumerRow): void {
  statements(db).upsertConsumer.run(row);
}

export function savePending(db: Database, stream: string, name: string, sseq: number, dseq: number, dc: number, ts: number): void {
  statements(db).upsertPending.run(stream, name, sseq, dseq, dc, ts);
}

export function deletePending(db: Database, stream: string, name: string, sseq: number): void {
  statements(db).deletePending.run(stream, name, sseq);
}

export function eraseConsumer(db: Database, stream: string, name: string): void {
  const s = statements(db);
  s.eraseConsumer.run(stream, name);
  s.erasePending.run(stream, name);
}

// Rows are read back with Number(): a database opened with safe integers hands out BigInts.

export function loadConsumers(db: Database, stream: string): ConsumerRow[] {
  const rows = statements(db).loadConsumers.all(stream) as Record<string, unknown>[];
  return rows.map((r) => ({
    stream: String(r['stream']),
    name: String(r['name']),
    config: String(r['config']),
    created: Number(r['created']),
    dseq: Number(r['dseq']),
    dsseq: Number(r['dsseq']),
    adflr: Number(r['adflr']),
    asflr: Number(r['asflr']),
    next_seq: Number(r['next_seq']),
    lps_end: Number(r['lps_end']),
  }));
}

export function loadPending(db: Database, stream: string, name: string): PendingRow[] {
  const rows = statements(db).loadPending.all(stream, name) as Record<string, unknown>[];
  return rows.map((r) => ({ sseq: Number(r['sseq']), dseq: Number(r['dseq']), dc: Number(r['dc']), ts: Number(r['ts']) }));
}
