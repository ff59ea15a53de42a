// Parent side of the MQTT load generator: forks lib/mqtt-worker.mjs processes (the IPC
// plumbing of lib/loadgen.mjs), starts them together, watches for stalls, turns their reports
// into figures.
import { fileURLToPath } from 'node:url';
import { WorkerProc, watchdog } from './loadgen.mjs';
import { readCpuSeconds, readRss, readRunqueueWaitSeconds, settledRss } from './rss.mjs';

const WORKER = fileURLToPath(new URL('./mqtt-worker.mjs', import.meta.url));

const tagOf = () => Math.random().toString(36).slice(2, 8);
/** Clients that connect and leave before the idle-memory baseline is read. */
const WARMUP_CLIENTS = 20;

/**
 * 1 publisher -> 1 subscriber on one topic at `qos` (0 or 1), `total` messages of
 * `payloadSize` bytes. The publisher stays at most `window` messages ahead of the count the
 * subscriber reports every `ackEvery` messages; at QoS 1 it also keeps at most `inflight`
 * PUBLISHes without PUBACK. Rate = messages counted by the subscriber / (subscriber done -
 * first publish), one clock (hrtime, CLOCK_MONOTONIC) across processes.
 */
export async function runMqttPubSub(opts) {
  const { broker, qos, total } = opts;
  const tag = tagOf();
  const topic = `bench/${tag}/data`;
  const ackTopic = `bench/${tag}/ack`;
  const workers = [];
  let count = 0;
  try {
    const sub = new WorkerProc({ role: 'sub', port: broker.port, clientId: `bench-${tag}-sub`, topic, qos, target: total, ackTopic, ackEvery: opts.ackEvery }, WORKER);
    workers.push(sub);
    sub.onProgress = (m) => (count = m.count);
    await sub.next('ready');
    const pub = new WorkerProc(
      {
        role: 'pub', port: broker.port, clientId: `bench-${tag}-pub`, topic, qos, total, ackTopic,
        payloadSize: opts.payloadSize, window: opts.window, inflight: opts.inflight ?? 0, batch: opts.batch ?? 256,
      },
      WORKER,
    );
    workers.push(pub);
    await pub.next('ready');
    const dog = watchdog(() => count, opts.stallMs ?? 10_000, broker, `QoS ${qos} 1->1`);
    const cpu0 = readCpuSeconds(broker.pid);
    const wait0 = readRunqueueWaitSeconds(broker.pid);
    pub.send({ cmd: 'start' });
    let sent;
    let done;
    try {
      [sent, done] = await Promise.race([Promise.all([pub.next('sent'), sub.next('done')]), dog.promise]);
    } catch (err) {
      throw new Error(`${err.message} (subscriber had ${count} of ${total})`);
    } finally {
      dog.stop();
    }
    const cpu1 = readCpuSeconds(broker.pid);
    const wait1 = readRunqueueWaitSeconds(broker.pid);
    sub.send({ cmd: 'finish' });
    const final = await sub.next('final');
    pub.send({ cmd: 'finish' });
    if (final.count !== total) throw new Error(`subscriber counted ${final.count} messages, ${total} were published`);
    const seconds = (Math.max(done.tDone, sent.tSent) - sent.t0) / 1e9;
    return {
      qos,
      messages: total,
      seconds,
      rate: total / seconds,
      serverCpuCores: (cpu1 - cpu0) / seconds,
      serverRunqueueWait: (wait1 - wait0) / seconds,
      publisherCpuCores: sent.cpu / seconds,
      subscriberCpuCores: done.cpu / seconds,
    };
  } finally {
    for (const w of workers) w.kill();
  }
}

/**
 * `sensors` connections each publishing `payloadSize` bytes once a second for `seconds` s at
 * `qos`, one subscriber on `filter` (`#`) at `qos`. Waits up to `drainMs` after the last send
 * for the stragglers, then reports received vs sent, delivery latency and broker CPU.
 */
export async function runSensors(opts) {
  const { broker } = opts;
  const tag = tagOf();
  const prefix = `sensors/${tag}`;
  const workers = [];
  try {
    const sub = new WorkerProc(
      { role: 'sensor-sub', port: broker.port, clientId: `bench-${tag}-all`, filter: opts.filter ?? '#', qos: opts.qos, prefix, capacity: opts.sensors * opts.seconds + 1000 },
      WORKER,
    );
    workers.push(sub);
    let received = 0;
    sub.onProgress = (m) => (received = m.received);
    await sub.next('ready');
    const t0Connect = Date.now();
    const sensors = new WorkerProc(
      { role: 'sensors', port: broker.port, n: opts.sensors, qos: opts.qos, prefix, clientPrefix: `bench-${tag}-s`, payloadSize: opts.payloadSize, seconds: opts.seconds },
      WORKER,
    );
    workers.push(sensors);
    await sensors.next('ready');
    const connectMs = Date.now() - t0Connect;
    const rssBefore = readRss(broker.pid);
    const cpu0 = readCpuSeconds(broker.pid);
    const wall0 = process.hrtime.bigint();
    sensors.send({ cmd: 'start' });
    const sent = await sensors.next('sent');
    const cpu1 = readCpuSeconds(broker.pid);
    const wall1 = process.hrtime.bigint();
    const rssDuring = readRss(broker.pid);
    // Wait for the last deliveries: until all arrived, or `drainMs` without progress.
    const expected = sent.sent;
    let last = received;
    let lastChange = Date.now();
    while (received < expected && Date.now() - lastChange < (opts.drainMs ?? 3000)) {
      await new Promise((r) => setTimeout(r, 50));
      if (received !== last) {
        last = received;
        lastChange = Date.now();
      }
    }
    sub.send({ cmd: 'finish' });
    const subFinal = await sub.next('final');
    sensors.send({ cmd: 'finish' });
    const pubFinal = await sensors.next('final');
    return {
      sensors: opts.sensors,
      seconds: Number(wall1 - wall0) / 1e9,
      connectMs,
      sent: expected,
      received: subFinal.received,
      other: subFinal.other,
      pubacks: pubFinal.pubacks,
      sensorsCut: pubFinal.cut,
      latencyUs: subFinal.latencyUs,
      serverCpuCores: (cpu1 - cpu0) / (Number(wall1 - wall0) / 1e9),
      rssBefore,
      rssDuring,
    };
  } finally {
    for (const w of workers) w.kill();
  }
}

/**
 * `n` idle MQTT clients (CONNECT clean session, keepalive 0, one SUBSCRIBE each), held by a
 * worker process; RSS of the broker settled before and with them. Returns the delta.
 */
export async function runIdleClients(opts) {
  const { broker, n } = opts;
  const tag = tagOf();
  // Warm-up: a few clients connect, subscribe and leave first, so that what any broker does once
  // (code compiled on first use, lazily built tables, the first store access) is not counted
  // per connection; the same for every broker.
  const warm = new WorkerProc({ role: 'idle', port: broker.port, n: WARMUP_CLIENTS, clientPrefix: `bench-${tag}-warm`, prefix: `warm/${tag}` }, WORKER);
  try {
    await warm.next('ready');
    warm.send({ cmd: 'finish' });
    await warm.next('final');
  } finally {
    warm.kill();
  }
  const before = await settledRss(broker.pid);
  const idle = new WorkerProc({ role: 'idle', port: broker.port, n, clientPrefix: `bench-${tag}-idle`, prefix: `idle/${tag}` }, WORKER);
  try {
    const dog = watchdog(() => 0, opts.timeoutMs ?? 120_000, broker, `${n} idle connections`);
    try {
      await Promise.race([idle.next('ready'), dog.promise]);
    } finally {
      dog.stop();
    }
    const withClients = await settledRss(broker.pid);
    idle.send({ cmd: 'count' });
    const { closed } = await idle.next('count');
    if (closed > 0) throw new Error(`broker closed ${closed} of ${n} idle clients`);
    idle.send({ cmd: 'finish' });
    await idle.next('final');
    return {
      n,
      idleRss: before.rss,
      idleRssStable: before.stable,
      clientsRss: withClients.rss,
      clientsRssStable: withClients.stable,
      delta: withClients.rss - before.rss,
      perConnection: (withClients.rss - before.rss) / n,
    };
  } finally {
    idle.kill();
  }
}
