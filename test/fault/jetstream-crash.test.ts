/**
 * JetStream crash safety: SIGKILL the server in the middle of an acked async publish run, restart
 * it on the same store directory, and check what a PubAck promises — every acknowledged message
 * is back with its seq, subject, headers and bytes, nothing twice, nothing torn — and that a
 * durable pull consumer resumes right after the ack floor it had before the crash.
 *
 * The kill points (PubAck count + a few ms) come from a seeded generator; the seed is printed so
 * a failure can be replayed with JS_CRASH_SEED=<seed> (same targets; the exact moment still
 * depends on timing). The restart reuses the store directory; the harness picks a new port.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import {
  makeTempDir,
  pollUntil,
  serverKinds,
  startServer,
  stopAllServers,
  within,
  type RunningServer,
  type ServerKind,
} from '../helpers/servers.js';

const STREAM = 'CRASH';
const DURABLE = 'RESUME';
/** Messages the durable consumes and acks before the first crash, and again after each restart. */
const CONSUME_STEP = 2_000;
/** Publishes attempted per run; the kill lands somewhere inside. */
const RUN = 20_000;
/** Outstanding js.publish calls (awaiting their PubAck) at most. */
const WINDOW = 256;
const CRASHES = 3;

const SEED = process.env['JS_CRASH_SEED'] !== undefined ? Number(process.env['JS_CRASH_SEED']) : Date.now() % 2_147_483_647;

/** mulberry32: small, seedable, good enough to pick kill points reproducibly. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

// Every message is a pure function of its index, so anything read back can be checked byte for byte.
function subjectOf(i: number): string {
  return `crash.s${i % 13}`;
}

function hasHeader(i: number): boolean {
  return i % 5 === 0;
}

function payloadOf(i: number): Uint8Array {
  const head = Buffer.from(`#${i}#`, 'latin1');
  const out = Buffer.allocUnsafe(head.length + 16 + ((i * 7919) % 113));
  head.copy(out, 0);
  for (let k = head.length; k < out.length; k++) out[k] = (i * 131 + k * 17) & 0xff;
  return out;
}

/** The index a payload claims to be, or -1 when its prefix is not `#<digits>#`. */
function indexOf(data: Uint8Array): number {
  if (data[0] !== 0x23) return -1;
  let n = 0;
  for (let k = 1; k < data.length && k < 12; k++) {
    const c = data[k] as number;
    if (c === 0x23) return k > 1 ? n : -1;
    if (c < 0x30 || c > 0x39) return -1;
    n = n * 10 + (c - 0x30);
  }
  return -1;
}

interface Stored {
  seq: number;
  subject: string;
  data: Uint8Array;
  hdr: string | undefined;
}

/** What is wrong with a stored message, or '' when it is exactly what index `i` published. */
function defect(i: number, m: Stored): string {
  if (i < 0) return `seq ${m.seq}: payload has no index prefix`;
  if (m.subject !== subjectOf(i)) return `seq ${m.seq} (#${i}): subject ${m.subject}, expected ${subjectOf(i)}`;
  if (!Buffer.from(m.data).equals(Buffer.from(payloadOf(i)))) return `seq ${m.seq} (#${i}): payload differs (${m.data.length} B)`;
  const want = hasHeader(i) ? String(i) : undefined;
  if ((m.hdr ?? undefined) !== want) return `seq ${m.seq} (#${i}): header x-idx ${String(m.hdr)}, expected ${String(want)}`;
  return '';
}

function headerOf(h: { get(k: string): string } | undefined): string | undefined {
  const v = h?.get('x-idx');
  return v === undefined || v === '' ? undefined : v;
}

interface RunResult {
  /** index -> stream seq from its PubAck */
  acked: Map<number, number>;
  /** PubAcks naming another stream or flagged duplicate (none expected). */
  odd: string[];
  failed: number;
  attempted: number;
  /** Publishes sent (or queued) without a PubAck at the moment of the kill. */
  inflightAtKill: number;
  ackedAtKill: number;
}

/**
 * Publishes indices [from, from+count) with at most WINDOW PubAcks outstanding. Once `killAt`
 * PubAcks are in, `kill` runs `jitterMs` later from a timer: killing from inside the PubAck
 * handler would always land just after the server answered a whole batch, with nothing of ours
 * in flight; a timer lets the publisher refill the window first, so the server dies holding
 * publishes it has read but not yet acknowledged.
 */
async function publishRun(
  js: JetStreamClient,
  from: number,
  count: number,
  killAt: number,
  jitterMs: number,
  kill: () => void,
): Promise<RunResult> {
  const acked = new Map<number, number>();
  const odd: string[] = [];
  let failed = 0;
  let inflight = 0;
  let stop = false;
  let wake: (() => void) | null = null;
  const settle = (): void => {
    inflight--;
    const w = wake;
    wake = null;
    w?.();
  };
  let attempted = 0;
  let inflightAtKill = 0;
  let ackedAtKill = 0;
  for (let i = from; i < from + count && !stop; i++) {
    while (inflight >= WINDOW && !stop) await new Promise<void>((r) => (wake = r));
    if (stop) break;
    inflight++;
    attempted++;
    const idx = i;
    let opts: { headers: ReturnType<typeof headers> } | undefined;
    if (hasHeader(idx)) {
      const h = headers();
      h.set('x-idx', String(idx));
      opts = { headers: h };
    }
    js.publish(subjectOf(idx), payloadOf(idx), opts).then(
      (ack) => {
        if (ack.stream !== STREAM || ack.duplicate) odd.push(`#${idx}: ${JSON.stringify(ack)}`);
        acked.set(idx, ack.seq);
        if (acked.size === killAt) {
          setTimeout(() => {
            stop = true;
            inflightAtKill = inflight;
            ackedAtKill = acked.size;
            kill();
          }, jitterMs);
        }
        settle();
      },
      () => {
        failed++;
        stop = true;
        settle();
      },
    );
  }
  while (inflight > 0) await new Promise<void>((r) => (wake = r));
  return { acked, odd, failed, attempted, inflightAtKill, ackedAtKill };
}

/** Reads the whole stream through an ack-none pull consumer, in seq order. */
async function readStream(jsm: JetStreamManager, js: JetStreamClient, name: string, lastSeq: number): Promise<Stored[]> {
  const out: Stored[] = [];
  if (lastSeq === 0) return out;
  await jsm.consumers.add(STREAM, { name, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All, inactive_threshold: 60_000_000_000 });
  const c = await js.consumers.get(STREAM, name);
  let seen = 0;
  while (seen < lastSeq) {
    const before = out.length;
    const batch = await c.fetch({ max_messages: 5_000, expires: 3_000 });
    for await (const m of batch) {
      out.push({ seq: m.seq, subject: m.subject, data: m.data, hdr: headerOf(m.headers) });
      seen = m.seq;
      if (seen >= lastSeq) break;
    }
    if (out.length === before) throw new Error(`reading the stream stalled at seq ${seen} of ${lastSeq}`);
  }
  await jsm.consumers.delete(STREAM, name);
  return out;
}

/**
 * Fetches up to `n` messages from the durable, acks them all (ackAck on the last), and waits until
 * the consumer reports the new ack floor.
 */
async function consumeAndAck(jsm: JetStreamManager, js: JetStreamClient, n: number): Promise<JsMsg[]> {
  const c = await js.consumers.get(STREAM, DURABLE);
  const got: JsMsg[] = [];
  while (got.length < n) {
    const before = got.length;
    const batch = await c.fetch({ max_messages: n - got.length, expires: 3_000 });
    for await (const m of batch) got.push(m);
    if (got.length === before) break;
  }
  const last = got[got.length - 1];
  if (last === undefined) return got;
  for (let k = 0; k < got.length - 1; k++) got[k]?.ack();
  expect(await last.ackAck()).toBe(true);
  const ci = await pollUntil(
    () => jsm.consumers.info(STREAM, DURABLE),
    (i) => i.ack_floor.stream_seq >= last.seq,
    5_000,
  );
  expect(ci.ack_floor.stream_seq, 'ack floor after acking every fetched message').toBe(last.seq);
  expect(ci.num_ack_pending).toBe(0);
  return got;
}

async function open(srv: RunningServer): Promise<{ nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager }> {
  // No reconnect: after the kill, in-flight publishes must fail, not wait for a server that is gone.
  const nc = await connect({ servers: srv.url, reconnect: false });
  return { nc, js: jetstream(nc), jsm: await jetstreamManager(nc) };
}

afterAll(async () => {
  await stopAllServers();
});

describe.each(serverKinds())('JetStream crash safety (%s)', (kind: ServerKind) => {
  it(
    'keeps every acknowledged message and the durable ack floor across SIGKILLs mid-publish',
    async () => {
      const rnd = seededRandom(SEED ^ (kind === 'nats-edge' ? 0x5eed : 0));
      // At least CONSUME_STEP acked per run, so the durable always has a next step to take.
      const killPoints = Array.from({ length: CRASHES }, () => CONSUME_STEP + 500 + Math.floor(rnd() * (RUN - CONSUME_STEP - 1_000)));
      const jitters = Array.from({ length: CRASHES }, () => Math.floor(rnd() * 5));
      const tag =
        `[jetstream-crash ${kind}] seed=${SEED} (replay: JS_CRASH_SEED=${SEED}) ` +
        `kill ${killPoints.map((k, n) => `${jitters[n]} ms after PubAck #${k}`).join(', ')}`;
      console.log(tag);

      const store = makeTempDir('js-crash-store-');
      const args = ['-js', '-sd', store];
      let srv = await startServer(kind, { args, readyTimeoutMs: 30_000 });
      let conn = await open(srv);
      await conn.jsm.streams.add({ name: STREAM, subjects: ['crash.>'], storage: StorageType.File });
      await conn.jsm.consumers.add(STREAM, {
        durable_name: DURABLE,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        max_ack_pending: 20_000,
      });

      // Before the first crash: a first part published, consumed and acked; floor confirmed.
      const allAcked = new Map<number, number>();
      let next = 0;
      {
        const pre = await publishRun(conn.js, 0, CONSUME_STEP, Infinity, 0, () => {});
        expect(pre.failed).toBe(0);
        expect(pre.odd).toEqual([]);
        for (const [i, s] of pre.acked) allAcked.set(i, s);
        next = CONSUME_STEP;
      }
      const first = await consumeAndAck(conn.jsm, conn.js, CONSUME_STEP);
      expect(first.length).toBe(CONSUME_STEP);
      let floor = first[first.length - 1]?.seq ?? 0;

      for (let crash = 0; crash < CRASHES; crash++) {
        const killAt = killPoints[crash] as number;
        const victim = srv;
        const closed = conn.nc.closed();
        const run = await within(
          publishRun(conn.js, next, RUN, killAt, jitters[crash] as number, () => {
            process.kill(victim.pid, 'SIGKILL');
          }),
          30_000,
          `${tag}: publish run ${crash + 1}`,
        );
        await victim.stop('SIGKILL');
        await closed;
        for (const [i, s] of run.acked) allAcked.set(i, s);
        const where =
          `${tag}: crash ${crash + 1} (indices ${next}..${next + run.attempted - 1}; at the kill ${run.ackedAtKill} acked, ` +
          `${run.inflightAtKill} in flight; in the end ${run.acked.size} acked, ${run.failed} failed)`;
        console.log(where);
        // Fewer PubAcks than the kill point: the server went down by itself before we killed it.
        expect(run.acked.size, `${where}\nserver log tail:\n${victim.logs().slice(-3000)}`).toBeGreaterThanOrEqual(killAt);
        expect(run.odd, where).toEqual([]);
        next += RUN;

        srv = await startServer(kind, { args, readyTimeoutMs: 30_000 });
        conn = await open(srv);
        const si = await conn.jsm.streams.info(STREAM);
        const stored = await readStream(conn.jsm, conn.js, `verify${crash}`, si.state.last_seq);

        // Everything stored is intact and unique; everything acknowledged is stored at its seq.
        const bySeq = new Map<number, number>();
        const seenIdx = new Map<number, number>();
        const defects: string[] = [];
        const dups: string[] = [];
        for (const m of stored) {
          const i = indexOf(m.data);
          const d = defect(i, m);
          if (d !== '') defects.push(d);
          const prev = seenIdx.get(i);
          if (prev !== undefined) dups.push(`#${i} at seqs ${prev} and ${m.seq}`);
          seenIdx.set(i, m.seq);
          bySeq.set(m.seq, i);
        }
        const missing: string[] = [];
        for (const [i, s] of allAcked) {
          const at = bySeq.get(s);
          if (at !== i) missing.push(`#${i} acked as seq ${s}, stored there: ${at === undefined ? 'nothing' : `#${at}`}`);
        }
        const unackedPresent = stored.length - allAcked.size;
        console.log(
          `${where}: after restart ${stored.length} stored (first ${si.state.first_seq}, last ${si.state.last_seq}), ` +
            `${allAcked.size} acked overall, ${unackedPresent} stored without a PubAck`,
        );
        expect(defects.slice(0, 20), `${where}: corrupted messages`).toEqual([]);
        expect(dups.slice(0, 20), `${where}: duplicated messages`).toEqual([]);
        expect(missing.slice(0, 20), `${where}: acknowledged messages lost (${missing.length})`).toEqual([]);
        expect(stored.length, `${where}: stream state vs messages read`).toBe(si.state.messages);
        expect(stored.every((m, k) => k === 0 || m.seq > (stored[k - 1] as Stored).seq), `${where}: read order`).toBe(true);

        // MSG.GET agrees with the consumer read for a few acknowledged seqs.
        const ackedList = [...allAcked];
        for (let k = 0; k < 10; k++) {
          const [i, s] = ackedList[Math.floor(rnd() * ackedList.length)] as [number, number];
          const sm = await conn.jsm.streams.getMessage(STREAM, { seq: s });
          expect(sm, `${where}: MSG.GET seq ${s}`).not.toBeNull();
          if (sm === null) continue;
          expect(defect(i, { seq: sm.seq, subject: sm.subject, data: sm.data, hdr: headerOf(sm.header) }), `${where}: MSG.GET`).toBe('');
        }

        // The durable resumes right after the floor it had before the crash.
        const ci = await conn.jsm.consumers.info(STREAM, DURABLE);
        expect(ci.ack_floor.stream_seq, `${where}: durable ack floor after restart`).toBe(floor);
        const got = await consumeAndAck(conn.jsm, conn.js, CONSUME_STEP);
        expect(got.length, `${where}: durable fetch after restart`).toBe(CONSUME_STEP);
        expect(got[0]?.seq, `${where}: first message the durable got after restart`).toBe(floor + 1);
        const expectSeqs = stored.filter((m) => m.seq > floor).slice(0, CONSUME_STEP).map((m) => m.seq);
        expect(got.map((m) => m.seq), `${where}: durable delivery order`).toEqual(expectSeqs);
        for (const m of got) {
          const d = defect(indexOf(m.data), { seq: m.seq, subject: m.subject, data: m.data, hdr: headerOf(m.headers) });
          if (d !== '') expect(d, `${where}: durable delivered`).toBe('');
        }
        floor = got[got.length - 1]?.seq ?? floor;
      }

      await conn.nc.close();
      // SIGINT: both exit 0 on it (nats-server 2.9.10 exits 1 on SIGTERM).
      const code = await srv.stop('SIGINT');
      expect(code, `${kind} exit after SIGINT:\n${srv.logs().slice(-2000)}`).toBe(0);
    },
    120_000,
  );
});
