/**
 * JetStream across a leafnode link (leafnode.md §9, jetstream-api.md §12a): a Debian nats-server
 * hub with JetStream domain `hub`, a leaf with domain `edge` (nats-server first, to prove each
 * case, then nats-edge). Telemetry goes up (a hub stream sources a leaf stream through
 * `$JS.edge.API`), configuration comes down (a leaf stream mirrors a hub stream through
 * `$JS.hub.API`, and a KV bucket likewise), and each survives the hub going away and coming
 * back on the same ports and store while the other side keeps working.
 *
 * Every stored message is read back with STREAM.MSG.GET, so sequences, subjects, header blocks
 * and payloads are compared byte for byte.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { makeTempDir, serverKinds, type RunningServer, type ServerKind } from '../helpers/servers.js';
import { apiRequest } from '../helpers/js.js';
import { startHub, startLeaf, stopLeafTestServers, untilAnswered, waitForLeafLink, type Hub } from '../helpers/leaf.js';

const EDGE_API = '$JS.edge.API';
const HUB_API = '$JS.hub.API';

/** A message as STREAM.MSG.GET returns it: the raw header block and payload bytes. */
interface Stored {
  seq: number;
  subject: string;
  hdrs: Buffer;
  data: Buffer;
}

const conns: NatsConnection[] = [];

async function client(srv: RunningServer): Promise<NatsConnection> {
  // No reconnect: a hub connection is opened again after a restart, on purpose.
  const nc = await connect({ servers: srv.url, reconnect: false });
  conns.push(nc);
  return nc;
}

async function getMsg(nc: NatsConnection, stream: string, seq: number): Promise<Stored> {
  const r = await apiRequest(nc, `$JS.API.STREAM.MSG.GET.${stream}`, { seq });
  const m = r['message'] as { subject: string; seq: number; data?: string; hdrs?: string } | undefined;
  if (m === undefined) throw new Error(`${stream} seq ${seq}: ${JSON.stringify(r)}`);
  return {
    seq: m.seq,
    subject: m.subject,
    hdrs: Buffer.from(m.hdrs ?? '', 'base64'),
    data: Buffer.from(m.data ?? '', 'base64'),
  };
}

/** Messages first..last of a stream, in sequence order (a few requests in flight at a time). */
async function readRange(nc: NatsConnection, stream: string, first: number, last: number): Promise<Stored[]> {
  const out: Stored[] = [];
  for (let seq = first; seq <= last; seq += 50) {
    const batch: Promise<Stored>[] = [];
    for (let s = seq; s <= Math.min(last, seq + 49); s++) batch.push(getMsg(nc, stream, s));
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

/** Payload i: a tag, then bytes of every value including CR, LF and a fake protocol line. */
function payload(tag: string, i: number): Buffer {
  const body = Buffer.alloc(16 + (i % 97));
  for (let k = 0; k < body.length; k++) body[k] = (i * 31 + k * 7) & 0xff;
  return Buffer.concat([Buffer.from(`${tag}-${i}|`), body, Buffer.from('\r\nMSG x 1 2\r\n')]);
}

function subjectOf(prefix: string, i: number): string {
  return `${prefix}.dev${i % 7}.m${i % 3}`;
}

/** nats-server's short hash of an external API prefix (the `<name>:<hash>` origin token). */
function apiHash(api: string): string {
  const digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const sum = createHash('sha256').update(api).digest();
  let out = '';
  for (let i = 0; i < 8; i++) out += digits[sum[i]! % 62];
  return out;
}

function headerValue(hdrs: Buffer, name: string): string | undefined {
  const lines = hdrs.toString('latin1').split('\r\n');
  for (const l of lines.slice(1)) {
    const colon = l.indexOf(':');
    if (colon > 0 && l.slice(0, colon) === name) return l.slice(colon + 1).trim();
  }
  return undefined;
}

/** Header name/value pairs other than `Nats-Stream-Source`, in order. */
function ownHeaders(hdrs: Buffer): string[] {
  if (hdrs.length === 0) return [];
  return hdrs
    .toString('latin1')
    .split('\r\n')
    .slice(1)
    .filter((l) => l !== '' && !l.startsWith('Nats-Stream-Source:'));
}

function tail(text: string, lines = 25): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Polls stream info until `done` holds (errors while a server restarts count as "not yet");
 * throws with the last info and both logs' tails on timeout.
 */
async function waitForStream(
  jsm: () => JetStreamManager,
  stream: string,
  done: (si: StreamInfo) => boolean,
  timeoutMs: number,
  servers: RunningServer[],
): Promise<StreamInfo> {
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  let last: StreamInfo | undefined;
  let lastErr = '';
  for (;;) {
    try {
      last = await jsm().streams.info(stream);
      if (done(last)) return last;
    } catch (err) {
      lastErr = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() >= deadline) {
      const logs = servers.map((s) => `--- ${s.kind} (port ${s.port}) log tail:\n${tail(s.logs())}`).join('\n');
      throw new Error(
        `stream ${stream} not there within ${timeoutMs} ms; state ${JSON.stringify(last?.state)} ` +
          `mirror ${JSON.stringify(last?.mirror)} sources ${JSON.stringify(last?.sources)} last error ${lastErr}\n${logs}`,
      );
    }
    // Stream state has no event to await: a short growing backoff between reads.
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 200);
  }
}

function edgeStore(): string {
  return makeTempDir('nats-edge-leaf-js-');
}

function edgeLeaf(kind: ServerKind, hub: Hub, storeDir: string): Promise<RunningServer> {
  return startLeaf(kind, hub.leafPort, { config: `jetstream { domain: edge, store_dir: "${storeDir}" }` });
}

async function linkedPair(kind: ServerKind): Promise<{ hub: Hub; leaf: RunningServer; storeDir: string }> {
  const hub = await startHub({ jetstream: { domain: 'hub' } });
  const storeDir = edgeStore();
  const leaf = await edgeLeaf(kind, hub, storeDir);
  await waitForLeafLink(hub, 15000);
  return { hub, leaf, storeDir };
}

/** Publishes messages from..to-1 into the leaf's local stream, each acked by the leaf. */
async function publishTele(leafNc: NatsConnection, from: number, to: number): Promise<void> {
  const js = jetstream(leafNc);
  for (let i = from; i < to; i += 50) {
    const acks = [];
    for (let k = i; k < Math.min(to, i + 50); k++) {
      const h = headers();
      h.set('Dev-Seq', String(k));
      acks.push(js.publish(subjectOf('tele', k), payload('tele', k), { headers: h }));
    }
    const done = await Promise.all(acks);
    for (const [j, a] of done.entries()) {
      expect(a.stream).toBe('TELE');
      expect(a.seq).toBe(i + j + 1);
      expect(a.domain).toBe('edge');
    }
  }
}

/** Publishes messages from..to-1 into the hub's CFG (every 4th with a header), each acked by the hub. */
async function publishCfg(hubNc: NatsConnection, from: number, to: number): Promise<void> {
  const js = jetstream(hubNc);
  for (let i = from; i < to; i++) {
    const h = i % 4 === 0 ? headers() : undefined;
    h?.set('Cfg-Rev', String(i));
    const ack = await js.publish(subjectOf('cfg', i), payload('cfg', i), h === undefined ? {} : { headers: h });
    expect(ack.seq).toBe(i + 1);
    expect(ack.domain).toBe('hub');
  }
}

/** The hub copy of the leaf's TELE is exactly messages 0..n-1, in order, each tagged with its origin seq. */
function expectTeleCopy(msgs: Stored[], n: number): void {
  expect(msgs.length).toBe(n);
  const origin = `TELE:${apiHash(EDGE_API)}`;
  for (let i = 0; i < n; i++) {
    const m = msgs[i]!;
    expect(m.seq).toBe(i + 1);
    expect(m.subject).toBe(subjectOf('tele', i));
    expect(m.data.equals(payload('tele', i))).toBe(true);
    expect(headerValue(m.hdrs, 'Nats-Stream-Source')).toBe(`${origin} ${i + 1}`);
    expect(ownHeaders(m.hdrs)).toEqual([`Dev-Seq: ${i}`]);
  }
}

/** The leaf mirror holds exactly what the hub origin holds: same seqs, subjects, header blocks, payloads. */
function expectSameMessages(mirror: Stored[], origin: Stored[]): void {
  expect(mirror.length).toBe(origin.length);
  for (let i = 0; i < origin.length; i++) {
    const a = mirror[i]!;
    const b = origin[i]!;
    expect(a.seq).toBe(b.seq);
    expect(a.subject).toBe(b.subject);
    expect(a.hdrs.equals(b.hdrs)).toBe(true);
    expect(a.data.equals(b.data)).toBe(true);
  }
}

describe.each(serverKinds())('JetStream across a leafnode link: %s as the leaf', (kind: ServerKind) => {
  afterEach(async () => {
    await Promise.all(conns.splice(0).map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close().catch(() => undefined))));
    await stopLeafTestServers();
  });

  it('telemetry up: a hub stream sources the leaf stream through $JS.edge.API and catches up after the hub was killed', { timeout: 120000 }, async () => {
    const { hub, leaf } = await linkedPair(kind);
    const servers = [hub, leaf];
    const leafNc = await client(leaf);
    let hubNc = await client(hub);
    const leafJsm = await jetstreamManager(leafNc);
    const tele = await leafJsm.streams.add({ name: 'TELE', subjects: ['tele.>'] });
    expect(tele.config.subjects).toEqual(['tele.>']);

    // The hub must reach the edge domain before its stream can create a consumer there.
    const edgeFromHub = await untilAnswered(() => jetstreamManager(hubNc, { domain: 'edge' }), 'JetStream domain edge from a hub client', 15000);
    expect((await edgeFromHub.getAccountInfo()).domain).toBe('edge');
    expect((await edgeFromHub.streams.info('TELE')).config.name).toBe('TELE');

    let hubJsm = await jetstreamManager(hubNc);
    const created = await hubJsm.streams.add({ name: 'HUBTELE', sources: [{ name: 'TELE', external: { api: EDGE_API, deliver: '' } }] });
    expect(created.config.sources?.[0]?.external?.api).toBe(EDGE_API);

    await publishTele(leafNc, 0, 500);
    let si = await waitForStream(() => hubJsm, 'HUBTELE', (s) => s.state.messages >= 500, 30000, servers);
    expect(si.state.messages).toBe(500);
    expect(si.state.last_seq).toBe(500);
    expectTeleCopy(await readRange(hubNc, 'HUBTELE', 1, 500), 500);

    // Cut the link: the hub dies (its file store keeps HUBTELE); the leaf keeps taking telemetry.
    await hub.stop('SIGKILL');
    await publishTele(leafNc, 500, 1000);
    const local = await leafJsm.streams.info('TELE');
    expect(local.state.messages).toBe(1000);
    expect(local.state.last_seq).toBe(1000);

    await hub.start();
    hubNc = await client(hub);
    hubJsm = await jetstreamManager(hubNc);
    await waitForLeafLink(hub, 30000);
    si = await waitForStream(() => hubJsm, 'HUBTELE', (s) => s.state.messages >= 1000, 60000, servers);
    expect(si.state.messages).toBe(1000);
    expect(si.state.last_seq).toBe(1000);

    // One more message is a barrier: a duplicate of anything earlier would arrive before it.
    await publishTele(leafNc, 1000, 1001);
    si = await waitForStream(() => hubJsm, 'HUBTELE', (s) => s.state.last_seq >= 1001, 30000, servers);
    expect(si.state.messages).toBe(1001);
    expect(si.state.first_seq).toBe(1);
    expectTeleCopy(await readRange(hubNc, 'HUBTELE', 1, 1001), 1001);
    expect(si.sources?.[0]?.name).toBe('TELE');
    expect(si.sources?.[0]?.lag).toBe(0);
  });

  it('configuration down: a leaf stream mirrors the hub stream through $JS.hub.API, keeps it while the hub is down, then catches up', { timeout: 120000 }, async () => {
    const { hub, leaf } = await linkedPair(kind);
    const servers = [hub, leaf];
    const leafNc = await client(leaf);
    let hubNc = await client(hub);
    let hubJsm = await jetstreamManager(hubNc);
    await hubJsm.streams.add({ name: 'CFG', subjects: ['cfg.>'] });

    await publishCfg(hubNc, 0, 200);

    // The leaf must reach the hub domain before its mirror can create a consumer there.
    const hubFromLeaf = await untilAnswered(() => jetstreamManager(leafNc, { domain: 'hub' }), 'JetStream domain hub from a leaf client', 15000);
    expect((await hubFromLeaf.streams.info('CFG')).state.messages).toBe(200);

    const leafJsm = await jetstreamManager(leafNc);
    const created = await leafJsm.streams.add({ name: 'CFGMIRROR', mirror: { name: 'CFG', external: { api: HUB_API, deliver: '' } } });
    expect(created.config.mirror?.external?.api).toBe(HUB_API);
    expect(created.config.subjects ?? []).toEqual([]);

    let si = await waitForStream(() => leafJsm, 'CFGMIRROR', (s) => s.state.last_seq >= 200, 30000, servers);
    expect(si.state.messages).toBe(200);
    expect(si.state.first_seq).toBe(1);
    expect(si.mirror?.name).toBe('CFG');
    expect(si.mirror?.lag).toBe(0);
    const origin200 = await readRange(hubNc, 'CFG', 1, 200);
    expect(origin200[199]!.data.equals(payload('cfg', 199))).toBe(true);
    expectSameMessages(await readRange(leafNc, 'CFGMIRROR', 1, 200), origin200);

    // Cut the link: the hub goes down; the mirror's copy stays readable on the leaf.
    await hub.stop('SIGTERM');
    const kept = await leafJsm.streams.info('CFGMIRROR');
    expect(kept.state.messages).toBe(200);
    expect(kept.state.last_seq).toBe(200);
    expectSameMessages(await readRange(leafNc, 'CFGMIRROR', 1, 200), origin200);

    await hub.start();
    hubNc = await client(hub);
    hubJsm = await jetstreamManager(hubNc);
    expect((await hubJsm.streams.info('CFG')).state.messages).toBe(200);
    await publishCfg(hubNc, 200, 300);
    await waitForLeafLink(hub, 30000);
    si = await waitForStream(() => leafJsm, 'CFGMIRROR', (s) => s.state.last_seq >= 300, 60000, servers);
    expect(si.state.messages).toBe(300);
    expect(si.state.first_seq).toBe(1);
    expect(si.state.last_seq).toBe(300);
    expectSameMessages(await readRange(leafNc, 'CFGMIRROR', 1, 300), await readRange(hubNc, 'CFG', 1, 300));
  });

  it('KV down: a hub bucket mirrored into the leaf is readable there, also while the hub is down, and writes through the mirror land on the hub', { timeout: 90000 }, async () => {
    const { hub, leaf } = await linkedPair(kind);
    const servers = [hub, leaf];
    const leafNc = await client(leaf);
    let hubNc = await client(hub);
    const hubKv = await new Kvm(hubNc).create('settings', { history: 1 });
    await hubKv.put('mode', 'auto');
    await hubKv.put('rate', '10');
    await hubKv.put('rate', '20');
    await hubKv.put('gone', 'x');
    await hubKv.delete('gone');

    await untilAnswered(() => jetstreamManager(leafNc, { domain: 'hub' }), 'JetStream domain hub from a leaf client', 15000);
    const leafKv = await new Kvm(leafNc).create('local_settings', { mirror: { name: 'settings', external: { api: HUB_API, deliver: '' } } });
    const leafJsm = await jetstreamManager(leafNc);
    // The hub bucket's stream holds 5 messages (history 1 keeps only the last per key, so seqs 2, 4 are gone).
    const hubStream = await (await jetstreamManager(hubNc)).streams.info('KV_settings');
    let si = await waitForStream(() => leafJsm, 'KV_local_settings', (s) => s.state.last_seq >= hubStream.state.last_seq, 30000, servers);
    expect(si.config.mirror?.name).toBe('KV_settings');
    expect(si.state.messages).toBe(hubStream.state.messages);

    expect((await leafKv.get('mode'))?.string()).toBe('auto');
    const rate = await leafKv.get('rate');
    expect(rate?.string()).toBe('20');
    expect(rate?.revision).toBe(3);
    expect((await leafKv.get('gone'))?.operation).toBe('DEL');

    // Writes through the mirror go to the hub bucket ($JS.hub.API.$KV.settings.<key>) and come back down.
    const rev = await leafKv.put('mode', 'manual');
    expect(rev).toBe(6);
    expect((await hubKv.get('mode'))?.string()).toBe('manual');
    si = await waitForStream(() => leafJsm, 'KV_local_settings', (s) => s.state.last_seq >= 6, 30000, servers);
    expect((await leafKv.get('mode'))?.string()).toBe('manual');

    await hub.stop('SIGTERM');
    expect((await leafKv.get('mode'))?.string()).toBe('manual');
    expect((await leafKv.get('rate'))?.string()).toBe('20');

    await hub.start();
    hubNc = await client(hub);
    const hubKv2 = await new Kvm(hubNc).open('settings');
    expect(await hubKv2.put('rate', '30')).toBe(7);
    await waitForLeafLink(hub, 30000);
    si = await waitForStream(() => leafJsm, 'KV_local_settings', (s) => s.state.last_seq >= 7, 60000, servers);
    const rate2 = await leafKv.get('rate');
    expect(rate2?.string()).toBe('30');
    expect(rate2?.revision).toBe(7);
  });

  it('leaf killed and restarted on its store: the hub source and the leaf mirror both resume, nothing lost or doubled', { timeout: 120000 }, async () => {
    const { hub, leaf: firstLeaf, storeDir } = await linkedPair(kind);
    let leaf = firstLeaf;
    let leafNc = await client(leaf);
    const hubNc = await client(hub);
    const hubJsm = await jetstreamManager(hubNc);
    let leafJsm = await jetstreamManager(leafNc);

    await leafJsm.streams.add({ name: 'TELE', subjects: ['tele.>'] });
    await hubJsm.streams.add({ name: 'CFG', subjects: ['cfg.>'] });
    await untilAnswered(() => jetstreamManager(hubNc, { domain: 'edge' }), 'JetStream domain edge from a hub client', 15000);
    await untilAnswered(() => jetstreamManager(leafNc, { domain: 'hub' }), 'JetStream domain hub from a leaf client', 15000);
    await hubJsm.streams.add({ name: 'HUBTELE', sources: [{ name: 'TELE', external: { api: EDGE_API, deliver: '' } }] });
    await leafJsm.streams.add({ name: 'CFGMIRROR', mirror: { name: 'CFG', external: { api: HUB_API, deliver: '' } } });

    await publishTele(leafNc, 0, 150);
    await publishCfg(hubNc, 0, 150);
    let servers: RunningServer[] = [hub, leaf];
    await waitForStream(() => hubJsm, 'HUBTELE', (s) => s.state.last_seq >= 150, 30000, servers);
    await waitForStream(() => leafJsm, 'CFGMIRROR', (s) => s.state.last_seq >= 150, 30000, servers);

    // The leaf dies without a goodbye; configuration keeps changing on the hub meanwhile.
    await leaf.stop('SIGKILL');
    await publishCfg(hubNc, 150, 300);

    leaf = await edgeLeaf(kind, hub, storeDir);
    servers = [hub, leaf];
    leafNc = await client(leaf);
    leafJsm = await jetstreamManager(leafNc);
    const tele = await leafJsm.streams.info('TELE');
    expect(tele.state.messages).toBe(150);
    expect(tele.state.last_seq).toBe(150);
    await publishTele(leafNc, 150, 300);

    let mirror = await waitForStream(() => leafJsm, 'CFGMIRROR', (s) => s.state.last_seq >= 300, 60000, servers);
    expect(mirror.state.messages).toBe(300);
    expect(mirror.state.first_seq).toBe(1);
    let sourced = await waitForStream(() => hubJsm, 'HUBTELE', (s) => s.state.last_seq >= 300, 60000, servers);
    expect(sourced.state.messages).toBe(300);

    // Barriers: one more message each way; a duplicate of anything earlier would come before it.
    await publishTele(leafNc, 300, 301);
    await publishCfg(hubNc, 300, 301);
    sourced = await waitForStream(() => hubJsm, 'HUBTELE', (s) => s.state.last_seq >= 301, 30000, servers);
    mirror = await waitForStream(() => leafJsm, 'CFGMIRROR', (s) => s.state.last_seq >= 301, 30000, servers);
    expect(sourced.state.messages).toBe(301);
    expect(mirror.state.messages).toBe(301);
    expectTeleCopy(await readRange(hubNc, 'HUBTELE', 1, 301), 301);
    expectSameMessages(await readRange(leafNc, 'CFGMIRROR', 1, 301), await readRange(hubNc, 'CFG', 1, 301));
  });
});
