/**
 * In-memory bookkeeping a stream keeps beside its table so the publish path never counts or
 * sums over SQLite: per-subject counts and last sequences, and the duplicate window.
 */

/** One subject's stored messages: how many, and the newest sequence. */
export class SubjectState {
  constructor(
    public n: number,
    public last: number,
  ) {}
}

/** Where an id was stored, and when (the time tells a re-armed id from its expired first entry). */
class DedupeEntry {
  constructor(
    readonly seq: number,
    readonly tsUs: number,
  ) {}
}

/**
 * Nats-Msg-Id -> sequence for the duplicate window. Ids expire in arrival order, so a FIFO of
 * (id, time) beside the map expires them in O(1) amortised, without timers.
 */
export class DedupeWindow {
  private readonly entries = new Map<string, DedupeEntry>();
  private ids: string[] = [];
  private times: number[] = [];
  private head = 0;

  /** The sequence stored under `id` within the window ending at `nowUs`, or 0. */
  find(id: string, nowUs: number, windowUs: number): number {
    this.expire(nowUs, windowUs);
    return this.entries.get(id)?.seq ?? 0;
  }

  add(id: string, seq: number, tsUs: number): void {
    this.entries.set(id, new DedupeEntry(seq, tsUs));
    this.ids.push(id);
    this.times.push(tsUs);
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
    this.ids = [];
    this.times = [];
    this.head = 0;
  }

  private expire(nowUs: number, windowUs: number): void {
    const cutoff = nowUs - windowUs;
    const ids = this.ids;
    const times = this.times;
    let h = this.head;
    while (h < ids.length && times[h]! < cutoff) {
      const id = ids[h]!;
      // Only the id's latest entry removes it: an id added again later is still in the window.
      if (this.entries.get(id)?.tsUs === times[h]) this.entries.delete(id);
      h++;
    }
    if (h > 1024 && h * 2 > ids.length) {
      this.ids = ids.slice(h);
      this.times = times.slice(h);
      h = 0;
    }
    this.head = h;
  }
}

/**
 * Bytes stored per storage type across all streams (nats-server's account usage), against the
 * configured max_file_store / max_memory_store.
 */
export class StoreUsage {
  file = 0;
  memory = 0;

  constructor(
    public maxFile: number,
    public maxMemory: number,
  ) {}

  add(storage: 'file' | 'memory', delta: number): void {
    if (storage === 'file') this.file += delta;
    else this.memory += delta;
  }

  /**
   * File usage (in nats-server's record sizes) at which the database file was found full: SQLite's
   * pages take more room than the records, so the file can fill before `maxFile` is reached.
   * From then on that is the limit, until the store restarts (usage falls below it as messages
   * are removed, and publishes resume).
   */
  fullAt = -1;

  /** The database file is full at the current usage. */
  fileFull(): void {
    if (this.fullAt < 0 || this.file < this.fullAt) this.fullAt = this.file;
  }

  /** nats-server refuses a publish once usage is already over the limit (the one that crosses it is kept). */
  exceeded(storage: 'file' | 'memory'): boolean {
    if (storage === 'memory') return this.maxMemory >= 0 && this.memory > this.maxMemory;
    return (this.maxFile >= 0 && this.file > this.maxFile) || (this.fullAt >= 0 && this.file >= this.fullAt);
  }
}

/** Stored size of one message as nats-server accounts it (its file and memory store record sizes). */
export function storedSize(storage: 'file' | 'memory', subjectBytes: number, hdrLen: number, rawLen: number): number {
  if (storage === 'memory') return 16 + subjectBytes + rawLen;
  return 30 + subjectBytes + rawLen + (hdrLen > 0 ? 4 : 0);
}
