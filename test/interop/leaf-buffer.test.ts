/**
 * Store-and-forward of a nats-edge leaf against a real nats-server hub: messages published on the
 * edge while its uplink is down are queued in the edge's SQLite store and replayed in order once
 * the link is back, each with a Nats-Msg-Id so the hub's JetStream stream keeps it once.
 *
 * nats-edge only: nats-server has no store-and-forward (a leaf publish while the link is down
 * reaches local subscribers only and is never sent later), so there is no reference run. The
 * hub is Debian's nats-server with JetStream; the referee is the hub stream `TELE` (`tele.>`,
 * file storage, 2 minute duplicate window) read back with the real JetStream client, and the
 * edge's own /leafz `edge_remotes[0].buffer` counters.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import mqtt from 'mqtt';
import { freePort, makeTempDir, within, type RunningServer } from '../helpers/servers.js';
import { hubLeafz, startHub, stopLeafTestServers, type Hub } from '../helpers/leaf.js';
import {
  edgeBuffer,
  hubClient,
  indexes,
  publishIndexes,
  readStream,
  startEdgeLeaf,
  startTeleHub,
  streamMessages,
  waitFor,
  type EdgeLeafOptions,
  type StoredMsg,
} from '../helpers/leaf-hub.js';

const N = 10_000;
const SUBJECT = 'tele.s1';

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) out.push(i);
  return out;
}

/** '' when equal, else where they first differ (10,000-entry diffs are unreadable). */
function firstDifference(actual: readonly number[], expected: readonly number[]): string {
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (actual[i] !== expected[i]) {
      return `at position ${i}: got ${actual[i]}, expected ${expected[i]} (got around it: ${JSON.stringify(actual.slice(Math.max(0, i - 3), i + 4))})`;
    }
  }
  if (actual.length !== expected.length) return `length ${actual.length}, expected ${expected.length}`;
  return '';
}

/** Stream messages are exactly `expected` (payload = decimal index, bytes exact), each with its own Nats-Msg-Id. */
function expectStored(msgs: readonly StoredMsg[], expected: readonly number[], subject = SUBJECT): void {
  expect(firstDifference(indexes(msgs), expected)).toBe('');
  const badBytes = msgs.findIndex((m, i) => !Buffer.from(m.data).equals(Buffer.from(String(expected[i]))));
  expect(badBytes, 'payload bytes differ').toBe(-1);
  expect(msgs.every((m) => m.subject === subject)).toBe(true);
  const ids = msgs.map((m) => m.msgId);
  expect(ids.filter((id) => id === '').length, 'messages without a Nats-Msg-Id').toBe(0);
  expect(new Set(ids).size, 'distinct Nats-Msg-Ids').toBe(msgs.length);
  // Stream sequences are dense: no message was stored and then left out of what we read.
  expect(msgs.every((m, i) => m.seq === i + 1)).toBe(true);
}

describe('leafnode store-and-forward (nats-edge leaf, nats-server hub with JetStream)', () => {
  const open: NatsConnection[] = [];

  async function client(srv: RunningServer): Promise<NatsConnection> {
    const nc = await connect({ servers: srv.url, reconnect: false });
    open.push(nc);
    return nc;
  }

  async function hubConn(hub: RunningServer): Promise<NatsConnection> {
    const nc = await hubClient(hub);
    open.push(nc);
    return nc;
  }

  /** A hub that has the TELE stream but is down now, and a nats-edge leaf buffering for it. */
  async function hubDownEdgeUp(edge: Partial<EdgeLeafOptions> = {}): Promise<{ hub: Hub; edge: RunningServer; opts: EdgeLeafOptions }> {
    const hub = await startTeleHub();
    await hub.stop('SIGTERM');
    const opts: EdgeLeafOptions = { hubLeafPort: hub.leafPort, storeDir: makeTempDir('nats-edge-leafbuf-'), ...edge };
    return { hub, edge: await startEdgeLeaf(opts), opts };
  }

  /** Waits until the stream holds `n` and the edge's queue is empty and idle; the stream must then hold exactly `n`. */
  async function drained(hubNc: NatsConnection, edge: RunningServer, n: number, timeoutMs = 60000): Promise<void> {
    await waitFor(() => streamMessages(hubNc), (m) => m >= n, timeoutMs, `hub stream TELE holds ${n}`);
    await waitFor(() => edgeBuffer(edge), (b) => b.msgs === 0 && !b.replaying, 20000, 'edge buffer empty and idle');
    expect(await streamMessages(hubNc)).toBe(n);
  }

  afterEach(async () => {
    await Promise.all(open.splice(0).map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close().catch(() => undefined))));
    await stopLeafTestServers();
  });

  it('hub down: 10,000 publishes are queued, then replayed exactly once each, in order, bytes exact, with a Nats-Msg-Id', { timeout: 90000 }, async () => {
    const { hub, edge } = await hubDownEdgeUp();
    const nc = await client(edge);
    await publishIndexes(nc, SUBJECT, 0, N);
    const queued = await waitFor(() => edgeBuffer(edge), (b) => b.msgs === N, 30000, `buffer.msgs = ${N}`);
    expect(queued.state).not.toBe('connected');
    expect(queued.dropped_msgs).toBe(0);
    expect(queued.appended).toBe(N);

    await hub.start();
    const hubNc = await hubConn(hub);
    await drained(hubNc, edge, N);
    expectStored(await readStream(hubNc, N), range(0, N));
    const after = await edgeBuffer(edge);
    expect(after.replayed).toBe(N);
    expect(after.dropped_msgs).toBe(0);
    expect(edge.logs()).not.toMatch(/no interest on the hub/);
  });

  it('nats-edge SIGKILLed while buffering: every message the queue committed is delivered once, in order', { timeout: 90000 }, async () => {
    const { hub, edge, opts } = await hubDownEdgeUp();
    const nc = await client(edge);
    await publishIndexes(nc, SUBJECT, 0, 5000);
    await waitFor(() => edgeBuffer(edge), (b) => b.msgs === 5000, 30000, 'buffer.msgs = 5000');

    // Kill it while the next 5,000 stream in: core publishes carry no ack, so the client's
    // flushes only say the server read them, not that they were committed.
    // The SIGKILL is sent from the flush callback itself, so the client goes on writing the
    // next 500 into a dying socket.
    let killing: Promise<number | null> | undefined;
    const publishing = publishIndexes(nc, SUBJECT, 5000, 5000, 500, (i) => {
      if (i >= 7499 && killing === undefined) killing = edge.stop('SIGKILL');
    });
    const lastFlushed = await within(publishing, 30000, 'the publisher saw its connection close');
    expect(killing, 'the publisher finished before the kill').toBeDefined();
    await killing;

    const edge2 = await startEdgeLeaf(opts);
    const committed = (await edgeBuffer(edge2)).msgs;
    expect(committed).toBeGreaterThanOrEqual(5000);
    expect(committed).toBeLessThanOrEqual(N);

    await hub.start();
    const hubNc = await hubConn(hub);
    await drained(hubNc, edge2, committed);
    // A transaction per event-loop turn, committed in append order: what survived is a prefix.
    expectStored(await readStream(hubNc, committed), range(0, committed));
    console.info(`leaf-buffer kill-while-buffering: client had flushed up to index ${lastFlushed}; ${committed} committed and delivered`);
  });

  it('nats-edge SIGKILLed mid-replay: after its restart the stream holds exactly 10,000, in order (Nats-Msg-Id de-duplication)', { timeout: 120000 }, async () => {
    const { hub, edge, opts } = await hubDownEdgeUp();
    const nc = await client(edge);
    await publishIndexes(nc, SUBJECT, 0, N);
    await waitFor(() => edgeBuffer(edge), (b) => b.msgs === N, 30000, `buffer.msgs = ${N}`);
    await nc.close();

    await hub.start();
    const hubNc = await hubConn(hub);
    const seen = await waitFor(() => streamMessages(hubNc), (m) => m >= N / 4, 30000, 'a quarter replayed', 2);
    await edge.stop('SIGKILL');
    // Only a rough count: the hub may still be storing what the dead link had written.
    await waitFor(() => hubLeafz(hub), (z) => z.leafnodes === 0, 10000, 'hub dropped the leaf link');
    const afterKill = await streamMessages(hubNc);
    expect(seen).toBeLessThan(N);

    // The hub is up, so the restarted edge links and replays at once.
    const edge2 = await startEdgeLeaf(opts);
    await drained(hubNc, edge2, N);
    expectStored(await readStream(hubNc, N), range(0, N));
    const replayed2 = (await edgeBuffer(edge2)).replayed;
    expect(replayed2, 'the kill came after the replay had finished: nothing was tested').toBeGreaterThan(0);
    console.info(`leaf-buffer kill-mid-replay: stream had ${seen} when seen, about ${afterKill} after the kill; ${replayed2} acknowledged after the restart (about ${afterKill + replayed2 - N} of them resent and de-duplicated by the hub)`);
  });

  it('the hub SIGKILLed mid-replay and restarted: exactly 10,000 in order, no duplicates', { timeout: 120000 }, async () => {
    const { hub, edge } = await hubDownEdgeUp();
    const nc = await client(edge);
    await publishIndexes(nc, SUBJECT, 0, N);
    await waitFor(() => edgeBuffer(edge), (b) => b.msgs === N, 30000, `buffer.msgs = ${N}`);

    await hub.start();
    let hubNc = await hubConn(hub);
    const seen = await waitFor(() => streamMessages(hubNc), (m) => m >= N / 4, 30000, 'a quarter replayed', 2);
    await hub.stop('SIGKILL');
    expect(seen).toBeLessThan(N);
    const left = (await edgeBuffer(edge)).msgs;
    expect(left, 'the hub died after the replay had finished: nothing was tested').toBeGreaterThan(0);

    await hub.start();
    hubNc = await hubConn(hub);
    await drained(hubNc, edge, N);
    expectStored(await readStream(hubNc, N), range(0, N));
    const b = await edgeBuffer(edge);
    console.info(`leaf-buffer hub-killed-mid-replay: stream had ${seen} when seen; ${left} queued after the kill; edge replayed ${b.replayed} in all`);
  });

  it('MQTT QoS 1 publish while the hub is down: PUBACK once committed (survives a SIGKILL), then it reaches the hub stream', { timeout: 60000 }, async () => {
    const mqttPort = await freePort();
    const { hub, edge, opts } = await hubDownEdgeUp({ mqttPort });
    const mc = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'leafbuf-m1', clean: true, reconnectPeriod: 0, protocolVersion: 4 });
    try {
      // mqtt.js settles a QoS 1 publish when its PUBACK arrives.
      await within(mc.publishAsync('tele/m1', Buffer.from('m1-payload'), { qos: 1 }), 10000, 'PUBACK');
    } finally {
      await mc.endAsync(true).catch(() => undefined);
    }
    // The PUBACK promised the message is stored: a crash right after it must not lose it.
    await edge.stop('SIGKILL');
    const edge2 = await startEdgeLeaf(opts);
    expect((await edgeBuffer(edge2)).msgs).toBe(1);

    await hub.start();
    const hubNc = await hubConn(hub);
    await drained(hubNc, edge2, 1);
    const [m] = await readStream(hubNc, 1);
    expect(m?.subject).toBe('tele.m1');
    expect(Buffer.from(m?.data ?? []).toString('latin1')).toBe('m1-payload');
    expect(m?.msgId).not.toBe('');
  });

  it('overflow of a 64KB buffer: the oldest are dropped, /leafz counts them, and the newest arrive in order', { timeout: 60000 }, async () => {
    const maxBytes = 64 * 1024;
    const { hub, edge } = await hubDownEdgeUp({ maxBytes: '64KB' });
    const nc = await client(edge);
    const total = 2000;
    const pad = 100;
    // What max_bytes counts per message: subject + reply + payload.
    const size = SUBJECT.length + pad;
    for (let i = 0; i < total; i++) nc.publish(SUBJECT, String(i).padStart(pad, '0'));
    await nc.flush();
    const b = await waitFor(() => edgeBuffer(edge), (v) => v.appended === total, 30000, `buffer.appended = ${total}`);
    expect(b.dropped_msgs).toBeGreaterThan(0);
    expect(b.msgs + b.dropped_msgs).toBe(total);
    expect(b.bytes).toBe(b.msgs * size);
    expect(b.bytes).toBeLessThanOrEqual(maxBytes);
    // Only as many are dropped as needed: one more would not have fitted.
    expect(b.bytes + size).toBeGreaterThan(maxBytes);
    expect(b.dropped_bytes).toBe(b.dropped_msgs * size);

    await hub.start();
    const hubNc = await hubConn(hub);
    await drained(hubNc, edge, b.msgs);
    const msgs = await readStream(hubNc, b.msgs);
    expect(firstDifference(indexes(msgs), range(total - b.msgs, total))).toBe('');
    expect(msgs.every((m) => m.data.length === pad)).toBe(true);
  });

  it('once the backlog is replayed, publishes flow live: the hub stream gets them promptly and the queue is not used', { timeout: 60000 }, async () => {
    const { hub, edge } = await hubDownEdgeUp();
    const nc = await client(edge);
    await publishIndexes(nc, SUBJECT, 0, 100);
    await waitFor(() => edgeBuffer(edge), (b) => b.msgs === 100, 10000, 'buffer.msgs = 100');
    await hub.start();
    const hubNc = await hubConn(hub);
    await drained(hubNc, edge, 100);
    const before = await edgeBuffer(edge);

    const t0 = Date.now();
    await publishIndexes(nc, SUBJECT, 100, 100);
    await waitFor(() => streamMessages(hubNc), (m) => m >= 200, 5000, 'live messages stored by the hub stream');
    const liveMs = Date.now() - t0;
    const after = await edgeBuffer(edge);
    expect(after.msgs).toBe(0);
    expect(after.appended, 'live messages went through the queue').toBe(before.appended);
    expect(after.state).toBe('connected');
    expect(await streamMessages(hubNc)).toBe(200);
    const msgs = await readStream(hubNc, 200);
    expect(firstDifference(indexes(msgs), range(0, 200))).toBe('');
    console.info(`leaf-buffer live-after-replay: 100 live messages stored by the hub in ${liveMs} ms; Nats-Msg-Id on live ones: ${msgs.slice(100).filter((m) => m.msgId !== '').length}`);
  });

  it('a subject with no hub stream: buffered messages reach a plain hub subscriber after the link is up, in order', { timeout: 60000 }, async () => {
    // No stream captures tele.core: no PubAck ever comes, so the replay falls back to core sends.
    const hub = await startHub({ jetstream: true });
    await hub.stop('SIGTERM');
    const edge = await startEdgeLeaf({ hubLeafPort: hub.leafPort, storeDir: makeTempDir('nats-edge-leafbuf-') });
    const nc = await client(edge);
    const count = 1000;
    await publishIndexes(nc, 'tele.core', 0, count);
    await waitFor(() => edgeBuffer(edge), (b) => b.msgs === count, 10000, `buffer.msgs = ${count}`);

    // The subscriber's interest must be on the hub before the link comes up, or the replay finds
    // nobody wanting tele.core and drops the backlog (as nats-server drops unwanted messages).
    // A stopped edge cannot dial: start the hub and subscribe while it is frozen.
    process.kill(edge.pid, 'SIGSTOP');
    const arrived: Msg[] = [];
    let wake: (() => void) | undefined;
    let want = count;
    try {
      await hub.start();
      const hubNc = await hubConn(hub);
      hubNc.subscribe('tele.core', {
        callback: (err, m) => {
          if (err !== null) return;
          arrived.push(m);
          if (arrived.length >= want || m.string() === 'end') wake?.();
        },
      });
      await hubNc.flush();
      const all = new Promise<void>((r) => (wake = r));
      process.kill(edge.pid, 'SIGCONT');
      await within(all, 30000, `${count} buffered messages at the hub subscriber`);
    } finally {
      process.kill(edge.pid, 'SIGCONT');
    }
    const idx = arrived.map((m) => Number(m.string()));
    const withReply = arrived.filter((m) => m.reply !== undefined && m.reply !== '').length;
    console.info(`leaf-buffer core: ${idx.length} arrived for ${count} buffered; ${withReply} carried a reply subject (the replay's PubAck probe)`);
    expect(firstDifference(idx, range(0, count))).toBe('');

    // Delivered, so the queue must empty: the replay removes core messages once the socket wrote them.
    await waitFor(() => edgeBuffer(edge), (b) => b.msgs === 0 && !b.replaying, 10000, 'edge buffer empty and idle');
    // A live marker behind the backlog on the same link: once it arrives, nothing else is in flight.
    want = Number.MAX_SAFE_INTEGER;
    const ended = new Promise<void>((r) => (wake = r));
    nc.publish('tele.core', 'end');
    await nc.flush();
    await within(ended, 10000, 'end marker at the hub subscriber');
    expect(arrived.map((m) => m.string()).slice(count)).toEqual(['end']);
    expect(edge.logs()).not.toMatch(/no interest on the hub/);
  });
});
