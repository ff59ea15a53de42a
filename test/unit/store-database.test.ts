import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Database } from 'better-sqlite3';
import { applyMigrations, isStoreFull, openDatabase, schemaVersion, type StoreSettings } from '../../src/store/database.js';
import { MessageTable } from '../../src/store/message-table.js';

const dirs: string[] = [];
const open: Database[] = [];

function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'store-db-'));
  dirs.push(dir);
  return join(dir, 'sub', 'test.db');
}

function openDb(settings: Partial<StoreSettings> = {}): Database {
  const db = openDatabase(tempFile(), { cacheSize: -2000, syncInterval: 500, walMaxBytes: 1 << 20, maxFileBytes: 0, ...settings });
  open.push(db);
  return db;
}

afterEach(() => {
  for (const db of open.splice(0)) if (db.open) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('openDatabase', () => {
  it('applies the profile pragmas and reads them back (interval sync = NORMAL)', () => {
    const db = openDb({ cacheSize: -2000, syncInterval: 1000, walMaxBytes: 1048576 });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(1);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    expect(db.pragma('journal_size_limit', { simple: true })).toBe(1048576);
    expect(db.pragma('cache_size', { simple: true })).toBe(-2000);
    expect(db.pragma('page_size', { simple: true })).toBe(4096);
    // Small-board cache: temp tables stay on disk (default 0).
    expect(db.pragma('temp_store', { simple: true })).toBe(0);
  });

  it("syncs every commit with 'always' (synchronous = FULL) and keeps temp tables in memory on big caches", () => {
    const db = openDb({ syncInterval: 'always', cacheSize: -16000 });
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    expect(db.pragma('temp_store', { simple: true })).toBe(2);
  });

  it('caps the file with max_page_count: a full store fails with SQLITE_FULL, recognised by isStoreFull', () => {
    const db = openDb({ maxFileBytes: 64 * 4096 });
    MessageTable.create(db, 'main', 1);
    const t = new MessageTable(db, 'main', 1);
    let caught: unknown = null;
    try {
      for (let i = 1; i <= 1000; i++) t.insert(i, i, 'x', 0, null, Buffer.alloc(2000, 1));
    } catch (err) {
      caught = err;
    }
    expect(caught).not.toBeNull();
    expect(isStoreFull(caught)).toBe(true);
    expect(isStoreFull(new Error('other'))).toBe(false);
  });
});

describe('applyMigrations', () => {
  it('applies each version once, in order, and records it per component', () => {
    const db = openDb();
    const v1 = { version: 1, description: 'a', sql: 'CREATE TABLE a(x INTEGER)' };
    const v2 = { version: 2, description: 'b', sql: 'CREATE TABLE b(y INTEGER)' };
    expect(schemaVersion(db, 'comp')).toBe(0);
    expect(applyMigrations(db, 'comp', [v2, v1])).toBe(2);
    expect(schemaVersion(db, 'comp')).toBe(2);
    // A second run changes nothing (the CREATE TABLEs would fail if run again).
    expect(applyMigrations(db, 'comp', [v1, v2])).toBe(2);
    const v3 = { version: 3, description: 'c', sql: 'ALTER TABLE a ADD COLUMN z TEXT' };
    expect(applyMigrations(db, 'comp', [v1, v2, v3])).toBe(3);
    expect(db.prepare("SELECT COUNT(*) FROM pragma_table_info('a') WHERE name = 'z'").pluck().get()).toBe(1);
    // Components are independent.
    expect(schemaVersion(db, 'other')).toBe(0);
  });

  it('rolls a failing step back and keeps the version before it', () => {
    const db = openDb();
    const good = { version: 1, description: 'a', sql: 'CREATE TABLE a(x INTEGER)' };
    const bad = { version: 2, description: 'b', sql: 'CREATE TABLE b(y INTEGER); INSERT INTO nowhere VALUES (1)' };
    expect(() => applyMigrations(db, 'comp', [good, bad])).toThrow(/nowhere/);
    expect(schemaVersion(db, 'comp')).toBe(1);
    expect(db.prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'").pluck().get()).toBe(0);
  });
});

describe('MessageTable', () => {
  it('stores, reads by seq and subject, and finds a time by binary search', () => {
    const db = openDb();
    MessageTable.create(db, 'main', 7);
    const t = new MessageTable(db, 'main', 7);
    const subjects = ['a', 'b', 'a', 'c', 'a', 'b'];
    subjects.forEach((s, i) => t.insert(i + 1, 1000 + i * 10, s, 0, i === 1 ? 'id-2' : null, Buffer.from(`m${i + 1}`)));
    expect(t.get(3)).toMatchObject({ seq: 3, subject: 'a', hdrLen: 0, tsUs: 1020 });
    expect(t.get(3)?.raw.toString()).toBe('m3');
    expect(t.get(99)).toBeNull();
    expect(t.subjectFrom('a', 2, 10).map((m) => m.seq)).toEqual([3, 5]);
    expect(t.lastOfSubject('b')).toBe(6);
    expect(t.lastOfSubject('zz')).toBe(0);
    expect(t.countFrom(4)).toBe(3);
    expect(t.countSubjectFrom('a', 1)).toBe(3);
    expect(t.subjectCounts().sort((x, y) => (x.subject < y.subject ? -1 : 1))).toEqual([
      { subject: 'a', n: 3, last: 5 },
      { subject: 'b', n: 2, last: 6 },
      { subject: 'c', n: 1, last: 4 },
    ]);
    expect(t.msgIdsFrom(1)).toEqual([{ seq: 2, ts: 1010, msgId: 'id-2' }]);
    expect(t.seqAtOrAfterTime(1025, 1, 6)).toBe(4);
    expect(t.seqAtOrAfterTime(0, 1, 6)).toBe(1);
    expect(t.seqAtOrAfterTime(5000, 1, 6)).toBe(0);
    expect(t.deleteSeq(4, 'c')).toBe(true);
    // With a gap the search still lands on the first stored message at or after the time.
    expect(t.seqAtOrAfterTime(1025, 1, 6)).toBe(5);
    expect([...t.allSeqs()]).toEqual([1, 2, 3, 5, 6]);
    expect(t.deleteRows([1, 2, 3].map((seq) => t.metaOne(seq)!))).toBe(3);
    expect(t.first()).toEqual({ seq: 5, ts: 1040 });
    expect(t.stats()).toEqual({ n: 2, b: 2 + 4, h: 0 });
    MessageTable.drop(db, 'main', 7);
    expect(db.prepare("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'js_msgs_7%'").pluck().get()).toBe(0);
  });
});
