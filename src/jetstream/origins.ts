/**
 * The origins of one stream: its mirror, or its sources, each read by an OriginReader, and the
 * positions of the sources kept in the store beside the messages they produced.
 *
 * A mirror's position is its own last sequence (it stores origin sequences as its own), so it
 * needs no row. A source's position is a row of `js_stream_sources`, written in the same
 * transaction as the messages it copied: a crash can never separate the two.
 *
 * Schema (`main` for file streams, the attached `mem` for memory streams):
 *   js_stream_sources(stream_id, source, last_seq)  PRIMARY KEY (stream_id, source)
 *     stream_id  js_streams.id of the stream that copies
 *     source     the source entry's identity: `<name>[:<api hash>][ <filter>]`
 *     last_seq   last origin sequence handled (stored, skipped or found duplicate)
 */
import type { Database as Db, Statement } from 'better-sqlite3';
import { OriginReader, type OriginSink, type OriginTag } from './origin-reader.js';
import { originSpecs, type OriginSpec } from './stream-origin.js';
import type { ApiError, JetStreamRuntime, StreamConfig, StreamSource } from './types.js';

export function originSchema(schema: 'main' | 'mem'): string {
  return `CREATE TABLE IF NOT EXISTS ${schema}.js_stream_sources (
  stream_id INTEGER NOT NULL,
  source TEXT NOT NULL,
  last_seq INTEGER NOT NULL,
  PRIMARY KEY (stream_id, source)
) WITHOUT ROWID`;
}

/** Forget a deleted stream's source positions (inside the transaction that drops the stream). */
export function dropOriginPositions(db: Db, schema: 'main' | 'mem', streamId: number): void {
  db.prepare(`DELETE FROM ${schema}.js_stream_sources WHERE stream_id = ?`).run(streamId);
}

export class StreamOrigins {
  private readers: OriginReader[] = [];
  private entries: StreamSource[] = [];
  private readonly load: Statement;
  private readonly save: Statement;
  /** Source positions as last written. */
  private readonly saved = new Map<OriginReader, number>();
  private started = false;

  constructor(
    private readonly rt: JetStreamRuntime & { nextCid(): number },
    private readonly sink: OriginSink,
    db: Db,
    schema: 'main' | 'mem',
    private readonly streamId: number,
  ) {
    this.load = db.prepare(`SELECT source, last_seq FROM ${schema}.js_stream_sources WHERE stream_id = ?`);
    this.save = db.prepare(
      `INSERT INTO ${schema}.js_stream_sources(stream_id, source, last_seq) VALUES (?, ?, ?)
       ON CONFLICT(stream_id, source) DO UPDATE SET last_seq = excluded.last_seq`,
    );
  }

  get empty(): boolean {
    return this.readers.length === 0;
  }

  /**
   * Take the config's mirror / sources: readers of entries that are gone stop, new ones start
   * from their stored position, changed ones restart from theirs. `lastSeq` is the stream's.
   */
  configure(cfg: StreamConfig, lastSeq: number): void {
    const specs = originSpecs(cfg);
    const entries = cfg.mirror !== undefined ? [cfg.mirror] : [...(cfg.sources ?? [])];
    const old = new Map<string, { reader: OriginReader; entry: StreamSource }>();
    for (let i = 0; i < this.readers.length; i++) old.set(this.readers[i]!.spec.key, { reader: this.readers[i]!, entry: this.entries[i]! });
    let positions: Map<string, number> | null = null;
    const readers: OriginReader[] = [];
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!;
      const prev = old.get(spec.key);
      if (prev !== undefined && JSON.stringify(prev.entry) === JSON.stringify(entries[i])) {
        readers.push(prev.reader);
        old.delete(spec.key);
        continue;
      }
      let position: number;
      if (prev !== undefined) {
        position = prev.reader.position;
        this.stopReader(prev.reader);
        old.delete(spec.key);
      } else if (spec.kind === 'mirror') {
        position = lastSeq;
      } else {
        positions ??= this.storedPositions();
        position = positions.get(spec.key) ?? 0;
      }
      const reader = new OriginReader(this.rt, this.sink, spec, position);
      this.saved.set(reader, position);
      readers.push(reader);
      if (this.started) reader.start();
    }
    for (const { reader } of old.values()) this.stopReader(reader);
    this.readers = readers;
    this.entries = entries;
  }

  private storedPositions(): Map<string, number> {
    const out = new Map<string, number>();
    for (const row of this.load.all(this.streamId) as { source: string; last_seq: number }[]) out.set(row.source, row.last_seq);
    return out;
  }

  private stopReader(r: OriginReader): void {
    r.stop();
    this.saved.delete(r);
  }

  start(): void {
    this.started = true;
    for (const r of this.readers) r.start();
  }

  stop(): void {
    this.started = false;
    for (const r of this.readers) r.stop();
  }

  // ---- inside and after the stream's transactions --------------------------------------------

  processed(tag: OriginTag, refusal: ApiError | null): void {
    tag.reader.processedMsg(tag, refusal);
  }

  /** Write the sources' positions that moved (inside the open transaction). */
  persist(): void {
    for (const r of this.readers) {
      if (r.spec.kind !== 'source') continue;
      const pos = r.pendingPosition;
      if (pos === this.saved.get(r)) continue;
      this.save.run(this.streamId, r.spec.key, pos);
    }
  }

  committed(err: Error | null): void {
    for (const r of this.readers) {
      r.committedTx(err);
      if (r.spec.kind === 'source') this.saved.set(r, r.position);
    }
  }

  /** `mirror` or `sources` for stream info. */
  info(): Record<string, unknown> {
    if (this.readers.length === 0) return {};
    const blocks = this.readers.map((r, i) => r.info(this.entries[i]!.external));
    return this.readers[0]!.spec.kind === 'mirror' ? { mirror: blocks[0] } : { sources: blocks };
  }

  /** The specs being read (tests, diagnostics). */
  specs(): OriginSpec[] {
    return this.readers.map((r) => r.spec);
  }
}
