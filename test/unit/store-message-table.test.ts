/**
 * The message table's subject index: rows are indexed in memory (the tail) and written to
 * js_msgs_<id>_sx in bulk every INDEX_LAG rows. Every subject query must give the same answer
 * on either side of that boundary, after deletes, after a rolled-back flush, after a reopen,
 * and on a table of schema version 1 (a plain index on subject) once upgraded.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Database } from 'better-sqlite3';
import { openDatabase } from '../../src/store/database.js';
import { INDEX_LAG, MessageTable } from '../../src/store/message-table.js';

const dirs: string[] = [];
const open: Database[] = [];

function tempPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'store-mt-'));
  dirs.push(dir);
  return join(dir, 'test.db');
}

function openDb(path = tempPath()): Database {
  const db = openDatabase(path, { cacheSize: -2000, syncInterval: 500, walMaxBytes: 1 << 20, maxFileBytes: 0 });
  open.push(db);
  return db;
}

afterEach(() => {
  for (const db of open.splice(0)) if (db.open) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const SUBJECTS = ['s.a', 's.b', 's.c', 's.d', 's.e'];
const subjectOf = (seq: number): string => SUBJECTS[seq % SUBJECTS.length]!;

function fill(db: Database, t: MessageTable, from: number, to: number): void {
  db.transaction(() => {
    for (let seq = from; seq <= to; seq++) t.insert(seq, seq * 10, subjectOf(seq), 0, null, Buffer.from(`m${seq}`));
  })();
}

function indexRows(db: Database, id: number): number {
  return db.prepare(`SELECT COUNT(*) FROM js_msgs_${id}_sx`).pluck().get() as number;
}

/** What a plain scan of the table says, the reference for every indexed answer. */
function reference(db: Database, id: number, subject: string): number[] {
  return db.prepare(`SELECT seq FROM js_msgs_${id} WHERE subject = ? ORDER BY seq`).pluck().all(subject) as number[];
}

function expectConsistent(db: Database, t: MessageTable, id: number): void {
  for (const subject of SUBJECTS) {
    const ref = reference(db, id, subject);
    expect(t.subjectFrom(subject, 0, 1e9).map((m) => m.seq)).toEqual(ref);
    expect(t.metaOfSubject(subject, 1e9).map((m) => m.seq)).toEqual(ref);
    expect(t.lastOfSubject(subject)).toBe(ref[ref.length - 1] ?? 0);
    expect(t.firstOfSubject(subject)?.seq ?? 0).toBe(ref[0] ?? 0);
    const mid = ref[Math.floor(ref.length / 2)] ?? 1;
    expect(t.countSubjectFrom(subject, mid)).toBe(ref.filter((s) => s >= mid).length);
    expect(t.subjectFrom(subject, mid, 3).map((m) => m.seq)).toEqual(ref.filter((s) => s >= mid).slice(0, 3));
    expect(t.metaOfSubjectBelow(subject, mid, 1e9).map((m) => m.seq)).toEqual(ref.filter((s) => s < mid));
  }
  const counts = new Map(t.subjectCounts().map((c) => [c.subject, c]));
  for (const subject of SUBJECTS) {
    const ref = reference(db, id, subject);
    if (ref.length === 0) expect(counts.has(subject)).toBe(false);
    else expect(counts.get(subject)).toEqual({ subject, n: ref.length, last: ref[ref.length - 1] });
  }
}

describe('MessageTable subject index (bulk-written)', () => {
  it('keeps the newest rows in memory and writes them to _sx once INDEX_LAG are waiting', () => {
    const db = openDb();
    MessageTable.create(db, 'main', 1);
    const t = new MessageTable(db, 'main', 1);
    fill(db, t, 1, INDEX_LAG - 1);
    expect(indexRows(db, 1)).toBe(0);
    expect(t.tailSize()).toBe(INDEX_LAG - 1);
    expectConsistent(db, t, 1);
    fill(db, t, INDEX_LAG, INDEX_LAG + 100);
    expect(indexRows(db, 1)).toBe(INDEX_LAG);
    expect(t.tailSize()).toBe(100);
    // No per-row index on the table itself: that is what rewrote a leaf per subject per commit.
    expect(db.prepare("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'js_msgs_1'").pluck().get()).toBe(0);
    expectConsistent(db, t, 1);
  });

  it('deletes from either side of the boundary, and a reopen finds the same tail', () => {
    const path = tempPath();
    const db = openDb(path);
    MessageTable.create(db, 'main', 2);
    const t = new MessageTable(db, 'main', 2);
    fill(db, t, 1, INDEX_LAG + 500);
    const indexedSeq = 17;
    const tailSeq = INDEX_LAG + 250;
    db.transaction(() => {
      expect(t.deleteSeq(indexedSeq, subjectOf(indexedSeq))).toBe(true);
      expect(t.deleteSeq(tailSeq, subjectOf(tailSeq))).toBe(true);
      // The newest indexed row and the first tail rows, as one consecutive run.
      const run = t.metaFrom(INDEX_LAG - 2, 6);
      expect(t.deleteRows(run)).toBe(6);
    })();
    expect(indexRows(db, 2)).toBe(INDEX_LAG - 4);
    expect(t.tailSize()).toBe(500 - 3 - 1);
    expectConsistent(db, t, 2);
    db.close();

    const db2 = openDb(path);
    const t2 = new MessageTable(db2, 'main', 2);
    expect(t2.tailSize()).toBe(500 - 3 - 1);
    expectConsistent(db2, t2, 2);
    // Up to the next bulk write and past it.
    fill(db2, t2, INDEX_LAG + 501, 2 * INDEX_LAG + 10);
    expect(t2.tailSize()).toBeLessThan(INDEX_LAG);
    expectConsistent(db2, t2, 2);
    db2.transaction(() => t2.deleteAll())();
    expect(indexRows(db2, 2)).toBe(0);
    expect(t2.tailSize()).toBe(0);
    expect(t2.subjectCounts()).toEqual([]);
  });

  it('a bulk write rolled back with its transaction leaves the tail rebuilt from what is committed', () => {
    const db = openDb();
    MessageTable.create(db, 'main', 3);
    const t = new MessageTable(db, 'main', 3);
    fill(db, t, 1, INDEX_LAG - 10);
    expect(() =>
      db.transaction(() => {
        for (let seq = INDEX_LAG - 9; seq <= INDEX_LAG + 20; seq++) t.insert(seq, seq, subjectOf(seq), 0, null, Buffer.from('x'));
        throw new Error('batch failed');
      })(),
    ).toThrow('batch failed');
    // The flush ran inside the failed transaction: memory says indexed, the file says not.
    t.reloadTail();
    expect(indexRows(db, 3)).toBe(0);
    expect(t.tailSize()).toBe(INDEX_LAG - 10);
    expectConsistent(db, t, 3);
  });

  it('upgrades a schema-version-1 table (plain index on subject) without losing a row', () => {
    const db = openDb();
    // Version 1's layout, as that release created it.
    db.exec(`CREATE TABLE js_msgs_4(seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, subject TEXT NOT NULL,
      hdr_len INTEGER NOT NULL, msg_id TEXT, raw BLOB NOT NULL);
      CREATE INDEX js_msgs_4_subj ON js_msgs_4(subject);`);
    const ins = db.prepare('INSERT INTO js_msgs_4 VALUES (?, ?, ?, 0, NULL, ?)');
    db.transaction(() => {
      for (let seq = 1; seq <= 3000; seq++) if (seq % 7 !== 0) ins.run(seq, seq, subjectOf(seq), Buffer.from(`v${seq}`));
    })();
    db.transaction(() => MessageTable.upgrade(db, 'main', 4))();
    expect(db.prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'js_msgs_4_subj'").pluck().get()).toBe(0);
    expect(indexRows(db, 4)).toBe(3000 - Math.floor(3000 / 7));
    // Running it again changes nothing.
    db.transaction(() => MessageTable.upgrade(db, 'main', 4))();
    expect(indexRows(db, 4)).toBe(3000 - Math.floor(3000 / 7));
    const t = new MessageTable(db, 'main', 4);
    expect(t.tailSize()).toBe(0);
    expect(t.get(3000)?.raw.toString()).toBe('v3000');
    expectConsistent(db, t, 4);
    fill(db, t, 3001, 3100);
    expectConsistent(db, t, 4);
  });
});
