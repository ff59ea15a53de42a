/**
 * The gateway console: a live status page at the monitoring port's base path, fed by
 * Server-Sent Events from `<base>/events`. It keeps five minutes of per-second rates (so a
 * page opened now draws them at once) and ten minutes of growth of a few counters (so a
 * problem such as "slow consumers cut" fades once it stops).
 */
import { statfsSync } from 'node:fs';
import type { JetStream } from '../../jetstream/index.js';
import type { LeafLinkView } from '../../leaf/types.js';
import type { MonitorServer } from '../http-server.js';
import type { MetricsSource } from '../metrics.js';
import type { ConnectionView } from '../source.js';
import { SnapshotStreams } from './events.js';
import { consolePage } from './page.js';
import { problems } from './problems.js';
import { HISTORY_SECONDS, RateHistory, RECENT_WINDOW_MS, RecentGrowth, type TrafficCounters } from './rates.js';
import { buildSnapshot, growthCounters, type ConsoleSnapshot, type DiskUsage } from './snapshot.js';
import { consoleStreams } from './streams.js';

export type { ConsoleSnapshot } from './snapshot.js';

/** What the console reads from the running server. */
export interface ConsoleSource {
  /** The /metrics snapshot (info, uptime, connections by kind, memory, JetStream and MQTT totals). */
  metrics(): MetricsSource;
  /** The router's message and byte totals (read every second: must be cheap). */
  traffic(): TrafficCounters;
  /** Open NATS, WebSocket and MQTT connections. */
  connections(): Iterable<ConnectionView>;
  /** One view per configured leafnode remote. */
  leafLinks(): readonly LeafLinkView[];
  jetstream(): JetStream | null;
}

export class GatewayConsole {
  readonly events: SnapshotStreams;
  private readonly history: RateHistory;
  private readonly recent: RecentGrowth;
  private timer: NodeJS.Timeout | null;

  constructor(
    private readonly source: ConsoleSource,
    now = Date.now(),
  ) {
    this.history = new RateHistory(() => source.traffic(), now);
    this.recent = new RecentGrowth(() => growthCounters(source.metrics(), source.leafLinks()), now);
    this.events = new SnapshotStreams((n) => this.snapshot(n));
    this.timer = setInterval(() => {
      const t = Date.now();
      this.history.sample(t);
      this.recent.tick(t);
    }, 1000);
    this.timer.unref();
  }

  /** The state now, with the newest `historySamples` seconds of rates (all five minutes by default). */
  snapshot(historySamples = HISTORY_SECONDS, now = Date.now()): ConsoleSnapshot {
    const s = this.source;
    const js = s.jetstream();
    const snap = buildSnapshot(
      {
        metrics: s.metrics(),
        connections: s.connections(),
        leafLinks: s.leafLinks(),
        streams: js === null ? [] : consoleStreams(js),
        storeFullAt: js === null ? -1 : js.usage.fullAt,
        disk: js === null ? null : diskUsage(js.storeDir),
        history: this.history.series(historySamples),
        recent: this.recent,
        recentSeconds: RECENT_WINDOW_MS / 1000,
      },
      now,
    );
    snap.problems = problems(snap);
    return snap;
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.events.close();
  }
}

function diskUsage(dir: string): DiskUsage | null {
  try {
    const st = statfsSync(dir);
    return { free: st.bavail * st.bsize, size: st.blocks * st.bsize };
  } catch {
    return null;
  }
}

/** Serves the console at the monitor's base path and its events at `<base>/events`. */
export function attachConsole(monitor: MonitorServer, source: ConsoleSource): GatewayConsole {
  const c = new GatewayConsole(source);
  monitor.setIndexPage(consolePage);
  monitor.streamRoute('/events', c.events.handler);
  monitor.onClose(() => c.close());
  return c;
}
