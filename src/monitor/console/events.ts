/**
 * GET /events: Server-Sent Events, one snapshot as soon as a page connects and then one a
 * second, serialized once for every open page. The 1 s timer runs only while at least one
 * page listens; a page that stops reading is skipped until it catches up, and one that leaves
 * takes its place in the set with it. `?once=1` answers a single snapshot as JSON.
 */
import type { EndpointResult, ResponseSink, StreamingResult } from '../http-server.js';
import type { ConsoleSnapshot } from './snapshot.js';

/** Pages that may listen at once (each costs a socket and a share of the 1 s snapshot). */
export const MAX_EVENT_STREAMS = 32;
/** A page with this much not yet read is skipped (its browser tab sleeps, say). */
const BEHIND_BYTES = 256 * 1024;
/** Seconds of rate history sent after the first event (the page merges by sample number). */
const TAIL_SAMPLES = 10;
/** How soon a browser reconnects after losing the stream. */
const RETRY_MS = 2000;

export class SnapshotStreams {
  private readonly sinks = new Set<ResponseSink>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    /** A snapshot with `historySamples` seconds of rate history. */
    private readonly snapshot: (historySamples: number | undefined) => ConsoleSnapshot,
    private readonly periodMs = 1000,
  ) {}

  /** Pages listening now. */
  get open(): number {
    return this.sinks.size;
  }

  readonly handler = (query: URLSearchParams): EndpointResult | StreamingResult => {
    if (query.get('once') === '1') return { status: 200, body: this.snapshot(undefined), compact: true };
    if (this.sinks.size >= MAX_EVENT_STREAMS) return { status: 503, body: 'too many console pages open\n' };
    return { contentType: 'text/event-stream; charset=utf-8', open: (sink) => this.add(sink) };
  };

  close(): void {
    this.sinks.clear();
    this.stopTimer();
  }

  private add(sink: ResponseSink): void {
    this.sinks.add(sink);
    sink.onClose(() => {
      this.sinks.delete(sink);
      if (this.sinks.size === 0) this.stopTimer();
    });
    sink.write(`retry: ${RETRY_MS}\ndata: ${JSON.stringify(this.snapshot(undefined))}\n\n`);
    if (this.timer === null) {
      this.timer = setInterval(() => this.broadcast(), this.periodMs);
      this.timer.unref();
    }
  }

  private broadcast(): void {
    if (this.sinks.size === 0) {
      this.stopTimer();
      return;
    }
    const frame = `data: ${JSON.stringify(this.snapshot(TAIL_SAMPLES))}\n\n`;
    for (const sink of this.sinks) if (sink.queued < BEHIND_BYTES) sink.write(frame);
  }

  private stopTimer(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
