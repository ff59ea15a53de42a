import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Database, Statement } from 'better-sqlite3';
import { openDatabase } from '../../src/store/database.js';
import { GroupCommit, type CommitParticipant } from '../../src/store/group-commit.js';

const dirs: string[] = [];
const dbs: Database[] = [];

function openDb(syncInterval: 'always' | number = 60_000): Database {
  const dir = mkdtempSync(join(tmpdir(), 'store-gc-'));
  dirs.push(dir);
  const db = openDatabase(join(dir, 'gc.db'), { cacheSize: -2000, syncInterval, walMaxBytes: 1 << 20, maxFileBytes: 0 });
  db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  dbs.push(db);
  return db;
}

afterEach(() => {
  vi.useRealTimers();
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** One turn of the event loop: the group commit flushes in a setImmediate. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A queue of rows to insert; records what the group commit told it. */
class Rows implements CommitParticipant {
  queue: string[] = [];
  results: (Error | null)[] = [];
  /** Rows visible to another reader at the moment commitDone ran. */
  seenAtDone: number[] = [];
  failNext = false;
  private readonly insert: Statement;

  constructor(
    private readonly db: Database,
    private readonly gc: GroupCommit,
  ) {
    this.insert = db.prepare('INSERT INTO t(v) VALUES (?)');
  }

  add(...values: string[]): void {
    this.queue.push(...values);
    this.gc.enlist(this);
  }

  commitWrite(budget: number): number {
    const take = this.queue.splice(0, budget);
    for (const v of take) this.insert.run(v);
    if (this.failNext) {
      this.failNext = false;
      throw new Error('participant failed');
    }
    if (this.queue.length > 0) this.gc.enlist(this);
    return take.length;
  }

  commitDone(err: Error | null): void {
    this.results.push(err);
    this.seenAtDone.push(this.db.prepare('SELECT COUNT(*) FROM t').pluck().get() as number);
  }
}

describe('GroupCommit', () => {
  it('puts everything enlisted in one turn into one transaction, then reports after COMMIT', async () => {
    const db = openDb();
    const gc = new GroupCommit(db, { syncInterval: 60_000, walMaxBytes: 1 << 20 });
    const a = new Rows(db, gc);
    const b = new Rows(db, gc);
    for (let i = 0; i < 50; i++) a.add(`a${i}`);
    b.add('b0', 'b1');
    let genericDone: Error | null | undefined;
    gc.inNextCommit((d) => d.prepare("INSERT INTO t(v) VALUES ('g')").run(), (err) => (genericDone = err));
    expect(gc.stats.commits).toBe(0);
    expect(a.results).toEqual([]);
    await nextTurn();
    expect(gc.stats.commits).toBe(1);
    expect(gc.stats.rows).toBe(53);
    expect(a.results).toEqual([null]);
    expect(b.results).toEqual([null]);
    expect(genericDone).toBeNull();
    // The rows were committed before anyone was told.
    expect(a.seenAtDone[0]).toBe(53);
    gc.close();
  });

  it('caps a transaction at maxBatch rows and continues in the next turns', async () => {
    const db = openDb();
    const gc = new GroupCommit(db, { syncInterval: 60_000, walMaxBytes: 1 << 20, maxBatch: 100 });
    const a = new Rows(db, gc);
    for (let i = 0; i < 250; i++) a.queue.push(String(i));
    gc.enlist(a);
    await nextTurn();
    expect(gc.stats.commits).toBe(1);
    expect(a.seenAtDone).toEqual([100]);
    await nextTurn();
    await nextTurn();
    expect(gc.stats.commits).toBe(3);
    expect(a.seenAtDone).toEqual([100, 200, 250]);
    gc.close();
  });

  it('rolls back only the participant that failed; the others commit', async () => {
    const db = openDb();
    const gc = new GroupCommit(db, { syncInterval: 60_000, walMaxBytes: 1 << 20 });
    const good = new Rows(db, gc);
    const bad = new Rows(db, gc);
    good.add('g1', 'g2');
    bad.failNext = true;
    bad.add('x1', 'x2', 'x3');
    await nextTurn();
    expect(good.results).toEqual([null]);
    expect(bad.results[0]?.message).toBe('participant failed');
    expect(db.prepare('SELECT v FROM t ORDER BY id').pluck().all()).toEqual(['g1', 'g2']);
    gc.close();
  });

  it('fails every participant when the COMMIT itself fails', async () => {
    const db = openDb();
    const gc = new GroupCommit(db, { syncInterval: 60_000, walMaxBytes: 1 << 20 });
    const a = new Rows(db, gc);
    a.add('a');
    // A deferred foreign key violation only surfaces at COMMIT.
    db.exec('CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)');
    let genericErr: Error | null = null;
    gc.inNextCommit((d) => d.prepare('INSERT INTO c(pid) VALUES (42)').run(), (err) => (genericErr = err));
    await nextTurn();
    expect(a.results[0]).toBeInstanceOf(Error);
    expect(genericErr).toBeInstanceOf(Error);
    expect(db.prepare('SELECT COUNT(*) FROM t').pluck().get()).toBe(0);
    expect(gc.stats.failures).toBe(1);
    gc.close();
  });

  it('transact() commits what is pending first, then runs its own transaction', () => {
    const db = openDb();
    const gc = new GroupCommit(db, { syncInterval: 60_000, walMaxBytes: 1 << 20 });
    const a = new Rows(db, gc);
    a.add('before');
    const seen = gc.transact(() => db.prepare('SELECT v FROM t').pluck().all());
    expect(seen).toEqual(['before']);
    expect(a.results).toEqual([null]);
    expect(() => gc.transact(() => db.prepare('INSERT INTO nowhere VALUES (1)').run())).toThrow();
    expect(db.inTransaction).toBe(false);
    gc.close();
  });

  it("'always' lingers only when the previous batch had company", async () => {
    const db = openDb('always');
    const gc = new GroupCommit(db, { syncInterval: 'always', walMaxBytes: 1 << 20, lingerMs: 5 });
    const a = new Rows(db, gc);
    a.add('alone');
    await nextTurn();
    // A lone write is committed in the next turn: no linger.
    expect(a.results).toEqual([null]);
    a.add('x');
    a.add('y');
    await nextTurn();
    expect(a.results).toHaveLength(2);
    // The batch before had 2 rows: the next write waits for the linger timer, not the next turn.
    a.add('z');
    await nextTurn();
    expect(a.results).toHaveLength(2);
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (a.results.length === 3) resolve();
        else setImmediate(check);
      };
      check();
    });
    expect(a.results).toEqual([null, null, null]);
    gc.close();
  });

  it('interval policy: commits at least lingerMs apart under load, never delaying a lone awaited writer', async () => {
    const db = openDb();
    const gc = new GroupCommit(db, { syncInterval: 60_000, walMaxBytes: 1 << 20, lingerMs: 40, maxBatch: 50 });
    const a = new Rows(db, gc);
    const unawaited = (...values: string[]): void => {
      a.queue.push(...values);
      for (let i = 0; i < values.length; i++) gc.enlist(a, false);
    };
    const committed = (n: number): Promise<void> =>
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (a.results.length >= n) resolve();
          else setImmediate(check);
        };
        check();
      });
    // After a quiet spell a write is committed in the next turn.
    unawaited('first');
    await nextTurn();
    expect(a.results).toEqual([null]);
    // Right after a commit, writes nobody waits on wait for the linger and share one commit.
    const t0 = performance.now();
    unawaited('u1');
    await nextTurn();
    unawaited('u2', 'u3');
    await nextTurn();
    expect(a.results).toHaveLength(1);
    await committed(2);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(35);
    expect(gc.stats.lastBatch).toBe(3);
    // A full batch does not wait for the timer.
    unawaited('v');
    await nextTurn();
    expect(a.results).toHaveLength(2);
    unawaited(...Array.from({ length: 60 }, (_, i) => `w${i}`));
    await nextTurn();
    expect(a.results).toHaveLength(3);
    await committed(4);
    // A lone writer that waits for each commit is delayed at most once (the batch before it was
    // not alone); once its commits hold one row each, not at all.
    a.add('lone');
    await committed(5);
    const n = a.results.length;
    expect(gc.stats.lastBatch).toBe(1);
    a.add('lone again');
    await nextTurn();
    expect(a.results).toHaveLength(n + 1);
    expect(db.prepare('SELECT COUNT(*) FROM t').pluck().get()).toBe(1 + 3 + 61 + 2);
    gc.close();
  });

  it('checkpoints once the WAL estimate nears its cap, and on the sync interval when written', async () => {
    const db = openDb();
    const gc = new GroupCommit(db, { syncInterval: 60_000, walMaxBytes: 64 * 1024 });
    const a = new Rows(db, gc);
    for (let i = 0; i < 10; i++) {
      for (let k = 0; k < 20; k++) a.queue.push('x'.repeat(500));
      gc.enlist(a);
      gc.wrote(20 * 500);
      await nextTurn();
    }
    expect(gc.stats.checkpoints).toBeGreaterThan(0);
    gc.close();

    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const db2 = openDb();
    const gc2 = new GroupCommit(db2, { syncInterval: 200, walMaxBytes: 64 << 20 });
    const b = new Rows(db2, gc2);
    vi.advanceTimersByTime(1000);
    // Nothing written: no durable point needed.
    expect(gc2.stats.checkpoints).toBe(0);
    b.add('one');
    await nextTurn();
    vi.advanceTimersByTime(200);
    expect(gc2.stats.checkpoints).toBe(1);
    vi.advanceTimersByTime(1000);
    expect(gc2.stats.checkpoints).toBe(1);
    gc2.close();
  });

  it('after close() enlisting fails at once and the WAL is checkpointed', async () => {
    const db = openDb();
    const gc = new GroupCommit(db, { syncInterval: 60_000, walMaxBytes: 1 << 20 });
    const a = new Rows(db, gc);
    a.add('kept');
    gc.close();
    expect(a.results).toEqual([null]);
    a.add('late');
    expect(a.results[1]?.message).toBe('store closed');
    expect(db.prepare('SELECT v FROM t').pluck().all()).toEqual(['kept']);
  });
});
