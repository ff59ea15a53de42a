// Child-process side of the load generator: one role per process (pub, sub, responder,
// requester), driven by the parent over IPC, so the generator never shares one event loop
// (one core) with itself or with the orchestration.
import { performance } from 'node:perf_hooks';
import { RawConn, makePayload, pubBatch, pubFrame, parseUint } from './wire.mjs';
import { latencySummary } from './stats.mjs';

const now = () => Number(process.hrtime.bigint());

/** CPU seconds (user+system) this process used since `since` (a process.cpuUsage() value). */
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

/** Index written after the last '.' of the subject in a `MSG <subject> ...` line. */
function subjectSuffix(buf, start) {
  const subjEnd = buf.indexOf(32, start + 4);
  let i = subjEnd - 1;
  while (i > start && buf[i] !== 46) i--;
  return parseUint(buf, i + 1, subjEnd);
}

/**
 * Subscriber: `conns` connections on one subject, counted by the scanner. Every `ackEvery`
 * messages a connection publishes an empty `<ackPrefix>.<index>` so the publisher can hold
 * its window: the servers are measured at a rate they sustain, not at their slow-consumer cut-off.
 */
async function runSub(cfg) {
  const conns = [];
  const state = [];
  let doneCount = 0;
  let tFirst = 0;
  let finishing = false;
  const handler = {
    onMsg() {},
    afterData(conn) {
      const s = state[conn.slot];
      if (s === undefined) return; // INFO, before this connection is registered
      const n = conn.msgs;
      if (tFirst === 0 && n > 0) tFirst = now();
      if (n >= s.nextAck) {
        let frames = 0;
        while (n >= s.nextAck) {
          s.nextAck += cfg.ackEvery;
          frames++;
        }
        conn.write(frames === 1 ? s.ackFrame : Buffer.concat(new Array(frames).fill(s.ackFrame)));
      }
      if (s.tDone === 0 && n >= cfg.target) {
        s.tDone = now();
        if (++doneCount === conns.length) send({ type: 'done', tFirst, tDone: state.map((x) => x.tDone), cpu: cpuSince(cpu0) });
      }
    },
  };
  for (let k = 0; k < cfg.conns; k++) {
    const conn = await RawConn.open(cfg.port, { handler });
    conn.slot = k;
    const index = cfg.baseIndex + k;
    state.push({ nextAck: cfg.ackEvery, tDone: 0, ackFrame: Buffer.from(`PUB ${cfg.ackPrefix}.${index} 0\r\n\r\n`) });
    conn.write(Buffer.from(`SUB ${cfg.subject} ${k + 1}\r\n`));
    conn.socket.on('close', () => {
      if (!finishing) fail(new Error(`subscriber ${index} cut by the server after ${conn.msgs} of ${cfg.target} messages${conn.errors.length ? ' (' + conn.errors.join('; ') + ')' : ''}`));
    });
    conns.push(conn);
  }
  await Promise.all(conns.map((c) => c.flush()));
  const cpu0 = process.cpuUsage();
  const progress = setInterval(() => send({ type: 'progress', counts: conns.map((c) => c.msgs) }), 500);
  process.on('message', async (m) => {
    if (m.cmd !== 'finish') return;
    clearInterval(progress);
    // A PING round trip after the publisher's own flush: every delivery the server was
    // going to make has reached us, so an extra or a missing message shows in the count.
    await Promise.all(conns.map((c) => c.flush()));
    finishing = true;
    send({ type: 'final', counts: conns.map((c) => c.msgs), errors: conns.flatMap((c) => c.errors) });
    for (const c of conns) c.close();
    setTimeout(() => process.exit(0), 20);
  });
  send({ type: 'ready' });
}

/** Publisher: pre-built PUB batches, at most `window` messages ahead of the slowest subscriber. */
async function runPub(cfg) {
  const payload = makePayload(cfg.payloadSize);
  const frameLen = pubFrame(cfg.subject, payload).length;
  const batch = pubBatch(cfg.subject, payload, cfg.batch);
  const acks = new Array(cfg.subs).fill(0);
  let minAcked = 0;
  let sent = 0;
  let waitingDrain = false;
  let t0 = 0;
  let cpu0;
  let finished = false;
  let conn;

  const pump = () => {
    if (waitingDrain || t0 === 0) return;
    while (sent < cfg.total && sent - minAcked < cfg.window) {
      const n = Math.min(cfg.batch, cfg.total - sent);
      const ok = conn.write(n === cfg.batch ? batch : batch.subarray(0, n * frameLen));
      sent += n;
      if (!ok) {
        waitingDrain = true;
        conn.socket.once('drain', onDrain);
        return;
      }
    }
    if (sent >= cfg.total && !finished) {
      finished = true;
      const tSent = now();
      conn.flush().then(
        () => send({ type: 'sent', t0, tSent, tFlushed: now(), sent, cpu: cpuSince(cpu0) }),
        (err) => fail(err),
      );
    }
  };
  const onDrain = () => {
    waitingDrain = false;
    pump();
  };
  const handler = {
    onMsg(_conn, buf, start, nl) {
      const i = subjectSuffix(buf, start);
      if (i >= 0 && i < acks.length) acks[i]++;
    },
    afterData() {
      let min = Infinity;
      for (let i = 0; i < acks.length; i++) if (acks[i] < min) min = acks[i];
      minAcked = min * cfg.ackEvery;
      pump();
    },
  };
  conn = await RawConn.open(cfg.port, { handler });
  conn.write(Buffer.from(`SUB ${cfg.ackPrefix}.* 1\r\n`));
  await conn.flush();
  conn.socket.on('close', () => {
    fail(new Error(`publisher cut by the server after ${sent} messages${conn.errors.length ? ' (' + conn.errors.join('; ') + ')' : ''}`));
  });
  process.on('message', (m) => {
    if (m.cmd === 'start') {
      cpu0 = process.cpuUsage();
      t0 = now();
      pump();
    } else if (m.cmd === 'finish') {
      finished = true;
      conn.socket.removeAllListeners('close');
      conn.close();
      setTimeout(() => process.exit(0), 20);
    }
  });
  send({ type: 'ready' });
}

/** Responder: answers every request on its reply subject; replies of one chunk go out in one write. */
async function runResponder(cfg) {
  const reply = makePayload(cfg.payloadSize);
  const sizeTail = Buffer.from(` ${reply.length}\r\n`);
  const frameTail = Buffer.concat([reply, Buffer.from('\r\n')]);
  let out = Buffer.allocUnsafe(1 << 20);
  let pos = 0;
  let answered = 0;
  const handler = {
    onMsg(_conn, buf, start, nl) {
      // MSG <subject> <sid> <reply> <size>: the reply is the 4th token.
      const sp1 = buf.indexOf(32, start + 4);
      const sp2 = buf.indexOf(32, sp1 + 1);
      const sp3 = buf.indexOf(32, sp2 + 1);
      if (sp3 < 0 || sp3 > nl) return;
      const need = 4 + (sp3 - sp2 - 1) + sizeTail.length + frameTail.length;
      if (pos + need > out.length) {
        const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, pos + need));
        out.copy(bigger, 0, 0, pos);
        out = bigger;
      }
      pos += out.write('PUB ', pos, 'latin1');
      pos += buf.copy(out, pos, sp2 + 1, sp3);
      pos += sizeTail.copy(out, pos);
      pos += frameTail.copy(out, pos);
      answered++;
    },
    afterData(conn) {
      if (pos === 0) return;
      conn.write(Buffer.from(out.subarray(0, pos)));
      pos = 0;
    },
  };
  const conn = await RawConn.open(cfg.port, { handler });
  conn.write(Buffer.from(`SUB ${cfg.subject} 1\r\n`));
  await conn.flush();
  conn.socket.on('close', () => {
    if (process.connected) fail(new Error(`responder cut by the server after ${answered} replies`));
  });
  process.on('message', (m) => {
    if (m.cmd !== 'finish') return;
    conn.socket.removeAllListeners('close');
    send({ type: 'final', answered });
    conn.close();
    setTimeout(() => process.exit(0), 20);
  });
  send({ type: 'ready' });
}

/**
 * Requester: `concurrency` requests outstanding (1 = strictly sequential), each with its own
 * reply subject `<inbox>.<slot>`; latency = send to reply, in microseconds.
 */
async function runRequester(cfg) {
  const payload = makePayload(cfg.payloadSize);
  const c = cfg.concurrency;
  const frames = [];
  for (let s = 0; s < c; s++) frames.push(pubFrame(cfg.subject, payload, `${cfg.inbox}.${s}`));
  const sentAt = new Float64Array(c);
  const samples = new Float64Array(cfg.count);
  const total = cfg.warmup + cfg.count;
  let issued = 0;
  let done = 0;
  let k = 0;
  let tMeasureStart = 0;
  let conn;
  const handler = {
    onMsg(cn, buf, start, nl) {
      const t = performance.now();
      const slot = subjectSuffix(buf, start);
      if (!(slot >= 0 && slot < c)) return;
      done++;
      if (done > cfg.warmup) samples[k++] = (t - sentAt[slot]) * 1000;
      else if (done === cfg.warmup) tMeasureStart = t;
      if (issued < total) {
        issued++;
        sentAt[slot] = performance.now();
        cn.write(frames[slot]);
      }
    },
    afterData() {
      if (done >= total) {
        const seconds = (performance.now() - tMeasureStart) / 1000;
        clearInterval(progress);
        send({ type: 'result', latency: latencySummary(samples.subarray(0, k)), seconds, rate: k / seconds });
        done = -Infinity;
      }
    },
  };
  conn = await RawConn.open(cfg.port, { handler });
  conn.write(Buffer.from(`SUB ${cfg.inbox}.* 1\r\n`));
  await conn.flush();
  conn.socket.on('close', () => {
    if (process.connected && done >= 0) fail(new Error(`requester cut by the server after ${done} replies`));
  });
  const progress = setInterval(() => send({ type: 'progress', done }), 500);
  process.on('message', (m) => {
    if (m.cmd === 'start') {
      if (cfg.warmup === 0) tMeasureStart = performance.now();
      conn.socket.cork();
      for (let s = 0; s < c && issued < total; s++) {
        issued++;
        sentAt[s] = performance.now();
        conn.write(frames[s]);
      }
      conn.socket.uncork();
    } else if (m.cmd === 'finish') {
      conn.socket.removeAllListeners('close');
      conn.close();
      setTimeout(() => process.exit(0), 20);
    }
  });
  send({ type: 'ready' });
}

const ROLES = { sub: runSub, pub: runPub, responder: runResponder, requester: runRequester };

process.once('message', (cfg) => {
  const run = ROLES[cfg.role];
  if (run === undefined) fail(new Error(`unknown role ${cfg.role}`));
  else run(cfg).catch(fail);
});
process.on('disconnect', () => process.exit(0));
