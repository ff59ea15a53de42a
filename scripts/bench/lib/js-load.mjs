// Raw-socket JetStream load: an acked publisher that counts PubAck replies, and a pull-consumer
// drainer that acks every delivery. No client library on the data path: at 100k+ msgs/s the
// library's per-message promises, not the server, would be what is measured.
import { RawConn, makePayload, pubFrame } from './wire.mjs';

const SP = 32;
const CH_H = 72;
const PUBACK_INBOX = '_BENCH.puback';
const PULL_INBOX = '_BENCH.pull';
const ACK_TAIL = Buffer.from(' 0\r\n\r\n');
const PUB_HEAD = Buffer.from('PUB ');

function watchdog(stallMs, progress, fail) {
  let last = -1;
  let since = Date.now();
  const t = setInterval(() => {
    const p = progress();
    if (p !== last) {
      last = p;
      since = Date.now();
    } else if (Date.now() - since > stallMs) {
      clearInterval(t);
      fail(new Error(`no progress for ${stallMs} ms (at ${p})`));
    }
  }, 250);
  return () => clearInterval(t);
}

/**
 * Publishes `count` messages of `payloadSize` bytes, each with a reply subject so the server
 * answers with a PubAck; keeps at most `window` unanswered, writing `chunk` PUB frames per socket
 * write. `subject` is one subject or a list taken in turn (frame i of a write goes to
 * subject[i % length]: make `chunk` a multiple of the length to keep the turn across writes).
 * Resolves once every PubAck is in.
 * Returns { count, seconds, rate, errorAcks, serverErrors, socketBytesToClient } where errorAcks
 * counts PubAcks that were `{"error":...}` (only PubAcks whose first bytes arrive in the same
 * chunk as their MSG line are checked; the stream's final state is the full check) and
 * socketBytesToClient what the server sent on this socket while publishing.
 */
export async function runAckedPublish({ port, subject, count, payloadSize, window, chunk = 100, stallMs = 30_000 }) {
  const subjects = Array.isArray(subject) ? subject : [subject];
  const payload = makePayload(payloadSize);
  const per = Math.min(chunk, window);
  const frames = Array.from({ length: per }, (_, i) => pubFrame(subjects[i % subjects.length], payload, PUBACK_INBOX));
  const batch = Buffer.concat(frames);
  // ends[k]: where the k-th frame of the batch ends, to cut the last, shorter write.
  const ends = [0];
  for (const f of frames) ends.push(ends[ends.length - 1] + f.length);

  let sent = 0;
  let acks = 0;
  let errorAcks = 0;
  let t0 = 0n;
  let finish;
  let fail;
  const done = new Promise((res, rej) => {
    finish = res;
    fail = rej;
  });
  // afterData also runs for INFO and PONG, before our SUB is in place: nothing goes out until started.
  let started = false;
  const pump = (conn) => {
    if (!started) return;
    while (sent < count && sent - acks + per <= window) {
      const n = Math.min(per, count - sent);
      conn.write(n === per ? batch : batch.subarray(0, ends[n]));
      sent += n;
    }
  };
  const handler = {
    onMsg(_conn, buf, _start, nl) {
      acks++;
      // A PubAck body starts `{"stream"`; an error one `{"error"`.
      if (nl + 3 < buf.length && buf[nl + 3] === 101) errorAcks++;
    },
    afterData(conn) {
      if (acks >= count) {
        finish(process.hrtime.bigint());
        return;
      }
      pump(conn);
    },
  };
  const conn = await RawConn.open(port, { handler });
  try {
    conn.write(Buffer.from(`SUB ${PUBACK_INBOX} 1\r\n`));
    await conn.flush();
    const stopWatch = watchdog(stallMs, () => acks, (err) => fail(err));
    conn.waitClosed().then(() => fail(new Error(`connection closed after ${acks} PubAcks: ${conn.errors.join('; ')}`)));
    const bytesIn0 = conn.socket.bytesRead;
    t0 = process.hrtime.bigint();
    started = true;
    pump(conn);
    let t1;
    try {
      t1 = await done;
    } finally {
      stopWatch();
    }
    const seconds = Number(t1 - t0) / 1e9;
    return { count, seconds, rate: count / seconds, errorAcks, serverErrors: conn.errors.slice(), socketBytesToClient: conn.socket.bytesRead - bytesIn0 };
  } finally {
    conn.close();
  }
}

/** Offsets of the space-separated tokens of the control line buf[start, end). */
function tokens(buf, start, end, out) {
  let n = 0;
  let i = start;
  while (i < end && n < out.length / 2) {
    while (i < end && buf[i] === SP) i++;
    if (i >= end) break;
    const s = i;
    while (i < end && buf[i] !== SP) i++;
    out[2 * n] = s;
    out[2 * n + 1] = i;
    n++;
  }
  return n;
}

/**
 * Drains `count` messages from the pull consumer `stream`/`consumer` with requests of `batch`
 * messages (two requests outstanding at most, so the server never waits for a round trip) and
 * acks every delivery with an empty publish to its `$JS.ACK...` reply. Resolves once `count`
 * messages came and a PING/PONG shows the server has read every ack.
 * Returns { count, seconds, rate, statuses } (statuses: header-only replies such as 408/409).
 */
export async function runPullDrain({ port, stream, consumer, count, batch, stallMs = 30_000 }) {
  const nextSubject = `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`;
  let requested = 0;
  let received = 0;
  let statuses = 0;
  const tok = new Int32Array(12);
  let out = Buffer.allocUnsafe(1 << 16);
  let outLen = 0;
  let finish;
  let fail;
  const done = new Promise((res, rej) => {
    finish = res;
    fail = rej;
  });
  const pullFrame = (n) => pubFrame(nextSubject, Buffer.from(JSON.stringify({ batch: n, expires: 60_000_000_000 })), PULL_INBOX);
  const fullPull = pullFrame(batch);
  let started = false;
  const pump = (conn) => {
    if (!started) return;
    while (requested < count && requested - received <= batch) {
      const n = Math.min(batch, count - requested);
      conn.write(n === batch ? fullPull : pullFrame(n));
      requested += n;
    }
  };
  const handler = {
    onMsg(_conn, buf, start, nl) {
      const end = buf[nl - 1] === 13 ? nl - 1 : nl;
      const n = tokens(buf, start, end, tok);
      const withReply = buf[start] === CH_H ? n === 6 : n === 5;
      if (!withReply) {
        statuses++;
        return;
      }
      received++;
      const rs = tok[6];
      const re = tok[7];
      const need = PUB_HEAD.length + (re - rs) + ACK_TAIL.length;
      if (outLen + need > out.length) {
        const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, outLen + need));
        out.copy(bigger, 0, 0, outLen);
        out = bigger;
      }
      outLen += PUB_HEAD.copy(out, outLen);
      outLen += buf.copy(out, outLen, rs, re);
      outLen += ACK_TAIL.copy(out, outLen);
    },
    afterData(conn) {
      if (outLen > 0) {
        // The socket keeps this buffer until written: hand it over and start a new one.
        conn.write(out.subarray(0, outLen));
        out = Buffer.allocUnsafe(out.length);
        outLen = 0;
      }
      if (received >= count && started) finish();
      else pump(conn);
    },
  };
  const conn = await RawConn.open(port, { handler });
  try {
    conn.write(Buffer.from(`SUB ${PULL_INBOX} 1\r\n`));
    await conn.flush();
    const stopWatch = watchdog(stallMs, () => received, (err) => fail(err));
    conn.waitClosed().then(() => fail(new Error(`connection closed after ${received} deliveries: ${conn.errors.join('; ')}`)));
    const t0 = process.hrtime.bigint();
    started = true;
    pump(conn);
    try {
      await done;
      await conn.flush();
    } finally {
      stopWatch();
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { count: received, seconds, rate: received / seconds, statuses, serverErrors: conn.errors.slice() };
  } finally {
    conn.close();
  }
}
