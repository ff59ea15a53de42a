/**
 * Opening the SQLite store: one better-sqlite3 connection per database file, the startup
 * pragmas of sqlite-store.md §8 taken from the firmware profile, and versioned migrations.
 *
 * The connection lives on the main thread for the life of the process (sqlite-store.md §3.4):
 * every write goes through the group commit (group-commit.ts), reads are synchronous lookups.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

interface SqliteDriver {
  readonly open: typeof BetterSqlite3;
  /** The addon's path, so better-sqlite3 skips `bindings` and its search of a dozen places. */
  readonly addon: string | undefined;
}

let driver: SqliteDriver | undefined;

/**
 * better-sqlite3 on the first open, not at startup: a server without JetStream never maps the
 * addon (about 5 MiB of RSS, 20 ms of start), and require() skips the ESM loader's parse of a
 * CommonJS package's exports.
 */
function sqliteDriver(): SqliteDriver {
  if (driver === undefined) {
    const require = createRequire(import.meta.url);
    const open = require('better-sqlite3') as typeof BetterSqlite3;
    const addon = join(dirname(require.resolve('better-sqlite3/package.json')), 'build', 'Release', 'better_sqlite3.node');
    driver = { open, addon: existsSync(addon) ? addon : undefined };
  }
  return driver;
}

export interface StoreSettings {
  /** PRAGMA cache_size: negative = KiB, as the profiles give it. */
  cacheSize: number;
  /** 'always': synchronous=FULL, every commit reaches the media before its acks; N ms: NORMAL + a durable sync every N ms. */
  syncInterval: 'always' | number;
  /** WAL size the store aims to stay under (journal_size_limit; checkpoints keep it below). */
  walMaxBytes: number;
  /** Hard cap on the main database file in bytes (PRAGMA max_page_count); 0 = none. */
  maxFileBytes: number;
  /** Least ms between commits under load (GroupCommitOptions.lingerMs); unset = the group commit's default. */
  commitLingerMs?: number;
}

/** Defaults when neither the config nor a profile says otherwise. */
export const DEFAULT_STORE_SETTINGS: StoreSettings = {
  cacheSize: -16000,
  syncInterval: 2 * 60_000,
  walMaxBytes: 4 * 1024 * 1024,
  maxFileBytes: 0,
};

/** One schema change of a component: applied once, in version order, inside a transaction. */
export interface Migration {
  readonly version: number;
  /** What the step does and why (kept for the reader of the schema, not executed). */
  readonly description: string;
  readonly sql: string;
  /** Work SQL alone cannot say (per-table steps), run after `sql` in the same transaction. */
  readonly run?: (db: Db) => void;
}

export const PAGE_SIZE = 4096;

/**
 * The component schema versions, one row per component (jetstream, mqtt, uplink...), so each part
 * of the store migrates on its own.
 */
const SCHEMA_VERSION_TABLE = `CREATE TABLE IF NOT EXISTS schema_version(
  component TEXT PRIMARY KEY,
  version INTEGER NOT NULL
)`;

/**
 * Opens (creating when needed) a database file, or an in-memory database for ':memory:', and
 * applies the startup pragmas in the order sqlite-store.md §8 gives.
 */
export function openDatabase(path: string, settings: StoreSettings): Db {
  const memory = path === ':memory:';
  if (!memory) mkdirSync(dirname(path), { recursive: true });
  const { open: Database, addon } = sqliteDriver();
  const db = new Database(path, addon !== undefined ? { timeout: 5000, nativeBinding: addon } : { timeout: 5000 });
  try {
    // page_size only matters before the first table; 4096 matches flash pages (§4.2).
    db.pragma(`page_size = ${PAGE_SIZE}`);
    if (!memory) db.pragma('journal_mode = WAL');
    // Set explicitly after journal_mode: a fresh WAL file reads back FULL until its first write (§1).
    db.pragma(`synchronous = ${settings.syncInterval === 'always' ? 'FULL' : 'NORMAL'}`);
    // Checkpoints are ours (group-commit.ts): the multi-ms stall moves off random commits (§5).
    db.pragma('wal_autocheckpoint = 0');
    db.pragma(`journal_size_limit = ${Math.max(0, Math.floor(settings.walMaxBytes))}`);
    db.pragma(`cache_size = ${Math.trunc(settings.cacheSize)}`);
    // Small boards keep temp tables on disk (default); the rest keep them in memory (§7).
    if (settings.cacheSize <= -8000) db.pragma('temp_store = MEMORY');
    if (settings.maxFileBytes > 0) db.pragma(`max_page_count = ${Math.max(64, Math.floor(settings.maxFileBytes / PAGE_SIZE))}`);
    db.exec(SCHEMA_VERSION_TABLE);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/** The schema version a component has reached in this database (0 = never migrated). */
export function schemaVersion(db: Db, component: string, schema = 'main'): number {
  const row = db.prepare(`SELECT version FROM ${schema}.schema_version WHERE component = ?`).get(component) as
    | { version: number }
    | undefined;
  return row?.version ?? 0;
}

/**
 * Applies the component's migrations above its recorded version, each in its own transaction,
 * and records the new version with it. Returns the version reached.
 */
export function applyMigrations(db: Db, component: string, migrations: readonly Migration[], schema = 'main'): number {
  db.exec(SCHEMA_VERSION_TABLE.replace('schema_version', `${schema}.schema_version`));
  let version = schemaVersion(db, component, schema);
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  const record = db.prepare(`INSERT INTO ${schema}.schema_version(component, version) VALUES(?, ?)
    ON CONFLICT(component) DO UPDATE SET version = excluded.version`);
  for (const m of sorted) {
    if (m.version <= version) continue;
    db.transaction(() => {
      db.exec(m.sql);
      m.run?.(db);
      record.run(component, m.version);
    })();
    version = m.version;
  }
  return version;
}

/** The pragmas as the database reports them back, for the startup log (§1: read them back). */
export function pragmaReport(db: Db): string {
  const get = (p: string): unknown => db.pragma(p, { simple: true });
  return (
    `journal_mode=${String(get('journal_mode'))} synchronous=${String(get('synchronous'))} ` +
    `cache_size=${String(get('cache_size'))} wal_autocheckpoint=${String(get('wal_autocheckpoint'))} ` +
    `journal_size_limit=${String(get('journal_size_limit'))} page_size=${String(get('page_size'))} ` +
    `sqlite=${String(db.prepare('SELECT sqlite_version()').pluck().get())}`
  );
}

/** SQLITE_FULL: the disk, or the max_page_count cap, is full. */
export function isStoreFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_FULL';
}
