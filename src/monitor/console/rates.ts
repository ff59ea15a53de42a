/**
 * What the console needs of the past: per-second message and byte rates of the last five
 * minutes (so a page opened now draws its chart at once), and how much some counters grew in
 * the last ten minutes (slow consumers cut, buffer drops) so a problem fades once it stops.
 * One unref'd 1 s timer reads four counters into preallocated rings: nothing is allocated per
 * second; the ten-minute marks are taken once a minute.
 */

/** Samples kept: one per second for five minutes. */
export const HISTORY_SECONDS = 300;
/** The window "recently" means in the problem sentences. */
export const RECENT_WINDOW_MS = 10 * 60_000;
const MARK_EVERY_MS = 60_000;

/** The router's totals, read each second. */
export interface TrafficCounters {
  readonly inMsgs: number;
  readonly outMsgs: number;
  readonly inBytes: number;
  readonly outBytes: number;
}

/** Per-second rates, oldest first; `end` numbers the newest sample (it grows by one per second). */
export interface RateSeries {
  end: number;
  inMsgs: number[];
  outMsgs: number[];
  inBytes: number[];
  outBytes: number[];
}

export class RateHistory {
  private readonly inMsgs = new Float64Array(HISTORY_SECONDS);
  private readonly outMsgs = new Float64Array(HISTORY_SECONDS);
  private readonly inBytes = new Float64Array(HISTORY_SECONDS);
  private readonly outBytes = new Float64Array(HISTORY_SECONDS);
  /** Samples taken so far; sample k lives at k % HISTORY_SECONDS. */
  private count = 0;
  private last: { at: number; inMsgs: number; outMsgs: number; inBytes: number; outBytes: number };

  constructor(
    private readonly read: () => TrafficCounters,
    now: number,
  ) {
    const c = read();
    this.last = { at: now, inMsgs: c.inMsgs, outMsgs: c.outMsgs, inBytes: c.inBytes, outBytes: c.outBytes };
  }

  /** Takes one sample: the rates since the previous one. */
  sample(now: number): void {
    const c = this.read();
    const l = this.last;
    const secs = Math.max(0.001, (now - l.at) / 1000);
    const i = this.count % HISTORY_SECONDS;
    this.inMsgs[i] = (c.inMsgs - l.inMsgs) / secs;
    this.outMsgs[i] = (c.outMsgs - l.outMsgs) / secs;
    this.inBytes[i] = (c.inBytes - l.inBytes) / secs;
    this.outBytes[i] = (c.outBytes - l.outBytes) / secs;
    l.at = now;
    l.inMsgs = c.inMsgs;
    l.outMsgs = c.outMsgs;
    l.inBytes = c.inBytes;
    l.outBytes = c.outBytes;
    this.count++;
  }

  /** The number of the newest sample (-1 before the first). */
  get end(): number {
    return this.count - 1;
  }

  /** The newest `max` samples (all kept ones by default), rounded to 0.1. */
  series(max = HISTORY_SECONDS): RateSeries {
    const n = Math.min(max, this.count, HISTORY_SECONDS);
    const out: RateSeries = { end: this.count - 1, inMsgs: [], outMsgs: [], inBytes: [], outBytes: [] };
    for (let k = this.count - n; k < this.count; k++) {
      const i = k % HISTORY_SECONDS;
      out.inMsgs.push(round1(this.inMsgs[i]!));
      out.outMsgs.push(round1(this.outMsgs[i]!));
      out.inBytes.push(Math.round(this.inBytes[i]!));
      out.outBytes.push(Math.round(this.outBytes[i]!));
    }
    return out;
  }
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

/**
 * How much named counters grew over the last ten minutes: a mark of their values is kept each
 * minute, and the growth is taken against the oldest mark still inside the window (so it covers
 * nine to ten minutes, never more).
 */
export class RecentGrowth {
  private readonly marks: { at: number; values: ReadonlyMap<string, number> }[] = [];

  constructor(
    private readonly read: () => ReadonlyMap<string, number>,
    now: number,
  ) {
    this.marks.push({ at: now, values: read() });
  }

  /** Called each second; takes a mark when a minute has passed. */
  tick(now: number): void {
    const newest = this.marks[this.marks.length - 1]!;
    if (now - newest.at < MARK_EVERY_MS) return;
    this.marks.push({ at: now, values: this.read() });
    while (this.marks.length > 1 && now - this.marks[0]!.at > RECENT_WINDOW_MS) this.marks.shift();
  }

  /** Growth of `key` from the oldest mark to `current` (a counter unknown then counts from 0). */
  growth(key: string, current: number): number {
    const base = this.marks[0]!.values.get(key) ?? 0;
    return Math.max(0, current - base);
  }
}
