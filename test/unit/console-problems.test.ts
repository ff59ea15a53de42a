/**
 * The console's problem sentences (src/monitor/console/problems.ts): each threshold on both
 * sides, the exact words, and the formatters they (and the page) use. Snapshots are built from
 * plain data: the ConsoleSnapshot type is our own, no peer is imitated.
 */
import { describe, expect, it } from 'vitest';
import type { LeafLinkView } from '../../src/leaf/types.js';
import { formatBytes, formatCount, formatDuration, formatShort } from '../../src/monitor/console/format.js';
import { problems, UPLINK_DOWN_AFTER_MS } from '../../src/monitor/console/problems.js';
import { HISTORY_SECONDS, RateHistory, RecentGrowth } from '../../src/monitor/console/rates.js';
import { uplinkState, type ConsoleSnapshot, type ConsoleStream, type Uplink, type UplinkBuffer } from '../../src/monitor/console/snapshot.js';

const KB = 1024;
const MB = 1024 * KB;
const GB = 1024 * MB;
const MIN = 60_000;
const HOUR = 60 * MIN;

/** A healthy gateway: JetStream, MQTT, one uplink up with an empty buffer. */
function healthy(): ConsoleSnapshot {
  return {
    at: 1_800_000_000_000,
    server: { name: 'edge1', id: 'NEDGE', version: '2.10.0', edgeVersion: '0.1.0', profile: 'pi4-1gb', uptimeSeconds: 3600 },
    traffic: {
      totals: { inMsgs: 10, outMsgs: 10, inBytes: 100, outBytes: 100 },
      rate: { inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0 },
      history: { end: 0, inMsgs: [0], outMsgs: [0], inBytes: [0], outBytes: [0] },
    },
    connections: { nats: 1, websocket: 0, mqtt: 1, leaf: 1, totalAccepted: 3 },
    talkers: [],
    memory: {
      rss: 100 * MB,
      heapUsed: 40 * MB,
      heapLimit: 256 * MB,
      budget: 128 * MB,
      ceiling: 512 * MB,
      pending: 0,
      pendingLimit: 64 * MB,
      publisherPauses: 0,
      publisherPausesRecent: 0,
      slowConsumers: 0,
      slowConsumersRecent: 0,
    },
    jetstream: { streams: 0, consumers: 0, messages: 0, store: 10 * MB, storeMax: GB, storeFullAt: -1, disk: { free: 20 * GB, size: 32 * GB }, memory: 0, memoryMax: 64 * MB, list: [] },
    mqtt: { clients: 1, sessions: 1, retained: 0 },
    uplinks: [uplink()],
    liveDrops: { total: 0, recent: 0 },
    recentSeconds: 600,
    problems: [],
  };
}

function buffer(over: Partial<UplinkBuffer> = {}): UplinkBuffer {
  return {
    msgs: 0,
    bytes: 0,
    oldestAgeMs: -1,
    droppedMsgs: 0,
    droppedBytes: 0,
    droppedMsgsRecent: 0,
    droppedBytesRecent: 0,
    replaying: false,
    replayed: 0,
    progress: null,
    ...over,
  };
}

function uplink(over: Partial<Uplink> = {}): Uplink {
  return {
    url: 'nats://hub:7422',
    hub: 'hub',
    state: 'up',
    sinceMs: HOUR,
    rttMs: 2,
    lastError: '',
    connects: 1,
    inMsgs: 0,
    outMsgs: 0,
    buffer: buffer(),
    ...over,
  };
}

function stream(over: Partial<ConsoleStream> = {}): ConsoleStream {
  return { name: 'ORDERS', storage: 'file', messages: 10, bytes: 0, maxBytes: 100 * MB, discard: 'old', consumers: 1, ...over };
}

function with_(change: (s: ConsoleSnapshot) => void): ConsoleSnapshot {
  const s = healthy();
  change(s);
  return s;
}

describe('console problems', () => {
  it('a healthy gateway has none', () => {
    expect(problems(healthy())).toEqual([]);
  });

  it('an uplink down for hours with a backlog: duration, count and size in words', () => {
    const s = with_((x) => {
      x.uplinks = [uplink({ state: 'down', sinceMs: 3 * HOUR + 12 * MIN + 40_000, buffer: buffer({ msgs: 41_000, bytes: Math.round(12.3 * MB), oldestAgeMs: 3 * HOUR }) })];
    });
    expect(problems(s)).toEqual(['Uplink nats://hub:7422 is down for 3 h 12 min with 41 000 messages (12.3 MB) buffered']);
  });

  it('an uplink down is a problem only after UPLINK_DOWN_AFTER_MS; without a backlog it says so without one', () => {
    const at = (ms: number): string[] => problems(with_((x) => (x.uplinks = [uplink({ state: 'down', sinceMs: ms })])));
    expect(UPLINK_DOWN_AFTER_MS).toBe(10_000);
    expect(at(UPLINK_DOWN_AFTER_MS - 1)).toEqual([]);
    expect(at(UPLINK_DOWN_AFTER_MS)).toEqual(['Uplink nats://hub:7422 is down for 10 s']);
    expect(problems(with_((x) => (x.uplinks = [uplink({ state: 'down', sinceMs: 2 * MIN, buffer: null })])))).toEqual(['Uplink nats://hub:7422 is down for 2 min']);
  });

  it('one buffered message is singular; an uplink still connecting says so', () => {
    const s = with_((x) => (x.uplinks = [uplink({ state: 'connecting', sinceMs: 45_000, buffer: buffer({ msgs: 1, bytes: 512 }) })]));
    expect(problems(s)).toEqual(['Uplink nats://hub:7422 is still connecting after 45 s with 1 message (512 B) buffered']);
  });

  it('an uplink up with a backlog (replaying) is not a problem', () => {
    const s = with_((x) => (x.uplinks = [uplink({ buffer: buffer({ msgs: 5000, bytes: MB, replaying: true }) })]));
    expect(problems(s)).toEqual([]);
  });

  it('buffer drops in the recent window are a problem; older drops are not', () => {
    const recent = with_((x) => (x.uplinks = [uplink({ buffer: buffer({ droppedMsgs: 9000, droppedBytes: 9 * MB, droppedMsgsRecent: 1200, droppedBytesRecent: Math.round(3.4 * MB) }) })]));
    expect(problems(recent)).toEqual(['Uplink nats://hub:7422 dropped 1 200 buffered messages (3.4 MB) in the last 10 min: its buffer is full or they expired']);
    const old = with_((x) => (x.uplinks = [uplink({ buffer: buffer({ droppedMsgs: 9000, droppedBytes: 9 * MB }) })]));
    expect(problems(old)).toEqual([]);
  });

  it('live messages dropped on a congested uplink recently', () => {
    expect(problems(with_((x) => (x.liveDrops = { total: 70, recent: 70 })))).toEqual(['70 live messages to uplinks dropped in the last 10 min: the link could not keep up']);
    expect(problems(with_((x) => (x.liveDrops = { total: 70, recent: 0 })))).toEqual([]);
  });

  it('the store at 90 % of max_file_store and over; a full database file', () => {
    const store = (bytes: number, fullAt = -1): string[] => problems(with_((x) => (x.jetstream = { ...x.jetstream!, store: bytes, storeFullAt: fullAt })));
    expect(store(Math.floor(0.899 * GB))).toEqual([]);
    expect(store(Math.ceil(0.92 * GB))).toEqual(['Store 92 % full (942 MB of 1 GB)']);
    expect(store(GB)).toEqual(['Store is full (1 GB of 1 GB): JetStream refuses new messages']);
    expect(store(800 * MB, 800 * MB)).toEqual(['Store is full at 800 MB (the disk file could not grow): JetStream refuses new messages']);
    // Usage fell below the level the file filled at: publishes resume, no problem.
    expect(store(700 * MB, 800 * MB)).toEqual([]);
    // Unlimited store: no percentage to speak of.
    expect(problems(with_((x) => (x.jetstream = { ...x.jetstream!, store: 50 * GB, storeMax: -1 })))).toEqual([]);
  });

  it('the filesystem under the store at 90 % and over, whatever max_file_store says', () => {
    const disk = (free: number, size: number): string[] => problems(with_((x) => (x.jetstream = { ...x.jetstream!, disk: { free, size } })));
    expect(disk(4 * GB, 32 * GB)).toEqual([]);
    expect(disk(3 * GB, 32 * GB)).toEqual(['Disk holding the store is 90 % full (3 GB free of 32 GB)']);
    expect(disk(0, 32 * GB)).toEqual(['Disk holding the store is 100 % full (0 B free of 32 GB)']);
    // Unreadable filesystem: nothing to say.
    expect(problems(with_((x) => (x.jetstream = { ...x.jetstream!, disk: null })))).toEqual([]);
  });

  it('a stream at 90 % of its max_bytes, worded by its discard policy', () => {
    const st = (s: Partial<ConsoleStream>): string[] => problems(with_((x) => (x.jetstream = { ...x.jetstream!, list: [stream(s)] })));
    expect(st({ bytes: 89 * MB })).toEqual([]);
    expect(st({ bytes: 95 * MB, discard: 'new' })).toEqual(['Stream ORDERS is 95 % full (95 MB of 100 MB): new messages are refused at the limit']);
    expect(st({ bytes: 100 * MB, discard: 'old' })).toEqual(['Stream ORDERS is 100 % full (100 MB of 100 MB): the oldest messages are removed to make room']);
    expect(st({ bytes: 5 * GB, maxBytes: -1 })).toEqual([]);
  });

  it('RSS at 85 % of the ceiling; no ceiling, no problem', () => {
    expect(problems(with_((x) => (x.memory.rss = 470 * MB)))).toEqual(['RSS 470 MB is near the ceiling of 512 MB']);
    expect(problems(with_((x) => (x.memory.rss = 435 * MB)))).toEqual([]);
    expect(problems(with_((x) => ((x.memory.rss = 2 * GB), (x.memory.ceiling = null))))).toEqual([]);
  });

  it('bytes queued for readers near max_pending_total; publisher pauses recently', () => {
    expect(problems(with_((x) => (x.memory.pending = 52 * MB)))).toEqual(['52 MB queued for slow readers, near the limit of 64 MB: publishers get paused']);
    expect(problems(with_((x) => (x.memory.pending = 51 * MB)))).toEqual([]);
    expect(problems(with_((x) => ((x.memory.publisherPauses = 9), (x.memory.publisherPausesRecent = 3))))).toEqual([
      'Publishers were paused 3 times in the last 10 min because readers fell behind',
    ]);
  });

  it('slow consumers cut recently, singular and plural; none recently is no problem', () => {
    expect(problems(with_((x) => ((x.memory.slowConsumers = 40), (x.memory.slowConsumersRecent = 12))))).toEqual(['12 slow consumers cut in the last 10 min']);
    expect(problems(with_((x) => ((x.memory.slowConsumers = 1), (x.memory.slowConsumersRecent = 1))))).toEqual(['1 slow consumer cut in the last 10 min']);
    expect(problems(with_((x) => (x.memory.slowConsumers = 40)))).toEqual([]);
  });

  it('several at once, uplinks first', () => {
    const s = with_((x) => {
      x.memory.slowConsumersRecent = 2;
      x.memory.rss = 500 * MB;
      x.uplinks = [uplink({ state: 'down', sinceMs: 5 * MIN })];
    });
    expect(problems(s)).toEqual(['Uplink nats://hub:7422 is down for 5 min', 'RSS 500 MB is near the ceiling of 512 MB', '2 slow consumers cut in the last 10 min']);
  });
});

describe('console number formats', () => {
  it('counts, short rates, bytes and durations', () => {
    expect([0, 999, 1000, 41_000, 1_234_567, -5000].map(formatCount)).toEqual(['0', '999', '1 000', '41 000', '1 234 567', '-5 000']);
    expect([0, 7.25, 950, 1234, 12_345, 999_999, 5_600_000].map(formatShort)).toEqual(['0', '7.3', '950', '1.23k', '12.3k', '1M', '5.6M']);
    expect([0, 512, 1536, Math.round(12.3 * MB), 921 * MB, GB].map(formatBytes)).toEqual(['0 B', '512 B', '1.5 KB', '12.3 MB', '921 MB', '1 GB']);
    expect([0, 45_000, 2 * MIN, 2 * MIN + 5000, 3 * HOUR + 12 * MIN, 3 * HOUR, 26 * HOUR, -1].map(formatDuration)).toEqual([
      '0 s', '45 s', '2 min', '2 min 5 s', '3 h 12 min', '3 h', '1 d 2 h', '-',
    ]);
    expect(formatBytes(Number.NaN)).toBe('-');
  });

  it('each formatter is self-contained: its source text alone (as the page ships it) gives the same output', () => {
    const samples = [0, 1, 512, 999, 1000, 1536, 41_000, 1_234_567, 12_897_485, 3 * HOUR + 12 * MIN, -7, Number.NaN];
    for (const f of [formatCount, formatShort, formatBytes, formatDuration]) {
      const copy = new Function(`return (${f.toString()});`)() as (n: number) => string;
      expect(samples.map(copy), f.name).toEqual(samples.map(f));
    }
  });
});

describe('console history and the recent window', () => {
  it('rates per second from counter deltas, five minutes kept, newest last', () => {
    const c = { inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0 };
    const h = new RateHistory(() => c, 0);
    expect(h.series().end).toBe(-1);
    for (let i = 1; i <= HISTORY_SECONDS + 20; i++) {
      c.inMsgs += i;
      c.outMsgs += 2 * i;
      c.inBytes += 100;
      h.sample(i * 1000);
    }
    const all = h.series();
    expect(all.end).toBe(HISTORY_SECONDS + 19);
    expect(all.inMsgs.length).toBe(HISTORY_SECONDS);
    expect(all.inMsgs.at(-1)).toBe(HISTORY_SECONDS + 20);
    expect(all.inMsgs[0]).toBe(21);
    expect(all.outMsgs.at(-1)).toBe(2 * (HISTORY_SECONDS + 20));
    expect(all.inBytes.every((v) => v === 100)).toBe(true);
    const tail = h.series(3);
    expect(tail).toEqual({ end: HISTORY_SECONDS + 19, inMsgs: [318, 319, 320], outMsgs: [636, 638, 640], inBytes: [100, 100, 100], outBytes: [0, 0, 0] });
    // A late tick: the rate is per second of the real interval.
    c.inMsgs += 1000;
    h.sample((HISTORY_SECONDS + 22) * 1000);
    expect(h.series(1).inMsgs).toEqual([500]);
  });

  it('growth over the last ten minutes: a counter that stopped growing drops out of it', () => {
    let slow = 0;
    const g = new RecentGrowth(() => new Map([['slow', slow]]), 0);
    slow = 12;
    for (let t = 1000; t <= 5 * MIN; t += 1000) g.tick(t);
    expect(g.growth('slow', slow)).toBe(12);
    for (let t = 5 * MIN + 1000; t <= 16 * MIN; t += 1000) g.tick(t);
    expect(g.growth('slow', slow)).toBe(0);
    slow = 15;
    expect(g.growth('slow', slow)).toBe(3);
    expect(g.growth('unknown', 4)).toBe(4);
  });
});

describe('console uplink state', () => {
  function view(over: Partial<LeafLinkView>): LeafLinkView {
    return {
      name: '', url: 'nats://hub:7422', state: 'connecting', since: new Date(0), account: '$G', remoteAccount: '', ip: '', port: 0, rttMs: -1,
      inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0, connects: 0, lastError: '', subscriptions: () => [], ...over,
    };
  }

  it('connecting only on the very first dial; down once a dial failed or the link was up before', () => {
    expect(uplinkState(view({ state: 'connected', connects: 1 }))).toBe('up');
    expect(uplinkState(view({ state: 'connecting', failedDials: 0 }))).toBe('connecting');
    expect(uplinkState(view({ state: 'connecting', failedDials: 3 }))).toBe('down');
    expect(uplinkState(view({ state: 'disconnected', failedDials: 1 }))).toBe('down');
    expect(uplinkState(view({ state: 'connecting', connects: 2, failedDials: 0 }))).toBe('down');
  });
});
