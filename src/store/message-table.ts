/**
 * One stream's messages in SQLite: a table per stream, keyed by the stream sequence, a subject
 * index that is written in bulk rather than per commit, and every statement prepared once.
 *
 * Schema of stream table `js_msgs_<id>` (created with the stream, dropped with it):
 *   seq     INTEGER PRIMARY KEY  the stream sequence (the rowid itself: no duplicate key)
 *   ts      INTEGER              store time, microseconds since the epoch, non-decreasing in seq
 *   subject TEXT
 *   hdr_len INTEGER              length of the NATS header block at the start of raw, 0 = none
 *   msg_id  TEXT                 Nats-Msg-Id or NULL: the duplicate window is rebuilt from it
 *   raw     BLOB                 header block + payload, last so that scans of the other
 *                                columns do not read a large message's overflow pages
 * Subject index `js_msgs_<id>_sx (subject, seq)` WITHOUT ROWID: last/next by subject,
 * per-subject limits, rollups and filtered purges. It is not an index on the table because a
 * per-row index makes every commit rewrite one index leaf per distinct subject it carries
 * (16 subjects: 16 x 4 KiB per commit, ~2x the WAL bytes of the messages themselves,
 * docs/benchmarks.md). Instead the newest rows (at most INDEX_LAG) are indexed in memory
 * (the "tail") and moved into _sx in one sorted bulk insert when the tail is full, so each
 * subject's index leaf is rewritten once per INDEX_LAG messages, not once per commit.
 *
 * Invariant (what makes the tail recoverable after a crash without storing a high-water mark):
 * every stored row with seq <= H has its _sx entry and no row above H has one, where H is the
 * newest row that has an entry. The bulk insert moves a prefix of the tail in one savepoint,
 * deletes remove the entry in the same transaction as the row, so H is found again from the
 * top of the table (reloadTail) and the tail is the rows above it.
 *
 * Time has no index: ts follows seq, so a time lookup is a binary search over seq by primary
 * key (sqlite-store.md §6) and costs no WAL bytes per insert.
 *
 * Tables of schema version 1 carried `js_msgs_<id>_subj`, a plain index on subject:
 * MessageTable.upgrade turns them into this layout (jetstream.ts migration 2).
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
/** The same columns read through the subject index (`x` = _sx, `m` = the table). */
const MSG_COLUMNS_M = 'm.seq AS seq, m.subject AS subject, m.hdr_len AS hdrLen, m.raw AS raw, m.ts AS tsUs';
const META_COLUMNS_M = 'm.seq AS seq, m.subject AS subject, octet_length(m.subject) AS slen, m.hdr_len AS hdr_len, length(m.raw) AS rlen';

/**
 * Rows indexed in memory before they go into _sx in one bulk insert. Each bulk insert rewrites
 * one _sx leaf per distinct subject plus the new leaves, so per message it costs about
 * subjects x 4 KiB / INDEX_LAG of WAL; the tail costs ~12 bytes of memory per row, and a
 * subject lookup scans it in JS (a few µs at this size).
 */
export const INDEX_LAG = 4096;

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
    has: Statement;
    from: Statement;
    seqSubjectFrom: Statement;
    metaFrom: Statement;
    metaBelow: Statement;
    metaOne: Statement;
    deleteSeq: Statement;
    deleteRange: Statement;
    deleteAll: Statement;
    countFrom: Statement;
    seqTsFrom: Statement;
    stats: Statement;
    msgIdsFrom: Statement;
    allSeqs: Statement;
    tsBefore: Statement;
    // the subject index
    sxInsertMany: Statement;
    sxDelete: Statement;
    sxDeleteAll: Statement;
    sxSubjectFrom: Statement;
    sxLastOfSubject: Statement;
    sxMetaOfSubject: Statement;
    sxMetaOfSubjectBelow: Statement;
    sxCountSubjectFrom: Statement;
    sxSubjectCounts: Statement;
    sxNewestIndexed: Statement;
    tailRows: Statement;
  };
  // ---- the tail: rows above the newest indexed one, in seq order ------------------------
  /** Sequences of the tail rows, ascending (a deleted row keeps its slot). */
  private tailSeqs: number[] = [];
  /** Subject of each tail row as an index into tailSubjects; -1 = deleted since. */
  private tailIds: number[] = [];
  private tailSubjects: string[] = [];
  private tailIdOf = new Map<string, number>();
  private tailLive = 0;
  /** writeTail inside a savepoint of its own. */
  private readonly flushTail: () => void;

  /** Creates the table and its subject index (inside the caller's transaction). */
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
    CREATE TABLE IF NOT EXISTS ${schema}.${t}_sx(
      subject TEXT NOT NULL,
      seq INTEGER NOT NULL,
      PRIMARY KEY(subject, seq)
    ) WITHOUT ROWID;`);
  }

  /**
   * Turns a table of schema version 1 (a plain index on subject) into this layout: the index's
   * entries copied into _sx in index order, then the index dropped. Idempotent; the caller runs
   * it in a transaction (a crash half-way leaves version 1 intact).
   */
  static upgrade(db: Db, schema: string, id: number): void {
    const t = messageTableName(id);
    const exists = (name: string): boolean =>
      db.prepare(`SELECT COUNT(*) FROM ${schema}.sqlite_master WHERE name = ?`).pluck().get(name) === 1;
    if (!exists(t)) return;
    MessageTable.create(db, schema, id);
    if (!exists(`${t}_subj`)) return;
    // Every row gets its entry: the tail starts empty (H = the newest row).
    db.exec(`DELETE FROM ${schema}.${t}_sx;
      INSERT INTO ${schema}.${t}_sx(subject, seq) SELECT subject, seq FROM ${schema}.${t} ORDER BY subject, seq;
      DROP INDEX ${schema}.${t}_subj;`);
  }

  static drop(db: Db, schema: string, id: number): void {
    const t = messageTableName(id);
    db.exec(`DROP TABLE IF EXISTS ${schema}.${t}; DROP TABLE IF EXISTS ${schema}.${t}_sx;`);
  }

  constructor(
    db: Db,
    readonly schema: string,
    readonly id: number,
  ) {
    const t = `${schema}.${messageTableName(id)}`;
    const sx = `${t}_sx`;
    this.table = t;
    const p = (sql: string): Statement => db.prepare(sql);
    // CROSS JOIN keeps _sx the outer loop: one range of the index, a primary-key lookup per row.
    const viaSx = `${sx} AS x CROSS JOIN ${t} AS m ON m.seq = x.seq`;
    this.s = {
      insert: p(`INSERT INTO ${t}(seq, ts, subject, hdr_len, msg_id, raw) VALUES (?, ?, ?, ?, ?, ?)`),
      get: p(`SELECT ${MSG_COLUMNS} FROM ${t} WHERE seq = ?`),
      first: p(`SELECT seq, ts FROM ${t} ORDER BY seq LIMIT 1`),
      last: p(`SELECT seq, ts, msg_id AS msgId FROM ${t} ORDER BY seq DESC LIMIT 1`),
      has: p(`SELECT 1 FROM ${t} WHERE seq = ?`).pluck(),
      from: p(`SELECT ${MSG_COLUMNS} FROM ${t} WHERE seq >= ? ORDER BY seq LIMIT ?`),
      seqSubjectFrom: p(`SELECT seq, subject FROM ${t} WHERE seq >= ? ORDER BY seq LIMIT ?`),
      metaFrom: p(`SELECT ${META_COLUMNS} FROM ${t} WHERE seq >= ? ORDER BY seq LIMIT ?`),
      metaBelow: p(`SELECT ${META_COLUMNS} FROM ${t} WHERE seq < ? ORDER BY seq LIMIT ?`),
      metaOne: p(`SELECT ${META_COLUMNS} FROM ${t} WHERE seq = ?`),
      deleteSeq: p(`DELETE FROM ${t} WHERE seq = ?`),
      deleteRange: p(`DELETE FROM ${t} WHERE seq >= ? AND seq <= ?`),
      deleteAll: p(`DELETE FROM ${t}`),
      countFrom: p(`SELECT COUNT(*) FROM ${t} WHERE seq >= ?`).pluck(),
      seqTsFrom: p(`SELECT seq, ts FROM ${t} WHERE seq >= ? ORDER BY seq LIMIT 1`),
      stats: p(
        `SELECT COUNT(*) AS n, COALESCE(SUM(octet_length(subject) + length(raw)), 0) AS b,
           COALESCE(SUM(hdr_len > 0), 0) AS h FROM ${t}`,
      ),
      msgIdsFrom: p(`SELECT seq, ts, msg_id AS msgId FROM ${t} WHERE seq >= ? AND msg_id IS NOT NULL ORDER BY seq`),
      allSeqs: p(`SELECT seq FROM ${t} ORDER BY seq`).pluck(),
      tsBefore: p(`SELECT ${META_COLUMNS} FROM ${t} WHERE seq >= ? AND ts < ? ORDER BY seq LIMIT ?`),
      // One call per subject for the whole tail: a statement per row would cost more CPU than
      // the per-row index it replaces.
      sxInsertMany: p(`INSERT INTO ${sx}(subject, seq) SELECT ?, value FROM json_each(?)`),
      sxDelete: p(`DELETE FROM ${sx} WHERE subject = ? AND seq = ?`),
      sxDeleteAll: p(`DELETE FROM ${sx}`),
      sxSubjectFrom: p(`SELECT ${MSG_COLUMNS_M} FROM ${viaSx} WHERE x.subject = ? AND x.seq >= ? ORDER BY x.seq LIMIT ?`),
      sxLastOfSubject: p(`SELECT MAX(seq) FROM ${sx} WHERE subject = ?`).pluck(),
      sxMetaOfSubject: p(`SELECT ${META_COLUMNS_M} FROM ${viaSx} WHERE x.subject = ? ORDER BY x.seq LIMIT ?`),
      sxMetaOfSubjectBelow: p(`SELECT ${META_COLUMNS_M} FROM ${viaSx} WHERE x.subject = ? AND x.seq < ? ORDER BY x.seq LIMIT ?`),
      sxCountSubjectFrom: p(`SELECT COUNT(*) FROM ${sx} WHERE subject = ? AND seq >= ?`).pluck(),
      sxSubjectCounts: p(`SELECT subject, COUNT(*) AS n, MAX(seq) AS last FROM ${sx} GROUP BY subject`),
      // H: walk down from the newest row to the first one with an entry (at most the tail).
      sxNewestIndexed: p(
        `SELECT m.seq FROM ${t} AS m WHERE EXISTS (SELECT 1 FROM ${sx} AS x WHERE x.subject = m.subject AND x.seq = m.seq)
         ORDER BY m.seq DESC LIMIT 1`,
      ).pluck(),
      tailRows: p(`SELECT seq, subject FROM ${t} WHERE seq > ? ORDER BY seq`),
    };
    this.flushTail = db.transaction(() => this.writeTail());
    this.reloadTail();
  }

  /**
   * Rebuilds the in-memory tail from the table: at open, and after a transaction that touched
   * this table failed (the tail must again describe what is committed).
   */
  reloadTail(): void {
    this.clearTail();
    const h = (this.s.sxNewestIndexed.get() as number | null | undefined) ?? 0;
    for (const r of this.s.tailRows.all(h) as { seq: number; subject: string }[]) this.pushTail(r.seq, r.subject);
  }

  /** Rows in the in-memory part of the subject index (for tests and the store's own checks). */
  tailSize(): number {
    return this.tailLive;
  }

  insert(seq: number, tsUs: number, subject: string, hdrLen: number, msgId: string | null, raw: Buffer): void {
    this.s.insert.run(seq, tsUs, subject, hdrLen, msgId, raw);
    this.pushTail(seq, subject);
    if (this.tailSeqs.length >= INDEX_LAG) this.flushTail();
  }

  private pushTail(seq: number, subject: string): void {
    let id = this.tailIdOf.get(subject);
    if (id === undefined) {
      id = this.tailSubjects.length;
      this.tailSubjects.push(subject);
      this.tailIdOf.set(subject, id);
    }
    this.tailSeqs.push(seq);
    this.tailIds.push(id);
    this.tailLive++;
  }

  private clearTail(): void {
    this.tailSeqs = [];
    this.tailIds = [];
    this.tailSubjects = [];
    this.tailIdOf.clear();
    this.tailLive = 0;
  }

  /**
   * Moves the tail into _sx, grouped by subject so each subject's leaf is visited once. Runs in
   * a savepoint (flushTail): should it fail, the caller's transaction fails and the tail is
   * rebuilt from what is committed (reloadTail); the in-memory tail is only cleared on success.
   */
  private writeTail(): void {
    const subjects = this.tailSubjects;
    const bySubject: number[][] = subjects.map(() => []);
    for (let i = 0; i < this.tailSeqs.length; i++) {
      const id = this.tailIds[i]!;
      if (id >= 0) bySubject[id]!.push(this.tailSeqs[i]!);
    }
    const order = subjects.map((_, i) => i).sort((a, b) => (subjects[a]! < subjects[b]! ? -1 : subjects[a]! > subjects[b]! ? 1 : 0));
    for (const id of order) {
      const seqs = bySubject[id]!;
      if (seqs.length > 0) this.s.sxInsertMany.run(subjects[id]!, JSON.stringify(seqs));
    }
    this.clearTail();
  }

  /** First tail position whose seq is >= `seq`. */
  private tailLowerBound(seq: number): number {
    const seqs = this.tailSeqs;
    let lo = 0;
    let hi = seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqs[mid]! < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The tail's sequences on `subject` from `from` (inclusive) up to `below` (exclusive), in order. */
  private tailOf(subject: string, from: number, below: number, limit: number): number[] {
    const out: number[] = [];
    const id = this.tailIdOf.get(subject);
    if (id === undefined || limit <= 0) return out;
    const seqs = this.tailSeqs;
    const ids = this.tailIds;
    for (let i = from > 0 ? this.tailLowerBound(from) : 0; i < seqs.length && out.length < limit; i++) {
      if (ids[i] !== id) continue;
      const seq = seqs[i]!;
      if (seq >= below) break;
      out.push(seq);
    }
    return out;
  }

  /** Forget `seq` in the tail; false when it is not there (then it is in _sx, if stored). */
  private dropFromTail(seq: number): boolean {
    const i = this.tailLowerBound(seq);
    if (i >= this.tailSeqs.length || this.tailSeqs[i] !== seq || this.tailIds[i]! < 0) return false;
    this.tailIds[i] = -1;
    this.tailLive--;
    return true;
  }

  get(seq: number): StoredMsg | null {
    return (this.s.get.get(seq) as StoredMsg | undefined) ?? null;
  }

  first(): SeqTs | null {
    return (this.s.first.get() as SeqTs | undefined) ?? null;
  }

  last(): { seq: number; ts: number; msgId: string | null } | null {
    return (this.s.last.get() as { seq: number; ts: number; msgId: string | null } | undefined) ?? null;
  }

  /** Whether the row `seq` is stored. */
  has(seq: number): boolean {
    return this.s.has.get(seq) !== undefined;
  }

  /** Up to `limit` messages with seq >= from, in order. */
  from(from: number, limit: number): StoredMsg[] {
    return this.s.from.all(from, limit) as StoredMsg[];
  }

  /** Up to `limit` (seq, subject) pairs with seq >= from: a scan that never reads payloads. */
  seqSubjectFrom(from: number, limit: number): { seq: number; subject: string }[] {
    return this.s.seqSubjectFrom.all(from, limit) as { seq: number; subject: string }[];
  }

  /** Up to `limit` messages on exactly `subject` with seq >= from (index range, then the tail). */
  subjectFrom(subject: string, from: number, limit: number): StoredMsg[] {
    const out = this.s.sxSubjectFrom.all(subject, from, limit) as StoredMsg[];
    if (out.length < limit) {
      for (const seq of this.tailOf(subject, from, Infinity, limit - out.length)) {
        const m = this.get(seq);
        if (m !== null) out.push(m);
      }
    }
    return out;
  }

  lastOfSubject(subject: string): number {
    const id = this.tailIdOf.get(subject);
    if (id !== undefined) {
      for (let i = this.tailSeqs.length - 1; i >= 0; i--) {
        if (this.tailIds[i] === id) return this.tailSeqs[i]!;
      }
    }
    return (this.s.sxLastOfSubject.get(subject) as number | null) ?? 0;
  }

  firstOfSubject(subject: string): RowMeta | null {
    const rows = this.metaOfSubject(subject, 1);
    return rows[0] ?? null;
  }

  metaOfSubject(subject: string, limit: number): RowMeta[] {
    return this.withTailMeta(this.s.sxMetaOfSubject.all(subject, limit) as RowMeta[], subject, Infinity, limit);
  }

  metaOfSubjectBelow(subject: string, below: number, limit: number): RowMeta[] {
    return this.withTailMeta(this.s.sxMetaOfSubjectBelow.all(subject, below, limit) as RowMeta[], subject, below, limit);
  }

  private withTailMeta(rows: RowMeta[], subject: string, below: number, limit: number): RowMeta[] {
    if (rows.length >= limit) return rows;
    for (const seq of this.tailOf(subject, 0, below, limit - rows.length)) {
      const m = this.metaOne(seq);
      if (m !== null) rows.push(m);
    }
    return rows;
  }

  metaFrom(from: number, limit: number): RowMeta[] {
    return this.s.metaFrom.all(from, limit) as RowMeta[];
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

  /** Deletes the row `seq` on `subject` and its index entry. */
  deleteSeq(seq: number, subject: string): boolean {
    const gone = this.s.deleteSeq.run(seq).changes > 0;
    if (gone && !this.dropFromTail(seq)) this.s.sxDelete.run(subject, seq);
    return gone;
  }

  /** Deletes `rows`, consecutive in stored order (nothing else lies between the first and last). */
  deleteRows(rows: readonly RowMeta[]): number {
    if (rows.length === 0) return 0;
    for (const m of rows) if (!this.dropFromTail(m.seq)) this.s.sxDelete.run(m.subject, m.seq);
    return this.s.deleteRange.run(rows[0]!.seq, rows[rows.length - 1]!.seq).changes;
  }

  deleteAll(): number {
    this.s.sxDeleteAll.run();
    this.clearTail();
    return this.s.deleteAll.run().changes;
  }

  countFrom(from: number): number {
    return this.s.countFrom.get(from) as number;
  }

  countSubjectFrom(subject: string, from: number): number {
    return (this.s.sxCountSubjectFrom.get(subject, from) as number) + this.tailOf(subject, from, Infinity, Infinity).length;
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
    const counts = this.s.sxSubjectCounts.all() as SubjectCount[];
    if (this.tailLive === 0) return counts;
    const bySubject = new Map<string, SubjectCount>();
    for (const c of counts) bySubject.set(c.subject, c);
    for (let i = 0; i < this.tailSeqs.length; i++) {
      const id = this.tailIds[i]!;
      if (id < 0) continue;
      const seq = this.tailSeqs[i]!;
      const subject = this.tailSubjects[id]!;
      const c = bySubject.get(subject);
      if (c === undefined) {
        const n = { subject, n: 1, last: seq };
        bySubject.set(subject, n);
        counts.push(n);
      } else {
        c.n++;
        c.last = seq;
      }
    }
    return counts;
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
