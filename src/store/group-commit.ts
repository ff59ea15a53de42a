/**
 * Group commit: every write of a database goes into one transaction per event-loop turn
 * (sqlite-store.md §3.2), and what waits on a write (a PubAck, an ack's reply) is answered only
 * after that transaction's COMMIT returned, and, where the profile syncs before acking, after
 * it reached the media.
 *
 * Sync policy (DESIGN.md "Durability", sqlite-store.md §2.4):
 *  - 'always': synchronous=FULL, so COMMIT includes the WAL fsync; under concurrent load a short
 *    linger lets one fsync cover the publishes of several turns.
 *  - N ms: synchronous=NORMAL (a process crash loses nothing committed) and every N ms, when
 *    something was written, a PASSIVE checkpoint, which syncs the WAL first: an OS crash or
 *    power cut loses at most the last N ms. With a linger (SD-card profiles), commits are at
 *    least lingerMs apart: every commit rewrites whole pages (the table's last leaf at least),
 *    so on a card a commit per publish writes ~4 KiB per message; spacing them lets one commit
 *    carry what arrived meanwhile. A publish after a quiet spell commits at once, a full batch
 *    (maxBatch writes) does not wait, so the wait is at most lingerMs and only under load.
 * Checkpoints are manual (wal_autocheckpoint = 0): run after a batch once the WAL has grown
 * towards its cap, so the multi-ms copy never sits inside a commit that acks wait on.
 */
import type { Database as Db, Statement } from 'better-sqlite3';
import { PAGE_SIZE } from './database.js';

/** Something with writes pending (a stream's publishes, a removal queue). */
export interface CommitParticipant {
  /**
   * Write pending work inside the open transaction: at most `budget` rows; returns the rows
   * written. Work left over must be re-enlisted (it goes into the next transaction).
   */
  commitWrite(budget: number): number;
  /**
   * The transaction ended: `err` null = committed (and durable per the sync policy), otherwise
   * nothing commitWrite wrote in it is stored and in-memory state must be restored.
   */
  commitDone(err: Error | null): void;
}

export interface GroupCommitOptions {
  syncInterval: 'always' | number;
  /** WAL size to stay under: a checkpoint runs after a batch once the estimate passes ~3/4 of it. */
  walMaxBytes: number;
  /** Rows per transaction; a longer queue continues in the next turn so the loop keeps breathing. */
  maxBatch?: number;
  /**
   * 'always': wait this long for more writes when the previous batch was not alone (one fsync
   * covers them). N ms: the least time between two commits (0 = commit every turn).
   */
  lingerMs?: number;
  log?: (level: 'ERR' | 'WRN' | 'DBG', msg: string) => void;
}

interface GenericWrite {
  write: (db: Db) => void;
  done: ((err: Error | null) => void) | undefined;
}

export interface GroupCommitStats {
  commits: number;
  rows: number;
  failures: number;
  checkpoints: number;
  /** Rows of the last batch. */
  lastBatch: number;
}

const DEFAULT_MAX_BATCH = 2000;
const DEFAULT_ALWAYS_LINGER_MS = 2;
/** WAL frame header bytes (sqlite-store.md §4.3). */
const FRAME_OVERHEAD = 24;

export class GroupCommit {
  readonly stats: GroupCommitStats = { commits: 0, rows: 0, failures: 0, checkpoints: 0, lastBatch: 0 };
  private pending = new Set<CommitParticipant>();
  private generic: GenericWrite[] = [];
  private scheduled: NodeJS.Immediate | NodeJS.Timeout | null = null;
  /** `scheduled` is a linger timer (not the next turn). */
  private lingering = false;
  /** Writes enlisted since the last flush began (enlist calls, about one per row). */
  private enlisted = 0;
  /** performance.now() when the last flush ended. */
  private lastCommitAt = -Infinity;
  /** Something enlisted since the last flush began is waited on. */
  private awaited = false;
  private flushing = false;
  private closed = false;
  private readonly maxBatch: number;
  private readonly lingerMs: number;
  private readonly begin: Statement;
  private readonly commit: Statement;
  private readonly rollback: Statement;
  private readonly savepoint: Statement;
  private readonly release: Statement;
  private readonly rollbackTo: Statement;
  /** Estimated WAL bytes written since the last checkpoint. */
  private walEstimate = 0;
  /** Written since the last durable point (interval policy). */
  private dirty = false;
  private syncTimer: NodeJS.Timeout | null = null;
  private bytesThisBatch = 0;
  private readonly flushFn = (): void => {
    this.scheduled = null;
    this.flush();
  };

  constructor(
    private readonly db: Db,
    private readonly opts: GroupCommitOptions,
  ) {
    this.maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
    this.lingerMs = opts.syncInterval === 'always' ? (opts.lingerMs ?? DEFAULT_ALWAYS_LINGER_MS) : Math.max(0, opts.lingerMs ?? 0);
    this.begin = db.prepare('BEGIN IMMEDIATE');
    this.commit = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
    this.savepoint = db.prepare('SAVEPOINT gc_part');
    this.release = db.prepare('RELEASE gc_part');
    this.rollbackTo = db.prepare('ROLLBACK TO gc_part');
    if (typeof opts.syncInterval === 'number') {
      this.syncTimer = setInterval(() => this.durablePoint(), opts.syncInterval);
      this.syncTimer.unref();
    }
  }

  /**
   * `p` has work: it is written in the next transaction (once, however often it enlists).
   * `awaited` = someone waits for this write's commit (a PubAck, a PUBACK); false for writes
   * nobody waits on (a publish without reply), which may always linger.
   */
  enlist(p: CommitParticipant, awaited = true): void {
    if (this.closed) {
      p.commitDone(new Error('store closed'));
      return;
    }
    this.pending.add(p);
    this.enlisted++;
    if (awaited) this.awaited = true;
    this.schedule();
  }

  /** Run `write` inside the next transaction; `done` after it committed (or failed). */
  inNextCommit(write: (db: Db) => void, done?: (err: Error | null) => void): void {
    if (this.closed) {
      done?.(new Error('store closed'));
      return;
    }
    this.generic.push({ write, done });
    this.enlisted++;
    this.awaited = true;
    this.schedule();
  }

  /** Bytes a participant wrote, for the WAL estimate that triggers checkpoints. */
  wrote(bytes: number): void {
    this.bytesThisBatch += bytes;
  }

  /**
   * Commit everything pending now, synchronously (API operations that must see earlier
   * publishes stored first). Does nothing when called from inside a flush.
   */
  flushNow(): void {
    if (this.flushing) return;
    if (this.scheduled !== null) {
      clearImmediate(this.scheduled as NodeJS.Immediate);
      clearTimeout(this.scheduled as NodeJS.Timeout);
      this.scheduled = null;
    }
    // Participants re-enlist while they have more than a batch; each round drains some.
    for (let rounds = 0; rounds < 10_000 && (this.pending.size > 0 || this.generic.length > 0); rounds++) {
      this.flush();
      if (this.scheduled !== null) {
        clearImmediate(this.scheduled as NodeJS.Immediate);
        clearTimeout(this.scheduled as NodeJS.Timeout);
        this.scheduled = null;
      }
    }
  }

  /**
   * Run `fn` now in a transaction of its own, after committing everything pending, so it sees
   * (and acts after) every earlier write: API operations such as purge, delete and update.
   * Returns fn's result; on error the transaction is rolled back and the error thrown.
   */
  transact<T>(fn: () => T, bytesHint = 0): T {
    this.flushNow();
    if (this.flushing) throw new Error('store is busy committing');
    if (this.closed) throw new Error('store closed');
    this.flushing = true;
    let result: T;
    try {
      this.begin.run();
      try {
        result = fn();
        this.commit.run();
      } catch (err) {
        if (this.db.inTransaction) this.rollback.run();
        this.stats.failures++;
        throw err;
      }
    } finally {
      this.flushing = false;
    }
    this.stats.commits++;
    this.dirty = true;
    this.walEstimate += estimateWalBytes(1, bytesHint);
    if (this.pending.size > 0 || this.generic.length > 0) this.schedule();
    return result;
  }

  /** Flushes what is pending, makes it durable, checkpoints and stops the timers. */
  close(): void {
    this.flushNow();
    this.closed = true;
    if (this.syncTimer !== null) clearInterval(this.syncTimer);
    this.syncTimer = null;
    this.checkpoint('TRUNCATE');
  }

  /** Run a checkpoint now (also the durable point of the interval policy). */
  checkpoint(mode: 'PASSIVE' | 'TRUNCATE' = 'PASSIVE'): void {
    if (this.flushing || this.db.inTransaction || !this.db.open) return;
    try {
      this.db.pragma(`wal_checkpoint(${mode})`);
      this.stats.checkpoints++;
      this.walEstimate = 0;
      this.dirty = false;
    } catch (err) {
      this.opts.log?.('ERR', `Store checkpoint failed: ${(err as Error).message}`);
    }
  }

  private durablePoint(): void {
    if (this.dirty && !this.closed) this.checkpoint('PASSIVE');
  }

  private schedule(): void {
    if (this.flushing) return;
    if (this.scheduled !== null) {
      // A full batch is waiting: no reason to linger for more.
      if (this.lingering && this.enlisted >= this.maxBatch) {
        clearTimeout(this.scheduled as NodeJS.Timeout);
        this.lingering = false;
        this.scheduled = setImmediate(this.flushFn);
      }
      return;
    }
    const wait = this.lingerFor();
    this.lingering = wait > 0;
    this.scheduled = wait > 0 ? setTimeout(this.flushFn, wait) : setImmediate(this.flushFn);
  }

  /** How long the next flush waits (ms; 0 = the next turn). */
  private lingerFor(): number {
    if (this.lingerMs <= 0 || this.enlisted >= this.maxBatch || this.stats.lastBatch >= this.maxBatch) return 0;
    // Under 'always', a batch that was not alone suggests more writers: wait a little so one
    // fsync covers them. A lone writer is not delayed.
    if (this.opts.syncInterval === 'always') return this.stats.lastBatch > 1 ? this.lingerMs : 0;
    // Interval policy: commits at least lingerMs apart; after a quiet spell, at once. A lone
    // writer that waits for its commit (the last batch held one write) is not delayed: each of
    // its writes is a commit of its own whatever the wait, so lingering would only cost it time.
    if (this.awaited && this.stats.lastBatch <= 1) return 0;
    const wait = this.lastCommitAt + this.lingerMs - performance.now();
    return wait >= 1 ? Math.ceil(wait) : 0;
  }

  private flush(): void {
    if (this.flushing) return;
    const parts = this.pending;
    const generic = this.generic;
    if (parts.size === 0 && generic.length === 0) return;
    this.pending = new Set();
    this.generic = [];
    this.enlisted = 0;
    this.awaited = false;
    this.lingering = false;
    this.flushing = true;
    this.bytesThisBatch = 0;
    const done: CommitParticipant[] = [];
    const failed = new Map<CommitParticipant, Error>();
    const genericErrors: (Error | null)[] = [];
    let rows = 0;
    let txError: Error | null = null;
    try {
      this.begin.run();
      for (const p of parts) {
        if (rows >= this.maxBatch) {
          // Over budget: this one waits for the next transaction.
          this.pending.add(p);
          continue;
        }
        done.push(p);
        this.savepoint.run();
        try {
          rows += p.commitWrite(this.maxBatch - rows);
          this.release.run();
        } catch (err) {
          if (!this.db.inTransaction) throw err;
          this.rollbackTo.run();
          this.release.run();
          failed.set(p, asError(err));
        }
      }
      for (const g of generic) {
        this.savepoint.run();
        try {
          g.write(this.db);
          this.release.run();
          genericErrors.push(null);
        } catch (err) {
          if (!this.db.inTransaction) throw err;
          this.rollbackTo.run();
          this.release.run();
          genericErrors.push(asError(err));
        }
        rows++;
      }
      this.commit.run();
    } catch (err) {
      txError = asError(err);
      if (this.db.inTransaction) {
        try {
          this.rollback.run();
        } catch {
          // the transaction is gone already
        }
      }
      this.stats.failures++;
      this.opts.log?.('ERR', `Store commit failed (${rows} rows): ${txError.message}`);
    }
    this.flushing = false;
    this.lastCommitAt = performance.now();
    if (txError === null) {
      this.stats.commits++;
      this.stats.rows += rows;
      this.stats.lastBatch = rows;
      this.dirty = true;
      this.walEstimate += estimateWalBytes(rows, this.bytesThisBatch);
    }
    for (const p of done) p.commitDone(txError ?? failed.get(p) ?? null);
    for (let i = 0; i < generic.length; i++) {
      const g = generic[i]!;
      g.done?.(txError ?? genericErrors[i] ?? null);
    }
    if (this.pending.size > 0 || this.generic.length > 0) this.schedule();
    else if (this.walEstimate >= (this.opts.walMaxBytes * 3) / 4) this.checkpoint('PASSIVE');
  }
}

/**
 * WAL bytes a batch appends: the pages it touches, each written whole (§4.3). Appends fill the
 * tail leaf pages of the table (about the data again for the subject index and slack), plus the
 * state row, interior pages and a few index leaves of other subjects.
 */
function estimateWalBytes(rows: number, bytes: number): number {
  const frames = 2 + Math.ceil((bytes * 2) / PAGE_SIZE) + Math.min(rows, 8);
  return frames * (PAGE_SIZE + FRAME_OVERHEAD);
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
