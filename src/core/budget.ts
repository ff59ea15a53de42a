/**
 * The process-wide memory budget (DESIGN.md "Memory is a budget, not a hope"). Every byte
 * queued for a reader is charged here; above the high watermark publishers are paused
 * (their sockets stop being read) until writers drain below the low watermark.
 */
export interface Pausable {
  pauseReading(): void;
  resumeReading(): void;
}

export class MemoryBudget {
  private used = 0;
  private readonly paused = new Set<Pausable>();
  private high: number;
  private low: number;
  /** Times publishers were paused because the budget was reached. */
  pauses = 0;

  constructor(limit: number) {
    this.high = Math.floor(limit * 0.9);
    this.low = Math.floor(limit * 0.6);
    this.limit = limit;
  }

  /** The cap on queued bytes. */
  limit: number;

  get bytes(): number {
    return this.used;
  }

  setLimit(limit: number): void {
    this.limit = limit;
    this.high = Math.floor(limit * 0.9);
    this.low = Math.floor(limit * 0.6);
    this.maybeResume();
  }

  charge(n: number): void {
    this.used += n;
  }

  release(n: number): void {
    this.used -= n;
    if (this.paused.size > 0 && this.used <= this.low) this.maybeResume();
  }

  /** True when new inbound work should wait. */
  get exhausted(): boolean {
    return this.used >= this.high;
  }

  /** Pause a publisher until the budget drains. */
  hold(p: Pausable): void {
    if (this.paused.has(p)) return;
    this.paused.add(p);
    this.pauses++;
    p.pauseReading();
  }

  /** A closing connection must not stay in the paused set. */
  forget(p: Pausable): void {
    this.paused.delete(p);
  }

  private maybeResume(): void {
    if (this.used > this.low) return;
    const all = [...this.paused];
    this.paused.clear();
    for (const p of all) p.resumeReading();
  }
}
