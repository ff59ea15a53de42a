// Child-process side of the MQTT load generator: one role per process (pub, sub, sensors),
// driven by the parent (lib/mqtt-load.mjs) over IPC, so the generator never shares one event
// loop with itself or with the orchestration.
import { MqttConn, makePayload, payloadOffset, publishBatch, publishPacket, publishRing, writePuback } from './mqtt-wire.mjs';
import { latencySummary } from './stats.mjs';

const now = () => Number(process.hrtime.bigint());

function cpuSince(since) {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
}

function send(msg) {
  process.send?.(msg);
}

function fail(err) {
  send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  setTimeout(() => process.exit(1), 50);
}

/** Collects PUBACKs for one chunk of incoming PUBLISHes, written back in one write. */
class AckOut {
  constructor() {
    this.buf = Buffer.allocUnsafe(64 * 1024);
    this.pos = 0;
  }
  add(pid) {
    if (this.pos + 4 > this.buf.length) {
      const bigger = Buffer.allocUnsafe(this.buf.length * 2);
      this.buf.copy(bigger, 0, 0, this.pos);
      this.buf = bigger;
    }
    writePuback(this.buf, this.pos, pid);
    this.pos += 4;
  }
  flush(conn) {
    if (this.pos === 0) return;
    conn.write(Buffer.from(this.buf.subarray(0, this.pos)));
    this.pos = 0;
  }
}

/** The progress marker a subscriber publishes at QoS 0: its running count in 4 bytes. */
function markerTemplate(topic) {
  const packet = publishPacket(topic, Buffer.alloc(4), 0);
  return { packet, at: payloadOffset(packet) };
}

/**
 * Subscriber of the 1->1 tests: subscribes `topic` at `qos`, counts PUBLISH packets (PUBACKs
 * each QoS 1 one) and every `ackEvery` messages publishes its count on `ackTopic`, so the
 * publisher stays within its window: every broker is measured at a rate it sustains, not at
 * the point where it starts dropping or cutting slow consumers.
 */
async function runSub(cfg) {
  const acks = new AckOut();
  const marker = markerTemplate(cfg.ackTopic);
  let count = 0;
  let nextMark = cfg.ackEvery;
  let tDone = 0;
  let finishing = false;
  const cpu0 = process.cpuUsage();
  const mark = (conn) => {
    const p = Buffer.from(marker.packet);
    p.writeUInt32BE(count, marker.at);
    conn.write(p);
  };
  const handler = {
    onPublish(_conn, buf, at, topicLen, qos) {
      count++;
      if (qos > 0) {
        const i = at + 2 + topicLen;
        acks.add((buf[i] << 8) | buf[i + 1]);
      }
    },
    afterData(conn) {
      acks.flush(conn);
      if (count >= nextMark || (count >= cfg.target && tDone === 0)) {
        while (count >= nextMark) nextMark += cfg.ackEvery;
        mark(conn);
      }
      if (tDone === 0 && count >= cfg.target) {
        tDone = now();
        send({ type: 'done', tDone, count, cpu: cpuSince(cpu0) });
      }
    },
  };
  const conn = await MqttConn.open(cfg.port, { clientId: cfg.clientId, handler });
  const granted = await conn.subscribe(cfg.topic, cfg.qos);
  if (granted !== cfg.qos) throw new Error(`subscribed at QoS ${cfg.qos}, granted ${granted}`);
  conn.socket.on('close', () => {
    if (!finishing) fail(new Error(`subscriber cut by the broker after ${count} of ${cfg.target} messages${conn.errors.length ? ` (${conn.errors.join('; ')})` : ''}`));
  });
  const progress = setInterval(() => send({ type: 'progress', count }), 250);
  process.on('message', (m) => {
    if (m.cmd !== 'finish') return;
    clearInterval(progress);
    finishing = true;
    send({ type: 'final', count, errors: conn.errors });
    conn.close();
    setTimeout(() => process.exit(0), 20);
  });
  send({ type: 'ready' });
}

/**
 * Publisher of the 1->1 tests. QoS 0: pre-encoded batches of PUBLISH packets. QoS 1: a ring
 * of `inflight` pre-encoded packets (packet ids 1..inflight), a slot reused only after its
 * PUBACK. Either way at most `window` messages ahead of what the subscriber reported.
 */
async function runPub(cfg) {
  const payload = makePayload(cfg.payloadSize);
  const qos1 = cfg.qos === 1;
  const { batch, packetLen } = qos1 ? { batch: null, packetLen: 0 } : publishBatch(cfg.topic, payload, cfg.batch);
  const ring = qos1 ? publishRing(cfg.topic, payload, cfg.inflight) : null;
  const busy = qos1 ? new Uint8Array(cfg.inflight) : null;
  let sent = 0;
  let acked = 0;
  let delivered = 0;
  let waitingDrain = false;
  let t0 = 0;
  let cpu0;
  let reported = false;
  let conn;

  const report = () => {
    if (reported) return;
    reported = true;
    const tSent = now();
    conn.ping().then(
      () => send({ type: 'sent', t0, tSent, sent, acked, cpu: cpuSince(cpu0) }),
      (err) => fail(err),
    );
  };
  const pump = () => {
    if (waitingDrain || t0 === 0) return;
    let ok = true;
    if (!qos1) {
      while (ok && sent < cfg.total && sent - delivered < cfg.window) {
        const n = Math.min(cfg.batch, cfg.total - sent);
        ok = conn.write(n === cfg.batch ? batch : batch.subarray(0, n * packetLen));
        sent += n;
      }
    } else {
      const W = cfg.inflight;
      while (ok && sent < cfg.total && sent - delivered < cfg.window && sent - acked < W) {
        // One write for the longest run of free, contiguous slots.
        const first = sent % W;
        let last = first;
        const limit = Math.min(W, first + (cfg.total - sent), first + (cfg.window - (sent - delivered)), first + (W - (sent - acked)));
        while (last < limit && busy[last] === 0) busy[last++] = 1;
        if (last === first) break; // the next slot still waits for its PUBACK (acks out of order)
        ok = conn.write(ring.ring.subarray(first * ring.packetLen, last * ring.packetLen));
        sent += last - first;
      }
    }
    if (!ok) {
      waitingDrain = true;
      conn.socket.once('drain', onDrain);
      return;
    }
    if (sent >= cfg.total && (!qos1 || acked >= cfg.total)) report();
  };
  const onDrain = () => {
    waitingDrain = false;
    pump();
  };
  const handler = {
    onPublish(_c, buf, at, topicLen, _qos, remLen) {
      // Only the subscriber's count markers arrive here (4-byte payload at QoS 0).
      const p = at + 2 + topicLen;
      if (remLen - 2 - topicLen === 4) {
        const n = buf.readUInt32BE(p);
        if (n > delivered) delivered = n;
      }
    },
    onPuback(_c, pid) {
      const slot = pid - 1;
      if (busy !== null && slot >= 0 && slot < busy.length && busy[slot] === 1) {
        busy[slot] = 0;
        acked++;
      }
    },
    afterData() {
      pump();
    },
  };
  conn = await MqttConn.open(cfg.port, { clientId: cfg.clientId, handler, peek: 4 });
  await conn.subscribe(cfg.ackTopic, 0);
  conn.socket.on('close', () => fail(new Error(`publisher cut by the broker after ${sent} messages (${acked} PUBACKs)${conn.errors.length ? ` (${conn.errors.join('; ')})` : ''}`)));
  process.on('message', (m) => {
    if (m.cmd === 'start') {
      cpu0 = process.cpuUsage();
      t0 = now();
      pump();
    } else if (m.cmd === 'finish') {
      conn.socket.removeAllListeners('close');
      conn.close();
      setTimeout(() => process.exit(0), 20);
    }
  });
  const progress = setInterval(() => send({ type: 'progress', sent, acked, delivered }), 250);
  progress.unref();
  send({ type: 'ready' });
}

/** Opens `n` connections, `parallel` handshakes at a time. */
async function openMany(n, parallel, open) {
  const conns = new Array(n);
  let next = 0;
  const one = async () => {
    while (next < n) {
      const i = next++;
      conns[i] = await open(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, one));
  return conns;
}

/**
 * `n` sensors, each its own connection publishing once a second on `<prefix>/<i>` at `qos`,
 * spread evenly over the second. The payload starts with the send time (CLOCK_MONOTONIC ns as
 * a float64), the same clock the subscriber reads, so it can tell the delivery latency.
 */
async function runSensors(cfg) {
  const payload = makePayload(cfg.payloadSize);
  const templates = [];
  const pids = new Uint16Array(cfg.n);
  let pubacks = 0;
  let sent = 0;
  let cut = 0;
  const handler = {
    onPuback() {
      pubacks++;
    },
  };
  const conns = await openMany(cfg.n, 50, async (i) => {
    const c = await MqttConn.open(cfg.port, { clientId: `${cfg.clientPrefix}${i}`, handler, keepalive: 60 });
    c.socket.on('close', () => cut++);
    return c;
  });
  for (let i = 0; i < cfg.n; i++) {
    const p = publishPacket(`${cfg.prefix}/${i}`, payload, cfg.qos, 1);
    templates.push({ packet: p, at: payloadOffset(p) });
  }
  const total = cfg.n * cfg.seconds;
  let t0 = 0;
  let timer;
  const tick = () => {
    const due = Math.min(total, Math.floor(((now() - t0) / 1e9) * cfg.n));
    while (sent < due) {
      const i = sent % cfg.n;
      const t = templates[i];
      const p = Buffer.from(t.packet);
      if (cfg.qos > 0) {
        pids[i] = (pids[i] % 65535) + 1;
        p[t.at - 2] = pids[i] >> 8;
        p[t.at - 1] = pids[i] & 0xff;
      }
      p.writeDoubleLE(now(), t.at);
      if (!conns[i].closed) conns[i].write(p);
      sent++;
    }
    if (sent >= total) {
      clearInterval(timer);
      send({ type: 'sent', t0, tEnd: now(), sent });
    }
  };
  process.on('message', (m) => {
    if (m.cmd === 'start') {
      t0 = now();
      timer = setInterval(tick, 5);
    } else if (m.cmd === 'finish') {
      send({ type: 'final', sent, pubacks, cut });
      for (const c of conns) c.close();
      setTimeout(() => process.exit(0), 50);
    }
  });
  send({ type: 'ready' });
}

/**
 * One subscriber on `filter` (e.g. `#`): counts the PUBLISHes whose topic starts with
 * `prefix/` and takes the latency of each from the send time at the start of its payload.
 */
async function runSensorSub(cfg) {
  const acks = new AckOut();
  const prefix = Buffer.from(`${cfg.prefix}/`);
  const samples = new Float64Array(cfg.capacity);
  let received = 0;
  let other = 0;
  const handler = {
    onPublish(_c, buf, at, topicLen, qos, remLen) {
      const t = now();
      const topicAt = at + 2;
      let ours = topicLen > prefix.length;
      for (let k = 0; ours && k < prefix.length; k++) if (buf[topicAt + k] !== prefix[k]) ours = false;
      const payloadAt = topicAt + topicLen + (qos > 0 ? 2 : 0);
      if (qos > 0) acks.add((buf[payloadAt - 2] << 8) | buf[payloadAt - 1]);
      if (!ours || remLen - (payloadAt - at) < 8) {
        other++;
        return;
      }
      if (received < samples.length) samples[received] = (t - buf.readDoubleLE(payloadAt)) / 1000;
      received++;
    },
    afterData(conn) {
      acks.flush(conn);
    },
  };
  const conn = await MqttConn.open(cfg.port, { clientId: cfg.clientId, handler, peek: 8, keepalive: 60 });
  const granted = await conn.subscribe(cfg.filter, cfg.qos);
  if (granted !== cfg.qos) throw new Error(`subscribed at QoS ${cfg.qos}, granted ${granted}`);
  let finishing = false;
  conn.socket.on('close', () => {
    if (!finishing) fail(new Error(`'${cfg.filter}' subscriber cut by the broker after ${received} messages`));
  });
  const progress = setInterval(() => send({ type: 'progress', received }), 250);
  process.on('message', (m) => {
    if (m.cmd !== 'finish') return;
    clearInterval(progress);
    finishing = true;
    const n = Math.min(received, samples.length);
    send({ type: 'final', received, other, latencyUs: latencySummary(samples.subarray(0, n)) });
    conn.close();
    setTimeout(() => process.exit(0), 20);
  });
  send({ type: 'ready' });
}

/** `n` idle clients: CONNECT, one SUBSCRIBE each, and nothing more; the parent reads RSS. */
async function runIdle(cfg) {
  const conns = await openMany(cfg.n, 50, async (i) => {
    const c = await MqttConn.open(cfg.port, { clientId: `${cfg.clientPrefix}${i}`, keepalive: 0 });
    await c.subscribe(`${cfg.prefix}/${i}`, 0);
    return c;
  });
  await Promise.all(conns.map((c) => c.ping()));
  process.on('message', (m) => {
    if (m.cmd === 'count') send({ type: 'count', closed: conns.filter((c) => c.closed).length });
    else if (m.cmd === 'finish') {
      for (const c of conns) c.close();
      send({ type: 'final' });
      setTimeout(() => process.exit(0), 50);
    }
  });
  send({ type: 'ready' });
}

const ROLES = { sub: runSub, pub: runPub, sensors: runSensors, 'sensor-sub': runSensorSub, idle: runIdle };

process.once('message', (cfg) => {
  const run = ROLES[cfg.role];
  if (run === undefined) fail(new Error(`unknown role ${cfg.role}`));
  else run(cfg).catch(fail);
});
process.on('disconnect', () => process.exit(0));
