/**
 * JetStream in one process: the file database at `<store_dir>/jetstream/nats-edge.db` (nats-server
 * stores under `<store_dir>/jetstream` too), an attached in-memory database for memory streams,
 * one group commit over both, the `$JS.API` dispatcher, the streams, and the consumers (registered
 * by the consumer module against the same runtime).
 *
 * Schema (component `jetstream`, see applyMigrations): `js_streams`, one row per stream, in the
 * file database (`main`) and, for memory streams, in the attached `mem` database:
 *   id        INTEGER PRIMARY KEY  names the stream's message table js_msgs_<id> (message-table.ts)
 *   name      TEXT UNIQUE
 *   config    TEXT                 the StreamConfig as echoed (JSON)
 *   created   TEXT                 creation time, RFC 3339
 *   last_seq  INTEGER              last sequence assigned: survives purges and deletes
 *   last_ts   INTEGER              its store time, µs
 * The consumer module adds its own tables (CONSUMER_SCHEMA) in the file database; origins.ts
 * keeps the positions of stream sources in js_stream_sources (in `main` and `mem`).
 */
import type { Database as Db, Statement } from 'better-sqlite3';
import { join } from 'node:path';
import type { JetStreamOptions, ProfileLimits } from '../config/options.js';
import type { Router } from '../core/router.js';
import type { Logger } from '../log.js';
import { applyMigrations, DEFAULT_STORE_SETTINGS, openDatabase, pragmaReport, type Migration, type StoreSettings } from '../store/database.js';
import { GroupCommit } from '../store/group-commit.js';
import { MessageTable } from '../store/message-table.js';
import { JsApi } from './api.js';
import { CONSUMER_SCHEMA, registerConsumerApi, restoreConsumers } from './consumer.js';
import { formatTimeUs } from './consumer-time.js';
import { dropOriginPositions, originSchema } from './origins.js';
import { storedStreamConfig } from './stream-config.js';
import { Stream, type StreamContext, type StreamRow } from './stream.js';
import { StoreUsage } from './stream-state.js';
import { registerStreamApi } from './stream-api.js';
import type { JetStreamRuntime, StorageType, StreamConfig } from './types.js';

export const DB_FILE = 'nats-edge.db';

const JETSTREAM_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'streams: one row per stream; messages live in per-stream tables js_msgs_<id>',
    sql: `CREATE TABLE IF NOT EXISTS js_streams(
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      config TEXT NOT NULL,
      created TEXT NOT NULL,
      last_seq INTEGER NOT NULL DEFAULT 0,
      last_ts INTEGER NOT NULL DEFAULT 0
    )`,
  },
  {
    version: 2,
    description:
      'message tables: the per-row index on subject (js_msgs_<id>_subj) becomes the bulk-written ' +
      'table js_msgs_<id>_sx (message-table.ts), so a commit no longer rewrites one index leaf per subject',
    sql: '',
    run: (db) => {
      const ids = db.prepare('SELECT id FROM main.js_streams').pluck().all() as number[];
      for (const id of ids) MessageTable.upgrade(db, 'main', id);
    },
  },
];

/** Page cache while streams are restored at startup, KiB (see JetStream.start). */
const RESTORE_CACHE_KIB = 1024;

const MEM_SCHEMA = `CREATE TABLE IF NOT EXISTS mem.js_streams(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  config TEXT NOT NULL,
  created TEXT NOT NULL,
  last_seq INTEGER NOT NULL DEFAULT 0,
  last_ts INTEGER NOT NULL DEFAULT 0
)`;

export interface JetStreamStartOptions {
  router: Router;
  log: Logger;
  options: JetStreamOptions;
  profile: ProfileLimits | undefined;
  /** Connection ids for the internal subscribers (unique across the server). */
  nextCid: () => number;
}

/** Totals for INFO, /jsz and /varz. */
export interface JetStreamStats {
  memory: number;
  storage: number;
  reservedMemory: number;
  reservedStorage: number;
  streams: number;
  consumers: number;
  messages: number;
  bytes: number;
  api: { total: number; errors: number };
}

/** Store settings from the JetStream options and the firmware profile. */
export function storeSettings(options: JetStreamOptions, profile: ProfileLimits | undefined): StoreSettings {
  return {
    cacheSize: profile?.sqliteCacheSize ?? DEFAULT_STORE_SETTINGS.cacheSize,
    syncInterval: options.syncInterval,
    walMaxBytes: profile?.walMaxBytes ?? DEFAULT_STORE_SETTINGS.walMaxBytes,
    ...(profile?.commitLingerMs !== undefined ? { commitLingerMs: profile.commitLingerMs } : {}),
    // max_file_store is what the store may take on disk (boards.md: the SQLite files), so the
    // database file is capped at it less the WAL's share. The accounting with nats-server's record
    // sizes refuses most publishes first; SQLite's page overhead (1.2-2x for 1-4 KiB messages,
    // measured) means a write can still find the file full, and then it fails with nats-server's
    // "insufficient resources" instead of growing past the cap.
    // The WAL's share: it passes its target by up to a whole batch (MBs under a flood) before the
    // checkpoint after it, and there is the -shm file.
    maxFileBytes: options.maxFileStore > 0 ? options.maxFileStore - Math.min(2 * (profile?.walMaxBytes ?? DEFAULT_STORE_SETTINGS.walMaxBytes) + 16 * 1024 * 1024, Math.floor(options.maxFileStore / 8)) : 0,
  };
}

export class JetStream implements JetStreamRuntime, StreamContext {
  readonly router: Router;
  readonly log: Logger;
  readonly options: JetStreamOptions;
  readonly profile: ProfileLimits | undefined;
  readonly api: JsApi;
  readonly streams = new Map<string, Stream>();
  readonly db: Db;
  readonly commit: GroupCommit;
  readonly usage: StoreUsage;
  readonly domain: string | undefined;
  /** `<store_dir>/jetstream`, as nats-server names it. */
  readonly storeDir: string;
  private readonly cidSource: () => number;
  private readonly insertStream: Record<'main' | 'mem', Statement>;
  private readonly updateConfig: Record<'main' | 'mem', Statement>;
  private readonly deleteRow: Record<'main' | 'mem', Statement>;
  private stopped = false;

  private constructor(o: JetStreamStartOptions, db: Db, dir: string, settings: StoreSettings) {
    this.router = o.router;
    this.log = o.log;
    this.options = o.options;
    this.profile = o.profile;
    this.domain = o.options.domain !== undefined && o.options.domain !== '' ? o.options.domain : undefined;
    this.cidSource = o.nextCid;
    this.db = db;
    this.storeDir = dir;
    this.usage = new StoreUsage(o.options.maxFileStore, o.options.maxMemoryStore);
    this.commit = new GroupCommit(db, {
      syncInterval: settings.syncInterval,
      walMaxBytes: settings.walMaxBytes,
      ...(settings.commitLingerMs !== undefined ? { lingerMs: settings.commitLingerMs } : {}),
      log: (level, msg) => this.log.log(level, msg),
    });
    this.api = new JsApi(o.router, o.log, o.nextCid(), this.domain);
    const per = (sql: (schema: string) => string): Record<'main' | 'mem', Statement> => ({
      main: db.prepare(sql('main')),
      mem: db.prepare(sql('mem')),
    });
    this.insertStream = per((s) => `INSERT INTO ${s}.js_streams(name, config, created, last_seq, last_ts) VALUES (?, ?, ?, ?, 0)`);
    this.updateConfig = per((s) => `UPDATE ${s}.js_streams SET config = ? WHERE id = ?`);
    this.deleteRow = per((s) => `DELETE FROM ${s}.js_streams WHERE id = ?`);
  }

  /**
   * Opens the store, loads the streams and their consumers and starts answering `$JS.API`.
   * Throws when the store cannot be opened (the server must not start half-enabled).
   */
  static start(o: JetStreamStartOptions): JetStream {
    const dir = join(o.options.storeDir, 'jetstream');
    const settings = storeSettings(o.options, o.profile);
    const db = openDatabase(join(dir, DB_FILE), settings);
    let js: JetStream;
    try {
      applyMigrations(db, 'jetstream', JETSTREAM_MIGRATIONS);
      db.exec("ATTACH DATABASE ':memory:' AS mem");
      db.exec(MEM_SCHEMA);
      db.exec(CONSUMER_SCHEMA);
      db.exec(originSchema('main'));
      db.exec(originSchema('mem'));
      js = new JetStream(o, db, dir, settings);
    } catch (err) {
      db.close();
      throw err;
    }
    js.logStart(settings);
    registerStreamApi(js);
    registerConsumerApi(js);
    // Restoring a stream reads its whole table (Stream.loadState: counts, bytes, subjects). With
    // the full cache_size those pages stay cached, and even once SQLite lets them go malloc keeps
    // the memory, so an idle server would hold up to cache_size more RSS after every restart. A
    // small cache for the scan reuses the same few pages; publishes and reads grow it again.
    db.pragma(`cache_size = ${settings.cacheSize < 0 ? Math.max(Math.trunc(settings.cacheSize), -RESTORE_CACHE_KIB) : Math.min(Math.trunc(settings.cacheSize), RESTORE_CACHE_KIB / 4)}`);
    try {
      js.loadStreams();
    } finally {
      db.pragma(`cache_size = ${Math.trunc(settings.cacheSize)}`);
    }
    js.api.start();
    return js;
  }

  private logStart(settings: StoreSettings): void {
    const o = this.options;
    this.log.info('Starting JetStream');
    this.log.info(`  Max Memory:      ${o.maxMemoryStore} B`);
    this.log.info(`  Max Storage:     ${o.maxFileStore} B`);
    this.log.info(`  Store Directory: "${this.storeDir}"`);
    if (this.domain !== undefined) this.log.info(`  Domain:          ${this.domain}`);
    this.log.info(`  Sync:            ${settings.syncInterval === 'always' ? 'always (FULL before every ack)' : `every ${settings.syncInterval} ms`}`);
    if (settings.commitLingerMs !== undefined) this.log.info(`  Commit linger:   ${settings.commitLingerMs} ms`);
    this.log.info(`  SQLite:          ${pragmaReport(this.db)}`);
  }

  private loadStreams(): void {
    const rows = this.db.prepare('SELECT id, name, config, created, last_seq, last_ts FROM main.js_streams ORDER BY id').all() as StreamRow[];
    for (const row of rows) {
      let cfg: StreamConfig;
      try {
        cfg = storedStreamConfig(row.config);
      } catch (err) {
        this.log.error(`JetStream: stream '${row.name}' has an unreadable config, skipped: ${(err as Error).message}`);
        continue;
      }
      const stream = new Stream(this, row, cfg, this.db);
      this.streams.set(stream.name, stream);
      stream.start();
      restoreConsumers(this, stream);
    }
    if (rows.length > 0) this.log.info(`  Restored ${this.streams.size} stream(s)`);
  }

  // ---- JetStreamRuntime ------------------------------------------------------------------

  inNextCommit(write: (db: Db) => void, done?: (err: Error | null) => void): void {
    this.commit.inNextCommit(write, done);
  }

  publish(subject: string, reply: string, hdrLen: number, raw: Buffer, to?: string): void {
    this.router.publish(
      to === undefined
        ? { subject, reply, hdrLen: hdrLen > 0 ? hdrLen : -1, data: raw }
        : { subject, reply, hdrLen: hdrLen > 0 ? hdrLen : -1, data: raw, to },
      null,
    );
  }

  nowUs(): number {
    return Math.floor((performance.timeOrigin + performance.now()) * 1000);
  }

  nextCid(): number {
    return this.cidSource();
  }

  // ---- streams -------------------------------------------------------------------------

  /** Creates a stream from a checked config; it starts capturing at once. */
  createStream(cfg: StreamConfig): Stream {
    const schema = cfg.storage === 'memory' ? 'mem' : 'main';
    const created = formatTimeUs(this.nowUs());
    const firstSeq = cfg.first_seq ?? 1;
    const row = this.commit.transact(() => {
      const id = Number(this.insertStream[schema].run(cfg.name, JSON.stringify(cfg), created, Math.max(0, firstSeq - 1)).lastInsertRowid);
      MessageTable.create(this.db, schema, id);
      return { id, name: cfg.name, config: JSON.stringify(cfg), created, last_seq: Math.max(0, firstSeq - 1), last_ts: 0 };
    });
    const stream = new Stream(this, row, cfg, this.db);
    this.streams.set(cfg.name, stream);
    stream.start();
    return stream;
  }

  /** Applies a checked update to a stream (its limits take effect at once). */
  updateStream(stream: Stream, cfg: StreamConfig): void {
    const schema = stream.storage === 'memory' ? 'mem' : 'main';
    stream.update(cfg, (c) => this.updateConfig[schema].run(JSON.stringify(c), stream.id));
  }

  /** Deletes a stream, its consumers and its messages. */
  deleteStream(stream: Stream): void {
    this.commit.flushNow();
    for (const c of [...stream.consumers.values()]) {
      try {
        c.stop('stream-deleted');
      } catch (err) {
        this.log.error(`JetStream: stopping consumer '${c.name}' of '${stream.name}': ${(err as Error).message}`);
      }
    }
    stream.consumers.clear();
    stream.stop();
    this.streams.delete(stream.name);
    this.usage.add(stream.storage, -stream.storedBytes());
    const schema = stream.storage === 'memory' ? 'mem' : 'main';
    this.commit.transact(() => {
      this.deleteRow[schema].run(stream.id);
      MessageTable.drop(this.db, schema, stream.id);
      dropOriginPositions(this.db, schema, stream.id);
    });
  }

  /** Bytes reserved by streams' max_bytes of one storage type (nats-server's reservations). */
  reserved(storage: StorageType, except?: Stream): number {
    let n = 0;
    for (const s of this.streams.values()) {
      if (s === except || s.storage !== storage) continue;
      const mb = s.config().max_bytes;
      if (mb > 0) n += mb;
    }
    return n;
  }

  stats(): JetStreamStats {
    let consumers = 0;
    let messages = 0;
    let bytes = 0;
    for (const s of this.streams.values()) {
      consumers += s.consumers.size;
      messages += s.messages();
      bytes += s.storedBytes();
    }
    return {
      memory: this.usage.memory,
      storage: this.usage.file,
      reservedMemory: this.reserved('memory'),
      reservedStorage: this.reserved('file'),
      streams: this.streams.size,
      consumers,
      messages,
      bytes,
      api: { ...this.api.counters },
    };
  }

  /**
   * Shutdown (SIGTERM): stop answering, commit what is queued, stop consumers (they persist
   * their state), checkpoint and close the database.
   */
  shutdown(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.api.stop();
    try {
      this.commit.flushNow();
      for (const s of this.streams.values()) {
        for (const c of [...s.consumers.values()]) {
          try {
            c.stop('shutdown');
          } catch (err) {
            this.log.error(`JetStream: stopping consumer '${c.name}': ${(err as Error).message}`);
          }
        }
        s.stop();
      }
      this.commit.close();
    } catch (err) {
      this.log.error(`JetStream: shutdown: ${(err as Error).message}`);
    }
    try {
      this.db.close();
    } catch (err) {
      this.log.error(`JetStream: closing the store: ${(err as Error).message}`);
    }
    this.log.info('JetStream stopped');
  }
}
