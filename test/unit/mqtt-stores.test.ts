import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from 'better-sqlite3';
import { openDatabase, DEFAULT_STORE_SETTINGS, schemaVersion } from '../../src/store/database.js';
import { RetainedStore } from '../../src/mqtt/retained-store.js';
import { SessionStore } from '../../src/mqtt/session-store.js';
import { migrateMqtt, type StoreHost } from '../../src/mqtt/store-schema.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A StoreHost whose "next commit" runs when flush() is called. */
function host(db: Database): StoreHost & { flush(): void } {
  let pending: ((db: Database) => void)[] = [];
  return {
    db,
    inNextCommit(write, done) {
      pending.push((d) => {
        write(d);
        done?.(null);
      });
    },
    flush() {
      const p = pending;
      pending = [];
      db.transaction(() => {
        for (const w of p) w(db);
      })();
    },
  };
}

function open(): { path: string; db: Database } {
  const dir = mkdtempSync(join(tmpdir(), 'mqtt-store-'));
  dirs.push(dir);
  const path = join(dir, 'x.db');
  const db = openDatabase(path, DEFAULT_STORE_SETTINGS);
  migrateMqtt(db);
  return { path, db };
}

describe('MQTT stores', () => {
  it('migrates once and records the version', () => {
    const { db } = open();
    expect(schemaVersion(db, 'mqtt')).toBe(1);
    expect(migrateMqtt(db)).toBe(1);
    db.close();
  });

  it('sessions and queued messages survive a reopen; drops remove them', () => {
    const { path, db } = open();
    const h = host(db);
    const s = new SessionStore(h, (e) => {
      throw e;
    });
    s.saveSession('c1', { expiry: 0xffffffff, subs: [{ f: 'a/#', q: 1 }], offlineSince: 5 });
    const id1 = s.addMessage('c1', { topic: 'a/b', qos: 1, retain: false, payload: Buffer.from('one'), props: { contentType: 't', correlationData: Buffer.from([1, 2]) }, expiresAt: 0 });
    const id2 = s.addMessage('c1', { topic: 'a/c', qos: 2, retain: true, payload: Buffer.from('two'), props: undefined, expiresAt: 99 });
    s.saveSession('c2', { expiry: 60, subs: [], offlineSince: null });
    h.flush();
    expect(id2).toBe(id1 + 1);
    db.close();

    const db2 = openDatabase(path, DEFAULT_STORE_SETTINGS);
    migrateMqtt(db2);
    const h2 = host(db2);
    const s2 = new SessionStore(h2, (e) => {
      throw e;
    });
    const all = s2.loadAll();
    expect([...all.keys()].sort()).toEqual(['c1', 'c2']);
    const c1 = all.get('c1')!;
    expect(c1.record.subs).toEqual([{ f: 'a/#', q: 1 }]);
    expect(c1.queue.map((r) => [r.topic, r.qos, r.retain, r.payload.toString(), r.expiresAt])).toEqual([
      ['a/b', 1, false, 'one', 0],
      ['a/c', 2, true, 'two', 99],
    ]);
    expect(c1.queue[0]!.props).toEqual({ contentType: 't', correlationData: Buffer.from([1, 2]) });
    // New ids continue after the stored ones.
    expect(s2.addMessage('c1', { topic: 'x', qos: 1, retain: false, payload: Buffer.from('3'), props: undefined, expiresAt: 0 })).toBe(id2 + 1);
    s2.dropMessage(id1);
    s2.dropSession('c2');
    h2.flush();
    const again = s2.loadAll();
    expect([...again.keys()]).toEqual(['c1']);
    expect(again.get('c1')!.queue.map((r) => r.payload.toString())).toEqual(['two', '3']);
    db2.close();
  });

  it('retained messages: set, replace, clear with an empty payload, match, persist', () => {
    const { path, db } = open();
    const h = host(db);
    const r = new RetainedStore(h, (e) => {
      throw e;
    });
    r.set({ subject: 'a.b', topic: 'a/b', qos: 1, payload: Buffer.from('1'), props: undefined, expiresAt: 0 });
    r.set({ subject: 'a.b', topic: 'a/b', qos: 0, payload: Buffer.from('2'), props: undefined, expiresAt: 0 });
    r.set({ subject: 'a.c', topic: 'a/c', qos: 1, payload: Buffer.from('3'), props: undefined, expiresAt: 0 });
    r.set({ subject: 'x', topic: 'x', qos: 1, payload: Buffer.from('4'), props: undefined, expiresAt: 1 });
    r.set({ subject: 'a.c', topic: 'a/c', qos: 1, payload: Buffer.alloc(0), props: undefined, expiresAt: 0 });
    h.flush();
    expect(r.match(['a.>', 'a'], Date.now()).map((m) => m.payload.toString())).toEqual(['2']);
    // Expired ones are dropped on match.
    expect(r.match(['>'], Date.now()).map((m) => m.topic)).toEqual(['a/b']);
    h.flush();
    db.close();
    const db2 = openDatabase(path, DEFAULT_STORE_SETTINGS);
    const r2 = new RetainedStore(host(db2), (e) => {
      throw e;
    });
    expect(r2.size).toBe(1);
    expect(r2.match(['a.*'], Date.now())[0]).toMatchObject({ topic: 'a/b', qos: 0 });
    db2.close();
  });
});
