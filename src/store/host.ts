import type { Database } from 'better-sqlite3';

/**
 * What a component that keeps its own tables in the one database (MQTT sessions, the uplink
 * buffer) gets from the store's owner: the connection for reads, and the group commit for writes.
 */
export interface StoreHost {
  readonly db: Database;
  /** Run `write` inside the next group-commit transaction; `done` once it committed (or failed). */
  inNextCommit(write: (db: Database) => void, done?: (err: Error | null) => void): void;
}
