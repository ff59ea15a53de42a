/**
 * The store-and-forward queue of leafnode remotes, in the one SQLite database (component `leaf`
 * in schema_version). While a remote's uplink is down, local publishes on its buffered subjects
 * are appended here; once it is back they are read in id order, replayed, and removed.
 *
 *   leaf_buffer     queued messages of every remote
 *     id         INTEGER PRIMARY KEY AUTOINCREMENT  never reused, even after the table emptied:
 *                the hub de-duplicates replays on a Nats-Msg-Id built from it
 *     remote     TEXT      which remote's queue
 *     subject    TEXT
 *     reply      TEXT      '' when none
 *     hdr_len    INTEGER   header block length, -1 when none
 *     data       BLOB      header block followed by payload
 *     ts         INTEGER   publish time, ms since the epoch
 *     size       INTEGER   subject + reply + data bytes, what max_bytes counts (so the counters
 *                          come back with one aggregate query after a restart)
 *     index leaf_buffer_remote (remote, id)
 *   leaf_meta       key/value facts of this database's leaf queues
 *     store_id   random hex id of this database, the first part of every Nats-Msg-Id
 *
 * Writes go through the group commit: what one event-loop turn appends and removes is written by
 * one inNextCommit call (one transaction). Reads are synchronous on the shared connection and see
 * committed rows only.
 */
import { randomBytes } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';
import { applyMigrations, type Migration } from '../store/database.js';
import type { StoreHost } from '../store/host.js';
import type { BufferedMessage, BufferStats, LeafBufferOptions } from './types.js';

export const LEAF_BUFFER_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'store-and-forward queue of the leafnode remotes, and the random id of this database',
    sql: `CREATE TABLE IF NOT EXISTS leaf_buffer(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        remote TEXT NOT NULL,
        subject TEXT NOT NULL,
        reply TEXT NOT NULL,
        hdr_len INTEGER NOT NULL,
        data BLOB NOT NULL,
        ts INTEGER NOT NULL,
        size INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS leaf_buffer_remote ON leaf_buffer(remote, id);
      CREATE TABLE IF NOT EXISTS leaf_meta(
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
      INSERT OR IGNORE INTO leaf_meta(key, value) VALUES('store_id', lower(hex(randomblob(8))))`,
  },
];

export function migrateLeafBuffer(db: Database): number {
  return applyMigrations(db, 'leaf', LEAF_BUFFER_MIGRATIONS);
}

/** Rows of the oldest end of the queue read at once when the front must be known (drops, oldestTs). */
const FRONT_CHUNK = 256;

/** An appended message until its transaction ended. */
class Pending {
  id = 0;
  /** Set when dropped before it was written (overflow, age, oversized): done gets it. */
  err: Error | null = null;
  constructor(
    readonly subject: string,
    readonly reply: string,
    readonly hdrLen: number,
    public data: Buffer,
    readonly ts: number,
    readonly size: number,
    readonly done: ((err: Error | null) => void) | undefined,
  ) {}
}

const EMPTY = Buffer.alloc(0);

type Row = [id: number, subject: string, reply: string, hdrLen: number, data: Buffer, ts: number];

export class LeafBufferStore {
  readonly storeId: string;

  private readonly maxBytes: number;
  private readonly maxMsgs: number;
  private readonly maxAgeMs: number;

  // Counters, exact at every moment: committed rows minus pending removals, plus pending appends.
  private msgs = 0;
  private bytes = 0;
  private droppedMsgs = 0;
  private droppedBytes = 0;
  private appended = 0;
  /** Rows in the database still counted (not removed or dropped since). */
  private committedLive = 0;
  private lastCommitted = 0;

  // The next batch.
  private queue: Pending[] = [];
  /** First entry of `queue` that may still be live (older ones were dropped). */
  private queueHead = 0;
  private removeIds: number[] = [];
  /** Ids removed but not yet deleted by a commit (a second remove of one is ignored). */
  private readonly removing = new Set<number>();
  /**
   * Every committed row of this remote with id <= dropThrough is dropped (overflow, age): counted
   * at once, deleted by the next commit with one indexed range delete.
   */
  private dropThrough = 0;
  /** dropThrough as the database has it. */
  private droppedInDb = 0;
  private enlisted = false;

  // The batch inside the transaction.
  private inflight: Pending[] | null = null;
  private inflightRemoves: number[] = [];
  private inflightDrop = 0;
  /** The inserts failed (their savepoint rolled back) while the deletes stayed in the transaction. */
  private insertErr: Error | null = null;

  // The oldest committed rows (id, size, ts), read FRONT_CHUNK at a time; size -1 = removed since.
  private frontIds: number[] = [];
  private frontSizes: number[] = [];
  private frontTs: number[] = [];
  private frontHead = 0;

  private readonly s: {
    insert: Statement;
    dropThrough: Statement;
    deleteOne: Statement;
    deleteRange: Statement;
    readAfter: Statement;
    front: Statement;
    sizeOf: Statement;
    savepoint: Statement;
    release: Statement;
    rollbackTo: Statement;
  };

  private readonly overflowError: Error;
  private readonly expiredError: Error;

  constructor(
    private readonly host: StoreHost,
    private readonly remote: string,
    opts: LeafBufferOptions,
    private readonly onError: (err: Error) => void,
  ) {
    const db = host.db;
    migrateLeafBuffer(db);
    this.maxBytes = opts.maxBytes > 0 ? opts.maxBytes : 0;
    this.maxMsgs = opts.maxMsgs > 0 ? opts.maxMsgs : 0;
    this.maxAgeMs = opts.maxAgeMs > 0 ? opts.maxAgeMs : 0;
    this.storeId = loadStoreId(db);
    this.overflowError = new Error(`leaf buffer of remote ${remote}: dropped, the queue was full (max_bytes/max_msgs)`);
    this.expiredError = new Error(`leaf buffer of remote ${remote}: dropped, older than max_age`);
    this.s = {
      insert: db.prepare('INSERT INTO leaf_buffer(remote, subject, reply, hdr_len, data, ts, size) VALUES(?, ?, ?, ?, ?, ?, ?)'),
      dropThrough: db.prepare('DELETE FROM leaf_buffer WHERE remote = ? AND id > ? AND id <= ?'),
      deleteOne: db.prepare('DELETE FROM leaf_buffer WHERE id = ?'),
      // Only for runs of consecutive ids each checked to be this remote's.
      deleteRange: db.prepare('DELETE FROM leaf_buffer WHERE id >= ? AND id <= ?'),
      readAfter: db
        .prepare('SELECT id, subject, reply, hdr_len, data, ts FROM leaf_buffer WHERE remote = ? AND id > ? ORDER BY id LIMIT ?')
        .raw(),
      front: db.prepare('SELECT id, size, ts FROM leaf_buffer WHERE remote = ? AND id > ? ORDER BY id LIMIT ?').raw(),
      sizeOf: db.prepare('SELECT size FROM leaf_buffer WHERE id = ? AND remote = ?').pluck(),
      savepoint: db.prepare('SAVEPOINT leaf_buffer_insert'),
      release: db.prepare('RELEASE leaf_buffer_insert'),
      rollbackTo: db.prepare('ROLLBACK TO leaf_buffer_insert'),
    };
    const agg = db
      .prepare('SELECT COUNT(*) AS n, TOTAL(size) AS bytes, MAX(id) AS last FROM leaf_buffer WHERE remote = ?')
      .get(remote) as { n: number; bytes: number; last: number | null };
    this.msgs = agg.n;
    this.committedLive = agg.n;
    this.bytes = agg.bytes;
    this.lastCommitted = agg.last ?? 0;
  }

  append(subject: string, reply: string, hdrLen: number, data: Uint8Array, ts: number, done?: (err: Error | null) => void): void {
    this.appended++;
    const size = Buffer.byteLength(subject) + Buffer.byteLength(reply) + data.length;
    if (this.maxBytes > 0 && size > this.maxBytes) {
      this.droppedMsgs++;
      this.droppedBytes += size;
      const p = new Pending(subject, reply, hdrLen, EMPTY, ts, size, done);
      p.err = new Error(`leaf buffer of remote ${this.remote}: message of ${size} bytes is larger than max_bytes (${this.maxBytes}), dropped`);
      // Told in order with the others, after the next commit, never from inside append.
      this.queue.push(p);
      this.enlist();
      return;
    }
    while (
      ((this.maxMsgs > 0 && this.msgs + 1 > this.maxMsgs) || (this.maxBytes > 0 && this.bytes + size > this.maxBytes)) &&
      this.dropOldest(this.overflowError)
    );
    const copy = Buffer.allocUnsafe(data.length);
    copy.set(data);
    this.queue.push(new Pending(subject, reply, hdrLen, copy, ts, size, done));
    this.msgs++;
    this.bytes += size;
    this.enlist();
  }

  readAfter(afterId: number, limit: number): BufferedMessage[] {
    const out: BufferedMessage[] = [];
    // Dropped and removed rows stay in the table until the next commit; they are not read.
    let after = Math.max(afterId, this.dropThrough);
    while (out.length < limit) {
      const want = limit - out.length;
      const rows = this.s.readAfter.all(this.remote, after, want) as Row[];
      for (const r of rows) {
        if (this.removing.has(r[0])) continue;
        out.push({ id: r[0], subject: r[1], reply: r[2], hdrLen: r[3], data: r[4], ts: r[5] });
      }
      if (rows.length < want) break;
      after = rows[rows.length - 1]![0];
    }
    return out;
  }

  remove(id: number): void {
    if (id <= this.dropThrough || this.removing.has(id)) return;
    let size = -1;
    const i = this.frontIndexOf(id);
    if (i >= 0) {
      size = this.frontSizes[i]!;
      this.frontSizes[i] = -1;
    } else if (i === -1) {
      const v = this.s.sizeOf.get(id, this.remote) as number | undefined;
      if (v !== undefined) size = v;
    }
    if (size < 0) return;
    this.removing.add(id);
    this.removeIds.push(id);
    this.msgs--;
    this.bytes -= size;
    this.committedLive--;
    this.enlist();
  }

  expire(now: number): number {
    let n = 0;
    if (this.maxAgeMs > 0) {
      const cutoff = now - this.maxAgeMs;
      // Oldest first, up to the first young one (the order is arrival order, not ts order).
      for (;;) {
        const front = this.peekFront();
        if (front >= 0) {
          if (this.frontTs[front]! >= cutoff) break;
        } else {
          const q = this.peekQueue();
          if (q === null || q.ts >= cutoff) break;
        }
        this.dropOldest(this.expiredError);
        n++;
      }
    }
    // Deletes a failed commit left behind are retried from here too (no retry loop of their own).
    if (n > 0 || this.removeIds.length > 0 || this.dropThrough > this.droppedInDb) this.enlist();
    return n;
  }

  get empty(): boolean {
    return this.msgs === 0;
  }

  get lastCommittedId(): number {
    return this.lastCommitted;
  }

  stats(): BufferStats {
    let oldestTs = 0;
    const f = this.peekFront();
    if (f >= 0) oldestTs = this.frontTs[f]!;
    else {
      const q = this.peekQueue();
      if (q !== null) oldestTs = q.ts;
    }
    return {
      msgs: this.msgs,
      bytes: this.bytes,
      oldestTs,
      droppedMsgs: this.droppedMsgs,
      droppedBytes: this.droppedBytes,
      appended: this.appended,
    };
  }

  /** Drops the oldest queued message, committed or not; false when there is none. */
  private dropOldest(err: Error): boolean {
    const f = this.peekFront();
    if (f >= 0) {
      const size = this.frontSizes[f]!;
      this.dropThrough = this.frontIds[f]!;
      this.frontHead = f + 1;
      this.committedLive--;
      this.count(size);
      return true;
    }
    const q = this.peekQueue();
    if (q === null) return false;
    q.err = err;
    q.data = EMPTY;
    this.queueHead++;
    this.count(q.size);
    return true;
  }

  private count(size: number): void {
    this.msgs--;
    this.bytes -= size;
    this.droppedMsgs++;
    this.droppedBytes += size;
  }

  /** Index in the front arrays of the oldest live committed row, -1 when none. */
  private peekFront(): number {
    if (this.committedLive <= 0) return -1;
    for (;;) {
      while (this.frontHead < this.frontIds.length) {
        if (this.frontSizes[this.frontHead]! >= 0) return this.frontHead;
        this.frontHead++;
      }
      const last = this.frontIds.length > 0 ? this.frontIds[this.frontIds.length - 1]! : 0;
      const rows = this.s.front.all(this.remote, Math.max(last, this.dropThrough), FRONT_CHUNK) as [number, number, number][];
      this.frontIds = [];
      this.frontSizes = [];
      this.frontTs = [];
      this.frontHead = 0;
      if (rows.length === 0) {
        // Cannot happen while the counters are right; do not spin if they are not.
        this.onError(new Error(`leaf buffer of remote ${this.remote}: ${this.committedLive} rows counted but none stored`));
        this.msgs -= this.committedLive;
        this.committedLive = 0;
        return -1;
      }
      for (const [id, size, ts] of rows) {
        this.frontIds.push(id);
        this.frontSizes.push(this.removing.has(id) ? -1 : size);
        this.frontTs.push(ts);
      }
    }
  }

  /**
   * Where `id` is in the front arrays: its index, -2 when it lies within them but is not a live
   * row of this remote, -1 when they do not cover it.
   */
  private frontIndexOf(id: number): number {
    const ids = this.frontIds;
    let lo = this.frontHead;
    let hi = ids.length - 1;
    if (lo > hi || id < ids[lo]! || id > ids[hi]!) return -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = ids[mid]!;
      if (v === id) return mid;
      if (v < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return -2;
  }

  /** The oldest live appended message not yet written, null when none. */
  private peekQueue(): Pending | null {
    const q = this.queue;
    while (this.queueHead < q.length) {
      const p = q[this.queueHead]!;
      if (p.err === null) return p;
      this.queueHead++;
    }
    return null;
  }

  private enlist(): void {
    if (this.enlisted) return;
    this.enlisted = true;
    this.host.inNextCommit(this.write, this.committed);
  }

  /** Inside the transaction: the deletes, then the inserts under a savepoint of their own. */
  private readonly write = (): void => {
    const batch = this.queue;
    const removes = this.removeIds;
    this.queue = [];
    this.queueHead = 0;
    this.removeIds = [];
    this.enlisted = false;
    this.inflight = batch;
    this.inflightRemoves = removes;
    this.inflightDrop = this.dropThrough;
    this.insertErr = null;
    const s = this.s;
    if (this.inflightDrop > this.droppedInDb) s.dropThrough.run(this.remote, this.droppedInDb, this.inflightDrop);
    if (removes.length > 0) {
      removes.sort((a, b) => a - b);
      let start = removes[0]!;
      let end = start;
      for (let i = 1; i <= removes.length; i++) {
        const id = i < removes.length ? removes[i]! : -1;
        if (id === end + 1) {
          end = id;
          continue;
        }
        if (start === end) s.deleteOne.run(start);
        else s.deleteRange.run(start, end);
        start = end = id;
      }
    }
    // A full disk fails the inserts, not the deletes that free space.
    s.savepoint.run();
    try {
      for (const p of batch) {
        if (p.err !== null) continue;
        p.id = Number(s.insert.run(this.remote, p.subject, p.reply, p.hdrLen, p.data, p.ts, p.size).lastInsertRowid);
      }
      s.release.run();
    } catch (err) {
      if (!this.host.db.inTransaction) throw err;
      s.rollbackTo.run();
      s.release.run();
      this.insertErr = err instanceof Error ? err : new Error(String(err));
    }
  };

  /** After COMMIT (err null) or after the transaction failed. */
  private readonly committed = (err: Error | null): void => {
    let batch = this.inflight;
    let removes = this.inflightRemoves;
    let drop = this.inflightDrop;
    if (batch === null) {
      // Never written (the store closed): what was queued failed.
      batch = this.queue;
      removes = this.removeIds;
      drop = this.droppedInDb;
      this.queue = [];
      this.queueHead = 0;
      this.removeIds = [];
      this.enlisted = false;
      err ??= new Error('leaf buffer: not written');
    }
    this.inflight = null;
    this.inflightRemoves = [];
    const insertErr = err ?? this.insertErr;
    this.insertErr = null;
    if (err === null) {
      for (const id of removes) this.removing.delete(id);
      if (drop > this.droppedInDb) this.droppedInDb = drop;
    } else if (removes.length > 0) {
      // Still wanted: they go with the next commit (the counters already left them out).
      this.removeIds.push(...removes);
    }
    for (const p of batch) {
      if (p.err !== null) continue;
      if (insertErr === null) {
        this.committedLive++;
        if (p.id > this.lastCommitted) this.lastCommitted = p.id;
      } else {
        this.msgs--;
        this.bytes -= p.size;
      }
      p.data = EMPTY;
    }
    if (insertErr !== null) this.onError(insertErr);
    for (const p of batch) p.done?.(p.err ?? insertErr);
  };
}

/** The random id of this database's queues, created by the migration (and here if it went missing). */
function loadStoreId(db: Database): string {
  const get = db.prepare("SELECT value FROM leaf_meta WHERE key = 'store_id'").pluck();
  let id = get.get() as string | undefined;
  if (id === undefined) {
    db.prepare("INSERT OR IGNORE INTO leaf_meta(key, value) VALUES('store_id', ?)").run(randomBytes(8).toString('hex'));
    id = get.get() as string;
  }
  return id;
}
