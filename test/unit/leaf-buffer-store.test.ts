import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from 'better-sqlite3';
import { DEFAULT_STORE_SETTINGS, openDatabase, schemaVersion, type StoreSettings } from '../../src/store/database.js';
import { GroupCommit } from '../../src/store/group-commit.js';
import type { StoreHost } from '../../src/store/host.js';
import { LeafBufferStore, migrateLeafBuffer } from '../../src/leaf/buffer-store.js';
import type { BufferedMessage, LeafBufferOptions } from '../../src/leaf/types.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const dirs: string[] = [];
const open: { db: Database; gc: GroupCommit }[] = [];

afterEach(() => {
  for (const o of open.splice(0)) {
    if (o.db.open) {
      o.gc.close();
      o.db.close();
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'leaf-buffer-'));
  dirs.push(d);
  return d;
}

interface Opened {
  db: Database;
  gc: GroupCommit;
  host: StoreHost;
  close(): void;
}

function openStore(path: string, settings: Partial<StoreSettings> = {}): Opened {
  const s = { ...DEFAULT_STORE_SETTINGS, ...settings };
  const db = openDatabase(path, s);
  const gc = new GroupCommit(db, { syncInterval: s.syncInterval, walMaxBytes: s.walMaxBytes });
  const o = { db, gc };
  open.push(o);
  return {
    db,
    gc,
    host: { db, inNextCommit: (w, d) => gc.inNextCommit(w, d) },
    close() {
      gc.close();
      db.close();
    },
  };
}

function opts(o: Partial<LeafBufferOptions> = {}): LeafBufferOptions {
  return { subjects: ['>'], maxBytes: 1 << 30, maxAgeMs: 0, replayRate: 0, maxMsgs: 0, ...o };
}

/** Collects what the store reports, failing the test on an unexpected error. */
class Errors {
  readonly seen: Error[] = [];
  readonly fn = (e: Error): void => {
    this.seen.push(e);
  };
}

/** Resolves with each message's done(err) once it was called. */
function appendAwait(
  store: LeafBufferStore,
  subject: string,
  data: string | Uint8Array,
  ts: number,
  hdrLen = -1,
  reply = '',
): Promise<Error | null> {
  return new Promise((res) => store.append(subject, reply, hdrLen, typeof data === 'string' ? Buffer.from(data) : data, ts, res));
}

/** The next group commit has run (a write of its own in it, done after COMMIT). */
function committed(h: StoreHost): Promise<void> {
  return new Promise((res, rej) => h.inNextCommit(() => undefined, (e) => (e === null ? res() : rej(e))));
}

function view(m: BufferedMessage): [number, string, string, number, string, number] {
  return [m.id, m.subject, m.reply, m.hdrLen, m.data.toString('latin1'), m.ts];
}

function size(subject: string, reply: string, data: string): number {
  return Buffer.byteLength(subject) + Buffer.byteLength(reply) + Buffer.byteLength(data);
}

describe('leaf buffer store', () => {
  it('migrates once; the store id is random per database and persists', () => {
    const dir = tempDir();
    const a = openStore(join(dir, 'a.db'));
    expect(migrateLeafBuffer(a.db)).toBe(1);
    expect(schemaVersion(a.db, 'leaf')).toBe(1);
    expect(migrateLeafBuffer(a.db)).toBe(1);
    const s1 = new LeafBufferStore(a.host, 'hub', opts(), new Errors().fn);
    expect(s1.storeId).toMatch(/^[0-9a-f]{16}$/);
    const s2 = new LeafBufferStore(a.host, 'other', opts(), new Errors().fn);
    expect(s2.storeId).toBe(s1.storeId);
    a.close();
    const a2 = openStore(join(dir, 'a.db'));
    expect(new LeafBufferStore(a2.host, 'hub', opts(), new Errors().fn).storeId).toBe(s1.storeId);
    const b = openStore(join(dir, 'b.db'));
    expect(new LeafBufferStore(b.host, 'hub', opts(), new Errors().fn).storeId).not.toBe(s1.storeId);
  });

  it('appends of one turn are one transaction, visible only after COMMIT, read back in order', async () => {
    const o = openStore(join(tempDir(), 'x.db'));
    const errs = new Errors();
    const store = new LeafBufferStore(o.host, 'hub', opts(), errs.fn);
    expect(store.empty).toBe(true);
    expect(store.lastCommittedId).toBe(0);
    const commitsBefore = o.gc.stats.commits;
    const src = Buffer.from('HDR\r\n\r\npayload');
    const dones = [
      appendAwait(store, 'a.1', 'one', 1000),
      appendAwait(store, 'a.2', src, 1001, 7, '_INBOX.r'),
      appendAwait(store, 'a.3', '', 1002),
    ];
    // The caller's buffer is copied at append: reusing it changes nothing stored.
    src.fill(0x78);
    // Pending rows are counted but not readable.
    expect(store.readAfter(0, 10)).toEqual([]);
    expect(store.empty).toBe(false);
    expect(store.stats()).toEqual({
      msgs: 3,
      bytes: size('a.1', '', 'one') + size('a.2', '_INBOX.r', 'HDR\r\n\r\npayload') + size('a.3', '', ''),
      oldestTs: 1000,
      droppedMsgs: 0,
      droppedBytes: 0,
      appended: 3,
    });
    expect(await Promise.all(dones)).toEqual([null, null, null]);
    expect(o.gc.stats.commits - commitsBefore).toBe(1);
    const rows = store.readAfter(0, 10);
    expect(rows.map(view)).toEqual([
      [1, 'a.1', '', -1, 'one', 1000],
      [2, 'a.2', '_INBOX.r', 7, 'HDR\r\n\r\npayload', 1001],
      [3, 'a.3', '', -1, '', 1002],
    ]);
    expect(Buffer.isBuffer(rows[0]!.data)).toBe(true);
    expect(store.lastCommittedId).toBe(3);
    expect(store.stats().msgs).toBe(3);
    expect(errs.seen).toEqual([]);
  });

  it('readAfter pages through the committed rows', async () => {
    const o = openStore(join(tempDir(), 'x.db'));
    const store = new LeafBufferStore(o.host, 'hub', opts(), new Errors().fn);
    const dones: Promise<Error | null>[] = [];
    for (let i = 1; i <= 10; i++) dones.push(appendAwait(store, `s.${i}`, `m${i}`, i));
    await Promise.all(dones);
    const pages: number[][] = [];
    let after = 0;
    for (;;) {
      const page = store.readAfter(after, 3);
      if (page.length === 0) break;
      pages.push(page.map((m) => m.id));
      after = page[page.length - 1]!.id;
    }
    expect(pages).toEqual([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]);
    expect(store.readAfter(10, 3)).toEqual([]);
    expect(store.readAfter(4, 2).map((m) => m.subject)).toEqual(['s.5', 's.6']);
    expect(store.readAfter(0, 0)).toEqual([]);
  });

  it('remove: counted at once, batched into the next commit, unknown and repeated ids ignored', async () => {
    const o = openStore(join(tempDir(), 'x.db'));
    const errs = new Errors();
    const store = new LeafBufferStore(o.host, 'hub', opts(), errs.fn);
    const dones: Promise<Error | null>[] = [];
    for (let i = 1; i <= 8; i++) dones.push(appendAwait(store, 's', `m${i}`, 100 + i));
    await Promise.all(dones);
    const per = size('s', '', 'm1');
    for (const id of [1, 2, 3, 5, 5, 99, -4, 0]) store.remove(id);
    expect(store.stats()).toMatchObject({ msgs: 4, bytes: 4 * per, oldestTs: 104 });
    // Removed rows are not read back even before the delete committed.
    expect(store.readAfter(0, 3).map((m) => m.id)).toEqual([4, 6, 7]);
    const commitsBefore = o.gc.stats.commits;
    await committed(o.host);
    expect(o.gc.stats.commits - commitsBefore).toBe(1);
    expect(o.db.prepare('SELECT id FROM leaf_buffer ORDER BY id').pluck().all()).toEqual([4, 6, 7, 8]);
    store.remove(1);
    store.remove(4);
    store.remove(4);
    expect(store.stats()).toMatchObject({ msgs: 3, bytes: 3 * per, oldestTs: 106 });
    for (const id of [6, 7, 8]) store.remove(id);
    expect(store.empty).toBe(true);
    expect(store.stats()).toMatchObject({ msgs: 0, bytes: 0, oldestTs: 0, droppedMsgs: 0 });
    await committed(o.host);
    expect(o.db.prepare('SELECT COUNT(*) FROM leaf_buffer').pluck().get()).toBe(0);
    expect(store.lastCommittedId).toBe(8);
    expect(errs.seen).toEqual([]);
  });

  it('remotes share the table but not their queues', async () => {
    const o = openStore(join(tempDir(), 'x.db'));
    const a = new LeafBufferStore(o.host, 'hub-a', opts(), new Errors().fn);
    const b = new LeafBufferStore(o.host, 'hub-b', opts(), new Errors().fn);
    await Promise.all([appendAwait(a, 'x', 'a1', 1), appendAwait(b, 'x', 'b1', 1)]);
    await Promise.all([appendAwait(a, 'x', 'a2', 2), appendAwait(b, 'x', 'b2', 2)]);
    expect(a.readAfter(0, 10).map((m) => m.data.toString())).toEqual(['a1', 'a2']);
    expect(b.readAfter(0, 10).map((m) => m.data.toString())).toEqual(['b1', 'b2']);
    const bIds = b.readAfter(0, 10).map((m) => m.id);
    // An id of the other remote is unknown here.
    for (const id of bIds) a.remove(id);
    expect(a.stats().msgs).toBe(2);
    await committed(o.host);
    expect(b.readAfter(0, 10).map((m) => m.id)).toEqual(bIds);
    expect(a.lastCommittedId).toBeLessThan(b.lastCommittedId);
  });

  it('a restart sees exactly the committed rows with their ids, bytes and counters', async () => {
    const dir = tempDir();
    const path = join(dir, 'x.db');
    const o = openStore(path);
    const store = new LeafBufferStore(o.host, 'hub', opts(), new Errors().fn);
    const bin = Buffer.from([0, 1, 2, 255, 254, 0, 13, 10]);
    await Promise.all([appendAwait(store, 'a', bin, 5000, 4), appendAwait(store, 'b', 'two', 5001), appendAwait(store, 'c', 'three', 5002)]);
    store.remove(1);
    await committed(o.host);
    const before = store.readAfter(0, 100).map(view);
    const stats = store.stats();
    o.close();

    const o2 = openStore(path);
    const again = new LeafBufferStore(o2.host, 'hub', opts(), new Errors().fn);
    expect(again.readAfter(0, 100).map(view)).toEqual(before);
    expect(again.stats()).toEqual({ ...stats, appended: 0, droppedMsgs: 0, droppedBytes: 0 });
    expect(again.stats()).toMatchObject({ msgs: 2, bytes: size('b', '', 'two') + size('c', '', 'three'), oldestTs: 5001 });
    expect(again.lastCommittedId).toBe(3);
    // Ids carry on from the last one.
    await appendAwait(again, 'd', 'four', 5003);
    expect(again.readAfter(3, 10).map((m) => m.id)).toEqual([4]);
    const bytesRow = new LeafBufferStore(o2.host, 'hub', opts(), new Errors().fn);
    expect(bytesRow.stats().msgs).toBe(3);
    o2.close();
    const o3 = openStore(path);
    const third = new LeafBufferStore(o3.host, 'hub', opts(), new Errors().fn);
    expect(third.readAfter(0, 10).map((m) => m.data.toString('latin1'))).toEqual(['two', 'three', 'four']);
  });

  it('ids are never reused, after the queue emptied and across a restart', async () => {
    const dir = tempDir();
    const path = join(dir, 'x.db');
    const o = openStore(path);
    const store = new LeafBufferStore(o.host, 'hub', opts(), new Errors().fn);
    await Promise.all([appendAwait(store, 'a', '1', 1), appendAwait(store, 'a', '2', 2), appendAwait(store, 'a', '3', 3)]);
    for (const m of store.readAfter(0, 10)) store.remove(m.id);
    await committed(o.host);
    expect(o.db.prepare('SELECT COUNT(*) FROM leaf_buffer').pluck().get()).toBe(0);
    await appendAwait(store, 'a', '4', 4);
    const ids = store.readAfter(0, 10).map((m) => m.id);
    expect(ids).toEqual([4]);
    store.remove(4);
    await committed(o.host);
    o.close();

    const o2 = openStore(path);
    const next = new LeafBufferStore(o2.host, 'hub', opts(), new Errors().fn);
    expect(next.empty).toBe(true);
    await appendAwait(next, 'a', '5', 5);
    expect(next.readAfter(0, 10).map((m) => m.id)).toEqual([5]);
  });

  it('max_msgs drops the oldest rows, committed and pending, and counts them', async () => {
    const o = openStore(join(tempDir(), 'x.db'));
    const errs = new Errors();
    const store = new LeafBufferStore(o.host, 'hub', opts({ maxMsgs: 3 }), errs.fn);
    await Promise.all([appendAwait(store, 's', 'm1', 1), appendAwait(store, 's', 'm2', 2)]);
    // One turn: m3 fits, m4 drops m1, m5 drops m2, m6 drops m3 (still pending), m7 drops m4.
    const dones = [3, 4, 5, 6, 7].map((i) => appendAwait(store, 's', `m${i}`, i));
    const per = size('s', '', 'm1');
    expect(store.stats()).toEqual({ msgs: 3, bytes: 3 * per, oldestTs: 5, droppedMsgs: 4, droppedBytes: 4 * per, appended: 7 });
    // The committed ones dropped are no longer read, even before the delete committed.
    expect(store.readAfter(0, 10)).toEqual([]);
    const results = await Promise.all(dones);
    expect(results.map((e) => (e === null ? null : /full/.test(e.message)))).toEqual([true, true, null, null, null]);
    expect(store.readAfter(0, 10).map((m) => [m.id, m.data.toString()])).toEqual([
      [3, 'm5'],
      [4, 'm6'],
      [5, 'm7'],
    ]);
    expect(o.db.prepare('SELECT COUNT(*) FROM leaf_buffer').pluck().get()).toBe(3);
    // Removing a dropped id changes nothing.
    store.remove(1);
    expect(store.stats().msgs).toBe(3);
    expect(errs.seen).toEqual([]);
  });

  it('max_bytes drops as many of the oldest as needed; an oversized message is dropped itself', async () => {
    const o = openStore(join(tempDir(), 'x.db'));
    const store = new LeafBufferStore(o.host, 'hub', opts({ maxBytes: 100 }), new Errors().fn);
    const m = (n: number): string => 'x'.repeat(n - 1); // plus the 1-byte subject 's'
    await Promise.all([appendAwait(store, 's', m(30), 1), appendAwait(store, 's', m(30), 2), appendAwait(store, 's', m(30), 3)]);
    expect(store.stats()).toMatchObject({ msgs: 3, bytes: 90 });
    // 60 bytes: 90 + 60 > 100, so two of the 30s go.
    await appendAwait(store, 's', m(60), 4);
    expect(store.stats()).toMatchObject({ msgs: 2, bytes: 90, droppedMsgs: 2, droppedBytes: 60, oldestTs: 3 });
    expect(store.readAfter(0, 10).map((r) => r.ts)).toEqual([3, 4]);
    // Exactly max_bytes fits (after dropping everything).
    expect(await appendAwait(store, 's', m(100), 5)).toBe(null);
    expect(store.stats()).toMatchObject({ msgs: 1, bytes: 100, droppedMsgs: 4, droppedBytes: 150 });
    const err = await appendAwait(store, 's', m(101), 6);
    expect(err?.message).toMatch(/101 bytes is larger than max_bytes \(100\)/);
    expect(store.stats()).toEqual({ msgs: 1, bytes: 100, oldestTs: 5, droppedMsgs: 5, droppedBytes: 251, appended: 6 });
    expect(store.readAfter(0, 10).map((r) => r.ts)).toEqual([5]);
    expect(o.db.prepare('SELECT COUNT(*) FROM leaf_buffer').pluck().get()).toBe(1);
  });

  it('overflow reads the oldest rows in chunks through a long committed queue', async () => {
    const o = openStore(join(tempDir(), 'x.db'));
    const store = new LeafBufferStore(o.host, 'hub', opts(), new Errors().fn);
    const dones: Promise<Error | null>[] = [];
    for (let i = 1; i <= 1000; i++) dones.push(appendAwait(store, 's', 'abcdefghi', i));
    await Promise.all(dones);
    // A second store on the same remote (as after a restart) with a limit far below.
    const limited = new LeafBufferStore(o.host, 'hub', opts({ maxMsgs: 10 }), new Errors().fn);
    // Some removed in the middle of what it will drop: not counted twice.
    for (const id of [5, 300, 301, 700]) limited.remove(id);
    expect(limited.stats().msgs).toBe(996);
    expect(await appendAwait(limited, 's', 'abcdefghi', 1001)).toBe(null);
    expect(limited.stats()).toMatchObject({ msgs: 10, bytes: 100, droppedMsgs: 987, droppedBytes: 9870, oldestTs: 992 });
    expect(limited.readAfter(0, 100).map((m) => m.ts)).toEqual([992, 993, 994, 995, 996, 997, 998, 999, 1000, 1001]);
    expect(o.db.prepare('SELECT COUNT(*) FROM leaf_buffer').pluck().get()).toBe(10);
  });

  it('expire drops the rows older than max_age, oldest first; max_age 0 keeps everything', async () => {
    const o = openStore(join(tempDir(), 'x.db'));
    const store = new LeafBufferStore(o.host, 'hub', opts({ maxAgeMs: 1000 }), new Errors().fn);
    await Promise.all([1000, 1500, 2000, 2500].map((ts) => appendAwait(store, 's', 'data', ts)));
    const pending = [3000, 3500].map((ts) => appendAwait(store, 's', 'data', ts));
    expect(store.expire(2999)).toBe(2);
    expect(store.stats()).toMatchObject({ msgs: 4, oldestTs: 2000, droppedMsgs: 2, droppedBytes: 10 });
    expect(store.expire(2999)).toBe(0);
    // Reaching into the pending rows too.
    expect(store.expire(4001)).toBe(3);
    expect(store.stats()).toMatchObject({ msgs: 1, oldestTs: 3500, droppedMsgs: 5 });
    const [e3000, e3500] = await Promise.all(pending);
    expect(e3000?.message).toMatch(/max_age/);
    expect(e3500).toBe(null);
    expect(store.readAfter(0, 10).map((m) => m.ts)).toEqual([3500]);
    expect(o.db.prepare('SELECT ts FROM leaf_buffer').pluck().all()).toEqual([3500]);

    const forever = new LeafBufferStore(o.host, 'hub', opts({ maxAgeMs: 0 }), new Errors().fn);
    expect(forever.expire(Number.MAX_SAFE_INTEGER)).toBe(0);
    expect(forever.stats().msgs).toBe(1);
  });

  it('a failed insert rolls the counters back and tells done and onError; removes still commit', async () => {
    const o = openStore(join(tempDir(), 'x.db'));
    const errs = new Errors();
    const store = new LeafBufferStore(o.host, 'hub', opts(), errs.fn);
    await Promise.all([appendAwait(store, 's', 'keep', 1), appendAwait(store, 's', 'gone', 2)]);
    o.db.exec("CREATE TRIGGER leaf_fail BEFORE INSERT ON leaf_buffer BEGIN SELECT RAISE(ABORT, 'insert refused'); END");
    store.remove(2);
    const failing = [appendAwait(store, 's', 'f1', 3), appendAwait(store, 's', 'f2', 4)];
    expect(store.stats()).toMatchObject({ msgs: 3, bytes: 3 * size('s', '', 'f1') + 2 });
    const results = await Promise.all(failing);
    expect(results.map((e) => e?.message)).toEqual(['insert refused', 'insert refused']);
    expect(errs.seen.map((e) => e.message)).toEqual(['insert refused']);
    expect(store.stats()).toMatchObject({ msgs: 1, bytes: size('s', '', 'keep'), oldestTs: 1 });
    expect(o.db.prepare('SELECT id FROM leaf_buffer').pluck().all()).toEqual([1]);
    o.db.exec('DROP TRIGGER leaf_fail');
    expect(await appendAwait(store, 's', 'ok', 5)).toBe(null);
    expect(store.readAfter(0, 10).map((m) => m.data.toString())).toEqual(['keep', 'ok']);
    expect(store.readAfter(0, 10)[1]!.id).toBe(3);
  });

  it('a full store fails the appends without throwing and keeps serving', async () => {
    // The smallest file cap openDatabase takes: 64 pages.
    const o = openStore(join(tempDir(), 'x.db'), { maxFileBytes: 64 * 4096 });
    const errs = new Errors();
    const store = new LeafBufferStore(o.host, 'hub', opts(), errs.fn);
    const big = Buffer.alloc(3000, 7);
    let firstErr: Error | null = null;
    let stored = 0;
    for (let turn = 0; turn < 200 && firstErr === null; turn++) {
      const err = await appendAwait(store, 's', big, turn);
      if (err === null) stored++;
      else firstErr = err;
    }
    expect(firstErr).not.toBe(null);
    expect((firstErr as Error & { code?: string }).code).toBe('SQLITE_FULL');
    expect(errs.seen.length).toBeGreaterThan(0);
    expect(store.stats()).toMatchObject({ msgs: stored, bytes: stored * (1 + 3000) });
    expect(store.readAfter(0, 1000).length).toBe(stored);
    // Removing frees room again.
    for (const m of store.readAfter(0, 10)) store.remove(m.id);
    await committed(o.host);
    expect(await appendAwait(store, 's', big, 999)).toBe(null);
    expect(store.stats().msgs).toBe(stored - 10 + 1);
  });

  describe('crash safety (kill -9 of a child process appending)', () => {
    const N = 5000;

    /** The same function is written into the child (keep them in step). */
    function payloadOf(n: number): Buffer {
      const b = Buffer.alloc(8 + (n % 97));
      b.writeUInt32BE(n, 0);
      b.fill((n * 7) & 255, 4);
      return b;
    }

    async function bundleChild(dir: string): Promise<string> {
      const entry = join(dir, 'child.ts');
      const src = (p: string): string => JSON.stringify(join(ROOT, 'src', p));
      writeFileSync(
        entry,
        `import { writeSync } from 'node:fs';
import { openDatabase, DEFAULT_STORE_SETTINGS } from ${src('store/database.ts')};
import { GroupCommit } from ${src('store/group-commit.ts')};
import { LeafBufferStore } from ${src('leaf/buffer-store.ts')};

function payloadOf(n: number): Buffer {
  const b = Buffer.alloc(8 + (n % 97));
  b.writeUInt32BE(n, 0);
  b.fill((n * 7) & 255, 4);
  return b;
}

const [path, sync] = process.argv.slice(2) as [string, string];
const settings = { ...DEFAULT_STORE_SETTINGS, syncInterval: sync === 'always' ? ('always' as const) : 60_000 };
const db = openDatabase(path, settings);
const gc = new GroupCommit(db, { syncInterval: settings.syncInterval, walMaxBytes: settings.walMaxBytes });
const store = new LeafBufferStore({ db, inNextCommit: (w, d) => gc.inNextCommit(w, d) }, 'hub',
  { subjects: ['>'], maxBytes: 1 << 30, maxAgeMs: 0, replayRate: 0, maxMsgs: 0 },
  (e) => { writeSync(2, 'onError ' + e.message + '\\n'); process.exit(3); });
const N = ${N};
let k = 0;
let acked = 0;
const t0 = performance.now();
function burst(): void {
  const size = 1 + Math.floor(Math.random() * 200);
  for (let i = 0; i < size && k < N; i++) {
    const n = ++k;
    store.append('sensor.' + (n % 10), n % 3 === 0 ? '_INBOX.' + n : '', n % 2 === 0 ? 4 : -1, payloadOf(n), n, (err) => {
      if (err !== null) { writeSync(2, 'done ' + err.message + '\\n'); process.exit(4); }
      writeSync(1, n + '\\n');
      if (++acked === N) {
        writeSync(1, 'rate ' + Math.round(N / ((performance.now() - t0) / 1000)) + '\\n');
      }
    });
  }
  if (k < N) setImmediate(burst);
}
burst();
// Stay alive until killed, so the kill always lands on a running process.
setInterval(() => undefined, 1 << 30);
`,
      );
      const out = join(dir, 'child.mjs');
      // The child loads better-sqlite3 at run time from beside itself, as the bundle does.
      symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
      const req = createRequire(join(ROOT, 'package.json'));
      const sqlitePath = req.resolve('better-sqlite3');
      await build({
        entryPoints: [entry],
        outfile: out,
        bundle: true,
        platform: 'node',
        target: 'node20',
        format: 'esm',
        logLevel: 'error',
        plugins: [
          {
            name: 'better-sqlite3-from-repo',
            setup(b) {
              b.onResolve({ filter: /^better-sqlite3$/ }, () => ({ path: sqlitePath, external: true }));
            },
          },
        ],
      });
      return out;
    }

    /** Runs the child until `killAfter` done lines were seen (or all N and the rate), then SIGKILLs it. */
    function runChild(script: string, db: string, sync: string, killAfter: number): Promise<{ printed: number[]; rate: number; stderr: string }> {
      return new Promise((res, rej) => {
        const child = spawn(process.execPath, [script, db, sync], { stdio: ['ignore', 'pipe', 'pipe'] });
        const printed: number[] = [];
        let rate = 0;
        let stderr = '';
        let buf = '';
        let killed = false;
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.startsWith('rate ')) rate = Number(line.slice(5));
            else printed.push(Number(line));
          }
          if (!killed && (printed.length >= killAfter || rate > 0)) {
            killed = true;
            child.kill('SIGKILL');
          }
        });
        child.on('error', rej);
        child.on('close', (code, signal) => {
          if (signal !== 'SIGKILL') rej(new Error(`child ended with ${code}/${signal}: ${stderr}`));
          else res({ printed, rate, stderr });
        });
      });
    }

    function verify(path: string, printed: number[]): number {
      const o = openStore(path);
      const store = new LeafBufferStore(o.host, 'hub', opts(), new Errors().fn);
      const rows = store.readAfter(0, N + 10);
      const maxPrinted = printed.length > 0 ? Math.max(...printed) : 0;
      // Ids contiguous from 1, every printed one among them.
      expect(rows.length).toBeGreaterThanOrEqual(maxPrinted);
      expect(rows.length).toBeLessThanOrEqual(N);
      let bytes = 0;
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i]!;
        const n = i + 1;
        if (r.id !== n || r.ts !== n || r.subject !== `sensor.${n % 10}` || r.reply !== (n % 3 === 0 ? `_INBOX.${n}` : '') || r.hdrLen !== (n % 2 === 0 ? 4 : -1) || !r.data.equals(payloadOf(n))) {
          throw new Error(`row ${i} is not message ${n}: ${JSON.stringify({ ...r, data: r.data.toString('hex') })}`);
        }
        bytes += Buffer.byteLength(r.subject) + Buffer.byteLength(r.reply) + r.data.length;
      }
      expect(new Set(printed).size).toBe(printed.length);
      expect(store.stats()).toMatchObject({ msgs: rows.length, bytes, oldestTs: rows.length > 0 ? 1 : 0 });
      expect(store.lastCommittedId).toBe(rows.length);
      o.close();
      return rows.length;
    }

    it('every acknowledged append survives; nothing half-written', { timeout: 120_000 }, async () => {
      const dir = tempDir();
      const script = await bundleChild(dir);

      // One full run: all N acknowledged, and the rate.
      const full = await runChild(script, join(dir, 'full.db'), 'interval', N + 1);
      expect(full.printed.length).toBe(N);
      expect(verify(join(dir, 'full.db'), full.printed)).toBe(N);
      const fullAlways = await runChild(script, join(dir, 'full-always.db'), 'always', N + 1);
      expect(verify(join(dir, 'full-always.db'), fullAlways.printed)).toBe(N);
      console.log(`leaf buffer appends/s in the child: ${full.rate} (synchronous=NORMAL), ${fullAlways.rate} (FULL)`);

      // Killed at random points, both sync policies.
      const summary: string[] = [];
      for (let run = 0; run < 6; run++) {
        const sync = run % 2 === 0 ? 'interval' : 'always';
        const killAfter = 1 + Math.floor(Math.random() * (N - 1));
        const path = join(dir, `kill-${run}.db`);
        const r = await runChild(script, path, sync, killAfter);
        const stored = verify(path, r.printed);
        summary.push(`${sync}: kill after ${r.printed.length} seen, ${stored} stored`);
      }
      console.log(summary.join('; '));
    });
  });
});
