/**
 * One stream's messages in SQLite: a table per stream, keyed by the stream sequence, with one
 * index on subject, and every statement prepared once.
 *
 * Schema of stream table `js_msgs_<id>` (created with the stream, dropped with it):
 *   seq     INTEGER PRIMARY KEY  the stream sequence (the rowid itself: no duplicate key)
 *   ts      INTEGER              store time, microseconds since the epoch, non-decreasing in seq
 *   subject TEXT
 *   hdr_len INTEGER              length of the NATS header block at the start of raw, 0 = none
 *   msg_id  TEXT                 Nats-Msg-Id or NULL: the duplicate window is rebuilt from it
 *   raw     BLOB                 header block + payload, last so that scans of the other
 *                                columns do not read a large message's overflow pages
 * Index `js_msgs_<id>_subj (subject)` (SQLite appends seq): last/next by subject, per-subject
 * limits, rollups and filtered purges. Time has no index: ts follows seq, so a time lookup is a
 * binary search over seq by primary key (sqlite-store.md §6) and costs no WAL bytes per insert.
 */
import type { Database as Db, Statement } from 'better-sqlite3';
import type { StoredMsg } from '../jetstream/types.js';

/** What removal bookkeeping needs of a row, without reading its payload. */
export interface RowMeta {
  seq: number;
  subject: string;
  /** Subject length in bytes. */
  slen: number;
  hdr_len: number;
  /** Header block + payload length. */
  rlen: number;
}

export interface SeqTs {
  seq: number;
  ts: number;
}

export interface SubjectCount {
  subject: string;
  n: number;
  last: number;
}

const MSG_COLUMNS = 'seq, subject, hdr_len AS hdrLen, raw, ts AS tsUs';
const META_COLUMNS = 'seq, subject, octet_length(subject) AS slen, hdr_len, length(raw) AS rlen';

export function messageTableName(id: number): string {
  return `js_msgs_${id}`;
}

export class MessageTable {
  readonly table: string;
  private readonly s: {
    insert: Statement;
    get: Statement;
    first: Statement;
    last: Statement;
    from: Statement;
    seqSubjectFrom: Statement;
    subjectFrom: Statement;
    lastOfSubject: Statement;
    firstOfSubject: Statement;
    metaFrom: Statement;
    metaOfSubject: Statement;
    metaOfSubjectBelow: Statement;
    metaBelow: Statement;
    metaOne: Statement;
    deleteSeq: Statement;
    deleteRange: Statement;
    deleteAll: Statement;
    countFrom: Statement;
    countSubjectFrom: Statement;
    seqTsFrom: Statement;
    stats: Statement;
    subjectCounts: Statement;
    msgIdsFrom: Statement;
    allSeqs: Statement;
    tsBefore: Statement;
  };

  /** Creates the table and its index (inside the caller's transaction). */
  static create(db: Db, schema: string, id: number): void {
    const t = messageTableName(id);
    db.exec(`CREATE TABLE IF NOT EXISTS ${schema}.${t}(
      seq INTEGER PRIMARY KEY,
      ts INTEGER NOT NULL,
      subject TEXT NOT NULL,
      hdr_len INTEGER NOT NULL,
      msg_id TEXT,
      raw BLOB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS ${schema}.${t}_subj ON ${t}(subject);`);
  }

  static drop(db: Db, schema: string, id: number): void {
    db.exec(`DROP TABLE IF EXISTS ${schema}.${messageTableName(id)}`);
  }

  constructor(
    db: Db,
    readonly schema: string,
    readonly id: number,
  ) {
    const t = `${schema}.${messageTableName(id)}`;
    this.table = t;
    const p = (sql: string): Statement => db.prepare(sql);
    this.s = {
      insert: p(`INSERT INTO ${t}(seq, ts, subject, hdr_len, msg_id, raw) VALUES (?, ?, ?, ?, ?, ?)`),
      get: p(`SELECT ${MSG_COLUMNS} FROM ${t} WHERE seq = ?`),
      first: p(`SELECT seq, ts FROM ${t} ORDER BY seq LIMIT 1`),
      last: p(`SELECT seq, msg_id AS msgId FROM ${t} ORDER BY seq DESC LIMIT 1`),
      from: p(`SELECT ${MSG_COLUMNS} FROM ${t} WHERE seq >= ? ORDER BY seq LIMIT ?`),
      seqSubjectFrom: p(`SELECT seq, subject FROM ${t} WHERE seq >= ? ORDER BY seq LIMIT ?`),
      subjectFrom: p(`SELECT ${MSG_COLUMNS} FROM ${t} WHERE subject = ? AND seq >= ? ORDER BY seq LIMIT ?`),
      lastOfSubject: p(`SELECT MAX(seq) FROM ${t} WHERE subject = ?`).pluck(),
      firstOfSubject: p(`SELECT ${META_COLUMNS} FROM ${t} WHERE subject = ? ORDER BY seq LIMIT 1`),
      metaFrom: p(`SELECT ${META_COLUMNS} FROM ${t} WHERE seq >= ? ORDER BY seq LIMIT ?`),
      metaOfSubject: p(`SELECT ${META_COLUMNS} FROM ${t} WHERE subject = ? ORDER BY seq LIMIT ?`),
      metaOfSubjectBelow: p(`SELECT ${META_COLUMNS} FROM ${t} WHERE subject = ? AND seq < ? ORDER BY seq LIMIT ?`),
      metaBelow: p(`SELECT ${META_COLUMNS} FROM ${t} WHERE seq < ? ORDER BY seq LIMIT ?`),
      metaOne: p(`SELECT ${META_COLUMNS} FROM ${t} WHERE seq = ?`),
      deleteSeq: p(`DELETE FROM ${t} WHERE seq = ?`),
      deleteRange: p(`DELETE FROM ${t} WHERE seq >= ? AND seq <= ?`),
      deleteAll: p(`DELETE FROM ${t}`),
      countFrom: p(`SELECT COUNT(*) FROM ${t} WHERE seq >= ?`).pluck(),
      countSubjectFrom: p(`SELECT COUNT(*) FROM ${t} WHERE subject = ? AND seq >= ?`).pluck(),
      seqTsFrom: p(`SELECT seq, ts FROM ${t} WHERE seq >= ? ORDER BY seq LIMIT 1`),
      stats: p(
        `SELECT COUNT(*) AS n, COALESCE(SUM(octet_length(subject) + length(raw)), 0) AS b,
           COALESCE(SUM(hdr_len > 0), 0) AS h FROM ${t}`,
      ),
      subjectCounts: p(`SELECT subject, COUNT(*) AS n, MAX(seq) AS last FROM ${t} GROUP BY subject`),
      msgIdsFrom: p(`SELECT seq, ts, msg_id AS msgId FROM ${t} WHERE seq >= ? AND msg_id IS NOT NULL ORDER BY seq`),
      allSeqs: p(`SELECT seq FROM ${t} ORDER BY seq`).pluck(),
      tsBefore: p(`SELECT ${META_COLUMNS} FROM ${t} WHERE seq >= ? AND ts < ? ORDER BY seq LIMIT ?`),
    };
  }

  insert(seq: number, tsUs: number, subject: string, hdrLen: number, msgId: string | null, raw: Buffer): void {
    this.s.insert.run(seq, tsUs, subject, hdrLen, msgId, raw);
  }

  get(seq: number): StoredMsg | null {
    return (this.s.get.get(seq) as StoredMsg | undefined) ?? null;
  }

  first(): SeqTs | null {
    return (this.s.first.get() as SeqTs | undefined) ?? null;
  }

  last(): { seq: number; msgId: string | null } | null {
    return (this.s.last.get() as { seq: number; msgId: string | null } | undefined) ?? null;
  }

  /** Up to `limit` messages with seq >= from, in order. */
  from(from: number, limit: number): StoredMsg[] {
    return this.s.from.all(from, limit) as StoredMsg[];
  }

  /** Up to `limit` (seq, subject) pairs with seq >= from: a scan that never reads payloads. */
  seqSubjectFrom(from: number, limit: number): { seq: number; subject: string }[] {
    return this.s.seqSubjectFrom.all(from, limit) as { seq: number; subject: string }[];
  }

  /** Up to `limit` messages on exactly `subject` with seq >= from (index range). */
  subjectFrom(subject: string, from: number, limit: number): StoredMsg[] {
    return this.s.subjectFrom.all(subject, from, limit) as StoredMsg[];
  }

  lastOfSubject(subject: string): number {
    return (this.s.lastOfSubject.get(subject) as number | null) ?? 0;
  }

  firstOfSubject(subject: string): RowMeta | null {
    return (this.s.firstOfSubject.get(subject) as RowMeta | undefined) ?? null;
  }

  metaFrom(from: number, limit: number): RowMeta[] {
    return this.s.metaFrom.all(from, limit) as RowMeta[];
  }

  metaOfSubject(subject: string, limit: number): RowMeta[] {
    return this.s.metaOfSubject.all(subject, limit) as RowMeta[];
  }

  metaOfSubjectBelow(subject: string, below: number, limit: number): RowMeta[] {
    return this.s.metaOfSubjectBelow.all(subject, below, limit) as RowMeta[];
  }

  metaBelow(below: number, limit: number): RowMeta[] {
    return this.s.metaBelow.all(below, limit) as RowMeta[];
  }

  metaOne(seq: number): RowMeta | null {
    return (this.s.metaOne.get(seq) as RowMeta | undefined) ?? null;
  }

  /** Rows from `from` on stored before `tsUs`, oldest first (max_age). */
  metaOlderThan(from: number, tsUs: number, limit: number): RowMeta[] {
    return this.s.tsBefore.all(from, tsUs, limit) as RowMeta[];
  }

  deleteSeq(seq: number): boolean {
    return this.s.deleteSeq.run(seq).changes > 0;
  }

  deleteRange(fromSeq: number, toSeq: number): number {
    return this.s.deleteRange.run(fromSeq, toSeq).changes;
  }

  deleteAll(): number {
    return this.s.deleteAll.run().changes;
  }

  countFrom(from: number): number {
    return this.s.countFrom.get(from) as number;
  }

  countSubjectFrom(subject: string, from: number): number {
    return this.s.countSubjectFrom.get(subject, from) as number;
  }

  /** The first stored (seq, ts) at or after seq, or null. */
  seqTsFrom(seq: number): SeqTs | null {
    return (this.s.seqTsFrom.get(seq) as SeqTs | undefined) ?? null;
  }

  /** Count, subject+raw bytes and messages with headers: the inputs of the stream's byte accounting. */
  stats(): { n: number; b: number; h: number } {
    return this.s.stats.get() as { n: number; b: number; h: number };
  }

  subjectCounts(): SubjectCount[] {
    return this.s.subjectCounts.all() as SubjectCount[];
  }

  msgIdsFrom(from: number): { seq: number; ts: number; msgId: string }[] {
    return this.s.msgIdsFrom.all(from) as { seq: number; ts: number; msgId: string }[];
  }

  /** Every stored seq in order, one at a time (deleted_details walks the gaps). */
  allSeqs(): IterableIterator<number> {
    return this.s.allSeqs.iterate() as IterableIterator<number>;
  }

  /**
   * First stored seq whose ts >= tsUs, by binary search over seq (ts is non-decreasing in seq);
   * 0 when every stored message is older.
   */
  seqAtOrAfterTime(tsUs: number, firstSeq: number, lastSeq: number): number {
    let lo = firstSeq;
    let hi = lastSeq;
    let found = 0;
    while (lo <= hi) {
      const mid = Math.floor((lo + hi) / 2);
      const row = this.seqTsFrom(mid);
      if (row === null || row.seq > hi) {
        hi = mid - 1;
        continue;
      }
      if (row.ts >= tsUs) {
        found = row.seq;
        hi = mid - 1;
      } else {
        lo = row.seq + 1;
      }
    }
    return found;
  }
}
