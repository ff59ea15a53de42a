/**
 * Mirrors and sources (jetstream-api.md §12a), one table run with the real nats.js clients against
 * Debian's nats-server 2.9.10 and our bundle: config checks, what a mirror and a source store,
 * several sources into one stream, external origins through an API prefix, stream info blocks,
 * an origin that goes away and comes back, restarts and a SIGKILL in the middle of a catch-up.
 *
 * External origins: nats-server 2.9.10 does not route its own internal requests through its
 * domain mapping, so the tables reach `$JS.X.API` through an ApiLink, a plain client that forwards
 * `$JS.X.API.>` to `$JS.API.>` and can be "cut" like a leafnode link. nats-edge's own domain
 * (`$JS.edge.API`, the path a leafnode will use) is tested on nats-edge alone.
 *
 * Where nats-edge deliberately differs from 2.9.10 (its false "detected cycle", unchecked names),
 * the case says so and asserts each server's answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { pollUntil, serverKinds, stopAllServers, within, type ServerKind } from '../helpers/servers.js';
import { apiRequest, expectErrorBody, expectNoResponders, JsServer, type ApiResponse } from '../helpers/js.js';

/** A message as STREAM.MSG.GET returns it, decoded. */
interface Stored {
  seq: number;
  subject: string;
  data: string;
  hdrs: string | undefined;
  time: string;
}

async function getMsg(nc: NatsConnection, stream: string, seq: number): Promise<Stored | null> {
  const r = await apiRequest(nc, `$JS.API.STREAM.MSG.GET.${stream}`, { seq });
  const m = r['message'] as { subject: string; seq: number; data?: string; hdrs?: string; time: string } | undefined;
  if (m === undefined) return null;
  return {
    seq: m.seq,
    subject: m.subject,
    data: m.data === undefined ? '' : Buffer.from(m.data, 'base64').toString('utf8'),
    hdrs: m.hdrs === undefined ? undefined : Buffer.from(m.hdrs, 'base64').toString('utf8'),
    time: m.time,
  };
}

/** Every stored message of a (small) stream, in sequence order. */
async function readAll(nc: NatsConnection, jsm: JetStreamManager, stream: string): Promise<Stored[]> {
  const si = await jsm.streams.info(stream);
  const out: Stored[] = [];
  if (si.state.messages === 0) return out;
  for (let seq = si.state.first_seq; seq <= si.state.last_seq; seq++) {
    const m = await getMsg(nc, stream, seq);
    if (m !== null) out.push(m);
  }
  return out;
}

/** `seq:subject:data` per message: a compact, exact picture of a stream. */
function brief(msgs: Stored[]): string[] {
  return msgs.map((m) => `${m.seq}:${m.subject}:${m.data}`);
}

function sourceHeader(m: Stored): string | undefined {
  return /\r\nNats-Stream-Source: ([^\r]*)\r\n/.exec(m.hdrs ?? '')?.[1];
}

/** nats-server's short hash of an external API prefix (the `<name>:<hash>` origin token). */
function apiHash(api: string): string {
  const digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const sum = createHash('sha256').update(api).digest();
  let out = '';
  for (let i = 0; i < 8; i++) out += digits[sum[i]! % 62];
  return out;
}

/**
 * Stands between a stream and the `$JS.API` of its origin like a leafnode link: forwards
 * `<prefix>.>` requests to `$JS.API.>` and relays the answers. `cut()` drops everything and
 * deletes the consumers created through it (the hub side of a dead link loses them too);
 * `restore()` forwards again. It counts the requests it dropped, so a test can await the retries.
 */
class ApiLink {
  up = true;
  dropped = 0;
  private readonly consumers: { stream: string; name: string }[] = [];
  private waiters: { n: number; wake: () => void }[] = [];

  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
  ) {
    nc.subscribe(`${prefix}.>`, { callback: (_err, m) => void this.forward(m) });
  }

  private async forward(m: Msg): Promise<void> {
    const rest = m.subject.slice(this.prefix.length + 1);
    if (!this.up) {
      this.dropped++;
      this.waiters = this.waiters.filter((w) => {
        if (this.dropped < w.n) return true;
        w.wake();
        return false;
      });
      return;
    }
    if (m.reply === undefined || m.reply === '') {
      this.nc.publish(`$JS.API.${rest}`, m.data);
      return;
    }
    let answer: Msg;
    try {
      answer = await this.nc.request(`$JS.API.${rest}`, m.data, { timeout: 2000 });
    } catch {
      return;
    }
    const create = /^CONSUMER\.CREATE\.([^.]+)/.exec(rest);
    if (create !== null) {
      const name = (JSON.parse(answer.string()) as { name?: string }).name;
      if (name !== undefined) this.consumers.push({ stream: create[1]!, name });
    }
    if (this.up) this.nc.publish(m.reply, answer.data);
  }

  async cut(): Promise<void> {
    this.up = false;
    for (const c of this.consumers.splice(0)) await apiRequest(this.nc, `$JS.API.CONSUMER.DELETE.${c.stream}.${c.name}`);
  }

  restore(): void {
    this.up = true;
  }

  /** Resolves once at least n requests were dropped while cut. */
  droppedAtLeast(n: number, ms = 15000): Promise<void> {
    if (this.dropped >= n) return Promise.resolve();
    return within(new Promise<void>((wake) => this.waiters.push({ n, wake })), ms, `${n} requests dropped by the cut link (have ${this.dropped})`);
  }
}

describe.each(serverKinds())('jetstream mirrors and sources: %s', (kind: ServerKind) => {
  let server: JsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  let link: ApiLink;

  beforeAll(async () => {
    server = await JsServer.start(kind, { config: 'jetstream {\n  domain: edge\n}\n' });
    nc = await server.connect();
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    link = new ApiLink(await server.connect(), '$JS.X.API');
  });

  afterAll(async () => {
    await server?.closeConnections();
    await stopAllServers();
  });

  const create = (cfg: Record<string, unknown>): Promise<ApiResponse> => apiRequest(nc, `$JS.API.STREAM.CREATE.${String(cfg['name'])}`, cfg);
  const update = (cfg: Record<string, unknown>): Promise<ApiResponse> => apiRequest(nc, `$JS.API.STREAM.UPDATE.${String(cfg['name'])}`, cfg);
  const info = (name: string): Promise<StreamInfo> => jsm.streams.info(name);

  /** Waits until `stream` holds `n` messages (there is no event for a mirror's progress). */
  async function holds(stream: string, n: number, ms = 15000): Promise<StreamInfo> {
    const si = await pollUntil(() => info(stream), (i) => i.state.messages >= n, ms);
    expect(si.state.messages, `${stream} messages`).toBe(n);
    return si;
  }

  function expectOk(res: ApiResponse): Record<string, unknown> {
    expect(res.error, JSON.stringify(res.error)).toBeUndefined();
    return res['config'] as Record<string, unknown>;
  }

  // ---- configuration -------------------------------------------------------------------------

  it('config: what a mirror and a source may not be, with nats-server codes and texts', async () => {
    expectOk(await create({ name: 'O1', subjects: ['o1.>'], max_msg_size: 1000 }));
    expectErrorBody(await create({ name: 'V1', subjects: ['v1'], mirror: { name: 'O1' } }), 10034, 400, 'stream mirrors can not contain subjects');
    expectErrorBody(await create({ name: 'V2', mirror: { name: 'O1' }, sources: [{ name: 'O1' }] }), 10031, 400, 'stream mirrors can not also contain other sources');
    expectErrorBody(await create({ name: 'V3', mirror: { name: 'V3' } }), 10052, 500, 'detected cycle');
    expectErrorBody(await create({ name: 'V4', sources: [{ name: 'V4' }] }), 10052, 500, 'detected cycle');
    expectErrorBody(
      await create({ name: 'V5', sources: [{ name: 'O1', filter_subject: 'zzz' }] }),
      10052,
      500,
      "source 'O1' filter subject 'zzz' does not overlap with any origin stream subject",
    );
    expectErrorBody(
      await create({ name: 'V6', mirror: { name: 'O1', filter_subject: 'zzz' } }),
      10052,
      500,
      "mirror 'O1' filter subject 'zzz' does not overlap with any origin stream subject",
    );
    expectErrorBody(await create({ name: 'V7', mirror: { name: 'O1' }, max_msg_size: 100 }), 10030, 400, 'stream mirror must have max message size >= source');
    expectErrorBody(await create({ name: 'V8', sources: [{ name: 'O1' }], max_msg_size: 100 }), 10046, 400, 'stream source must have max message size >= target');
    expectErrorBody(
      await create({ name: 'V9', mirror: { name: 'O1', external: { api: '$JS.API' } } }),
      10021,
      400,
      'stream external api prefix $JS.API must not overlap with $JS.API',
    );
    expectErrorBody(
      await create({ name: 'V10', sources: [{ name: 'O1', external: { api: '$JS.X.API', deliver: 'd.>' } }] }),
      10024,
      400,
      'stream external delivery prefix d.> must not contain wildcards',
    );
    expectErrorBody(
      await create({ name: 'V11', mirror: { name: 'O1', external: { api: 'a.*.b' } } }),
      10052,
      500,
      'stream external api prefix "a.*.b" must be a valid subject without wildcards',
    );
    expectErrorBody(await create({ name: 'V12', mirror: { name: 'O1', opt_start_time: 'yesterday' } }), 10025, 400, 'invalid JSON');
    expectErrorBody(await create({ name: 'V13', mirror: { name: 'O1', opt_start_seq: -1 } }), 10025, 400, 'invalid JSON');

    // A mirror is fixed once created: no subjects, no other origin, not removed.
    expectOk(await create({ name: 'V14', mirror: { name: 'O1' } }));
    expectErrorBody(await update({ name: 'V14', mirror: { name: 'O1' }, subjects: ['x'] }), 10034, 400, 'stream mirrors can not contain subjects');
    expectErrorBody(await update({ name: 'V14', mirror: { name: 'V1' } }), 10055, 400, 'stream mirror configuration can not be updated');
    expectErrorBody(await update({ name: 'V14' }), 10055, 400, 'stream mirror configuration can not be updated');
    // A real cycle through two streams is refused whichever way it is closed.
    expectOk(await create({ name: 'CY1', sources: [{ name: 'CY2' }] }));
    expectErrorBody(await create({ name: 'CY2', sources: [{ name: 'CY1' }] }), 10052, 500, 'detected cycle');
    expectErrorBody(await update({ name: 'O1', subjects: ['o1.>'], max_msg_size: 1000, sources: [{ name: 'V14' }] }), 10052, 500, 'detected cycle');
    for (const n of ['V14', 'CY1']) await jsm.streams.delete(n);
  });

  it('config: what the echo looks like (no subjects, no dedupe window on a mirror; external with deliver)', async () => {
    expectOk(await create({ name: 'O2', subjects: ['o2.>'] }));
    const m = expectOk(await create({ name: 'E1', mirror: { name: 'O2', opt_start_time: '2020-01-02T03:04:05.120000000Z' } }));
    expect(m['subjects']).toBeUndefined();
    expect(m['duplicate_window']).toBeUndefined();
    expect(m['mirror']).toEqual({ name: 'O2', opt_start_time: '2020-01-02T03:04:05.12Z' });
    const s = expectOk(await create({ name: 'E2', sources: [{ name: 'O2', filter_subject: 'o2.a', external: { api: '$JS.X.API' } }] }));
    expect(s['subjects']).toBeUndefined();
    expect(s['duplicate_window']).toBe(120_000_000_000);
    expect(s['sources']).toEqual([{ name: 'O2', filter_subject: 'o2.a', external: { api: '$JS.X.API', deliver: '' } }]);
    // Creating it again with the same config is not a change (2.9.10 sees one in the sources).
    const again = await create({ name: 'E2', sources: [{ name: 'O2', filter_subject: 'o2.a', external: { api: '$JS.X.API' } }] });
    if (kind === 'nats-server') expectErrorBody(again, 10058, 400);
    else expectOk(again);
    // Removing the sources gives the stream its default subject back.
    const u = expectOk(await update({ name: 'E2', sources: [] }));
    expect(u['subjects']).toEqual(['E2']);
    for (const n of ['E1', 'E2', 'O2']) await jsm.streams.delete(n);
  });

  it("config: reaching one origin along two paths is no cycle (2.9.10's false positive is not copied)", async () => {
    expectOk(await create({ name: 'DA', subjects: ['da.>'] }));
    expectOk(await create({ name: 'DB', mirror: { name: 'DA' } }));
    const ab = await create({ name: 'DC', sources: [{ name: 'DA', filter_subject: 'da.x' }, { name: 'DB', filter_subject: 'da.y' }] });
    const ba = await create({ name: 'DD', sources: [{ name: 'DB', filter_subject: 'da.y' }, { name: 'DA', filter_subject: 'da.x' }] });
    expectOk(ba);
    if (kind === 'nats-server') expectErrorBody(ab, 10052, 500, 'detected cycle');
    else expectOk(ab);
  });

  it('config: origin names must be stream names and sources unique (as 2.10; 2.9.10 accepts them)', async () => {
    const bad = [
      await create({ name: 'N1', mirror: { name: '' } }),
      await create({ name: 'N2', mirror: { name: 'a.b' } }),
      await create({ name: 'N3', sources: [{ name: 'x*' }] }),
      await create({ name: 'N4', sources: [{ name: 'DA' }, { name: 'DA' }] }),
    ];
    if (kind === 'nats-server') {
      for (const r of bad) expectOk(r);
      return;
    }
    expectErrorBody(bad[0]!, 10142, 400, 'mirrored stream name is invalid');
    expectErrorBody(bad[1]!, 10142, 400, 'mirrored stream name is invalid');
    expectErrorBody(bad[2]!, 10141, 400, 'sourced stream name is invalid');
    expectErrorBody(bad[3]!, 10140, 400, 'duplicate source configuration detected');
    // The same origin with two different filters is two sources.
    expectOk(await create({ name: 'N5', sources: [{ name: 'DA', filter_subject: 'da.x' }, { name: 'DA', filter_subject: 'da.y' }] }));
  });

  // ---- mirrors -------------------------------------------------------------------------------

  it('mirror: the origin’s sequences, subjects, payloads, headers and times; no subjects of its own', async () => {
    await jsm.streams.add({ name: 'MA', subjects: ['ma.>'] });
    const h = headers();
    h.set('X-Custom', 'v1');
    h.set('Nats-Msg-Id', 'id-1');
    await js.publish('ma.x', 'one', { headers: h });
    await js.publish('ma.y', 'two');
    await js.publish('ma.x', 'three');
    expectOk(await create({ name: 'MM', mirror: { name: 'MA' } }));
    const si = await holds('MM', 3);
    const origin = await readAll(nc, jsm, 'MA');
    const mirror = await readAll(nc, jsm, 'MM');
    expect(brief(mirror)).toEqual(['1:ma.x:one', '2:ma.y:two', '3:ma.x:three']);
    // Byte for byte: headers (none added) and the origin's store times.
    expect(mirror).toEqual(origin);
    expect(si.config.subjects ?? []).toEqual([]);
    expect(si.mirror).toMatchObject({ name: 'MA', lag: 0 });
    expect(si.mirror?.active).toBeGreaterThanOrEqual(0);
    expect(si.sources ?? []).toEqual([]);

    // It follows what comes next.
    await js.publish('ma.y', 'four');
    await holds('MM', 4);
    expect(brief(await readAll(nc, jsm, 'MM')).at(-1)).toBe('4:ma.y:four');
    // Publishes never land in it: the origin stores them, and the mirror's name is nobody's subject.
    await expectNoResponders(nc.request('MM', 'direct', { timeout: 2000 }));
    expect((await info('MA')).state.messages).toBe(4);
  });

  it('mirror: opt_start_seq and opt_start_time skip the earlier messages; a filter keeps the gaps', async () => {
    await jsm.streams.add({ name: 'MB', subjects: ['mb.>'] });
    for (let i = 1; i <= 5; i++) await js.publish(i % 2 === 1 ? 'mb.x' : 'mb.y', `m${i}`);
    const third = await getMsg(nc, 'MB', 3);
    expectOk(await create({ name: 'MB1', mirror: { name: 'MB', opt_start_seq: 3 } }));
    expectOk(await create({ name: 'MB2', mirror: { name: 'MB', opt_start_time: third!.time } }));
    expectOk(await create({ name: 'MB3', mirror: { name: 'MB', filter_subject: 'mb.x' } }));
    for (const n of ['MB1', 'MB2']) {
      const si = await holds(n, 3);
      expect(si.state.first_seq).toBe(3);
      expect(si.state.last_seq).toBe(5);
      expect(brief(await readAll(nc, jsm, n))).toEqual(['3:mb.x:m3', '4:mb.y:m4', '5:mb.x:m5']);
    }
    const f = await holds('MB3', 3);
    expect(brief(await readAll(nc, jsm, 'MB3'))).toEqual(['1:mb.x:m1', '3:mb.x:m3', '5:mb.x:m5']);
    expect(f.state.num_deleted).toBe(2);
  });

  // ---- sources -------------------------------------------------------------------------------

  it('sources: new sequences, per-origin order, Nats-Stream-Source, a filter per source, own subjects too', async () => {
    await jsm.streams.add({ name: 'SA', subjects: ['sa.>'] });
    await jsm.streams.add({ name: 'SB', subjects: ['sb.>'] });
    const h = headers();
    h.set('X-Custom', 'v1');
    await js.publish('sa.x', 'a1', { headers: h });
    await js.publish('sa.y', 'a2');
    await js.publish('sa.x', 'a3');
    await js.publish('sb.x', 'b1');
    await js.publish('sb.x', 'b2');
    expectOk(
      await create({ name: 'AGG', subjects: ['agg.>'], sources: [{ name: 'SA', filter_subject: 'sa.x' }, { name: 'SB' }] }),
    );
    await holds('AGG', 4);
    await js.publish('agg.own', 'own');
    await js.publish('sa.x', 'a4');
    await js.publish('sb.x', 'b3');
    const all = await (async () => {
      await holds('AGG', 7);
      return readAll(nc, jsm, 'AGG');
    })();
    expect(all.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const fromA = all.filter((m) => sourceHeader(m)?.startsWith('SA '));
    const fromB = all.filter((m) => sourceHeader(m)?.startsWith('SB '));
    expect(fromA.map((m) => `${m.subject}:${m.data}:${sourceHeader(m)}`)).toEqual(['sa.x:a1:SA 1', 'sa.x:a3:SA 3', 'sa.x:a4:SA 4']);
    expect(fromB.map((m) => `${m.subject}:${m.data}:${sourceHeader(m)}`)).toEqual(['sb.x:b1:SB 1', 'sb.x:b2:SB 2', 'sb.x:b3:SB 3']);
    // The origin's headers stay, the source header comes last.
    expect(fromA[0]!.hdrs).toBe('NATS/1.0\r\nX-Custom: v1\r\nNats-Stream-Source: SA 1\r\n\r\n');
    expect(all.filter((m) => m.subject === 'agg.own').map((m) => m.hdrs)).toEqual([undefined]);
    const si = await info('AGG');
    // (nats-server lists them in map order.)
    expect(si.sources?.map((s) => ({ name: s.name, lag: s.lag })).sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: 'SA', lag: 0 },
      { name: 'SB', lag: 0 },
    ]);
    expect(si.mirror).toBeUndefined();
  });

  it('sources: a message sourced again carries only the latest Nats-Stream-Source', async () => {
    expectOk(await create({ name: 'CH1', sources: [{ name: 'SB' }] }));
    expectOk(await create({ name: 'CH2', sources: [{ name: 'CH1' }] }));
    await holds('CH2', 3);
    expect((await readAll(nc, jsm, 'CH2')).map((m) => m.hdrs)).toEqual([1, 2, 3].map((i) => `NATS/1.0\r\nNats-Stream-Source: CH1 ${i}\r\n\r\n`));
  });

  it('sources: opt_start_seq (which wins over opt_start_time) and a source added by update', async () => {
    await jsm.streams.add({ name: 'SC', subjects: ['sc.>'] });
    for (let i = 1; i <= 5; i++) await js.publish('sc.x', `c${i}`);
    const second = await getMsg(nc, 'SC', 2);
    expectOk(await create({ name: 'SC1', sources: [{ name: 'SC', opt_start_seq: 4, opt_start_time: second!.time }] }));
    await holds('SC1', 2);
    expect((await readAll(nc, jsm, 'SC1')).map((m) => `${m.seq}:${m.data}:${sourceHeader(m)}`)).toEqual(['1:c4:SC 4', '2:c5:SC 5']);
    expectOk(await create({ name: 'SC2', sources: [{ name: 'SC', opt_start_time: second!.time }] }));
    await holds('SC2', 4);
    expectOk(await update({ name: 'SC2', sources: [{ name: 'SC', opt_start_time: second!.time }, { name: 'SA' }] }));
    await holds('SC2', 8);
    const added = (await readAll(nc, jsm, 'SC2')).slice(4).map((m) => sourceHeader(m));
    expect(added).toEqual(['SA 1', 'SA 2', 'SA 3', 'SA 4']);
  });

  it('sources: the expectations and ids of the origin are not checked again; ids dedupe across origins', async () => {
    await jsm.streams.add({ name: 'SD', subjects: ['sd.>'] });
    await jsm.streams.add({ name: 'SE', subjects: ['se.>'] });
    expectOk(await create({ name: 'SDE', sources: [{ name: 'SD' }, { name: 'SE' }] }));
    await js.publish('se.a', 'first');
    await holds('SDE', 1);
    // True at the origin (empty), false at the aggregate (which holds one message).
    const expect1 = headers();
    expect1.set('Nats-Expected-Last-Sequence', '0');
    await js.publish('sd.a', 'expected', { headers: expect1 });
    const id = headers();
    id.set('Nats-Msg-Id', 'same');
    await js.publish('sd.a', 'first-id', { headers: id });
    await js.publish('se.a', 'second-id', { headers: id });
    await js.publish('sd.a', 'last');
    await js.publish('se.a', 'last');
    if (kind === 'nats-server') {
      // 2.9.10 checks the origin's Nats-Expected-Last-Sequence against the aggregate, refuses the
      // message and then asks for it again and again: nothing more of SD arrives.
      const si = await pollUntil(() => info('SDE'), (i) => i.state.messages >= 3);
      expect((await readAll(nc, jsm, 'SDE')).map((m) => m.data)).toEqual(['first', 'second-id', 'last']);
      expect(si.state.messages).toBe(3);
      return;
    }
    await holds('SDE', 5);
    // The second id is a duplicate of the first within the aggregate's window.
    // (Each origin's order is kept; how the two interleave depends on arrival.)
    expect((await readAll(nc, jsm, 'SDE')).map((m) => `${sourceHeader(m)}:${m.data}`).sort()).toEqual([
      'SD 1:expected',
      'SD 2:first-id',
      'SD 3:last',
      'SE 1:first',
      'SE 3:last',
    ]);
  });

  // ---- external origins ------------------------------------------------------------------------

  it('external: through an API prefix, `<name>:<hash>` in the header, deliver prefix, info shows external', async () => {
    await jsm.streams.add({ name: 'XA', subjects: ['xa.>'] });
    await js.publish('xa.1', 'x1');
    await js.publish('xa.2', 'x2');
    expectOk(await create({ name: 'XS', sources: [{ name: 'XA', external: { api: '$JS.X.API' } }] }));
    expectOk(await create({ name: 'XM', mirror: { name: 'XA', external: { api: '$JS.X.API', deliver: 'dlv.xm' } } }));
    await holds('XS', 2);
    await holds('XM', 2);
    await js.publish('xa.3', 'x3');
    await holds('XS', 3);
    await holds('XM', 3);
    const token = `XA:${apiHash('$JS.X.API')}`;
    expect((await readAll(nc, jsm, 'XS')).map((m) => `${m.seq}:${m.subject}:${m.data}:${sourceHeader(m)}`)).toEqual([
      `1:xa.1:x1:${token} 1`,
      `2:xa.2:x2:${token} 2`,
      `3:xa.3:x3:${token} 3`,
    ]);
    expect(brief(await readAll(nc, jsm, 'XM'))).toEqual(['1:xa.1:x1', '2:xa.2:x2', '3:xa.3:x3']);
    expect((await info('XS')).sources?.[0]).toMatchObject({ name: 'XA', external: { api: '$JS.X.API', deliver: '' }, lag: 0 });
    expect((await info('XM')).mirror).toMatchObject({ name: 'XA', external: { api: '$JS.X.API', deliver: 'dlv.xm' }, lag: 0 });
  });

  it('external: the link is cut for a while; both catch up exactly once it is back', async () => {
    await link.cut();
    const before = link.dropped;
    // Their consumers are gone: both notice and ask again (the link drops the requests).
    await link.droppedAtLeast(before + 2);
    for (let i = 4; i <= 8; i++) await js.publish(`xa.${i}`, `x${i}`);
    expect((await info('XM')).state.messages).toBe(3);
    link.restore();
    await holds('XS', 8, 20000);
    await holds('XM', 8, 20000);
    const token = `XA:${apiHash('$JS.X.API')}`;
    expect((await readAll(nc, jsm, 'XS')).map((m) => `${m.seq}:${m.data}:${sourceHeader(m)}`)).toEqual(
      [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `${i}:x${i}:${token} ${i}`),
    );
    expect(brief(await readAll(nc, jsm, 'XM'))).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((i) => `${i}:xa.${i}:x${i}`));
    if (kind === 'nats-edge') {
      expect(server.srv.logs()).toMatch(/stream 'XM': mirror 'XA' via \$JS\.X\.API: no heartbeats from the origin; retrying/);
      expect(server.srv.logs()).toMatch(/stream 'XM': mirror 'XA' via \$JS\.X\.API: reading again from origin seq 4/);
    }
  });

  it.runIf(kind === 'nats-edge')("external: our own domain's API ($JS.edge.API), the path a leafnode uses", async () => {
    await jsm.streams.add({ name: 'DOM', subjects: ['dom.>'] });
    await js.publish('dom.a', 'd1');
    expectOk(await create({ name: 'DOMS', sources: [{ name: 'DOM', external: { api: '$JS.edge.API', deliver: 'edge.dlv' } }] }));
    expectOk(await create({ name: 'DOMM', mirror: { name: 'DOM', external: { api: '$JS.edge.API' } } }));
    await js.publish('dom.a', 'd2');
    await holds('DOMS', 2);
    await holds('DOMM', 2);
    const token = `DOM:${apiHash('$JS.edge.API')}`;
    expect((await readAll(nc, jsm, 'DOMS')).map((m) => sourceHeader(m))).toEqual([`${token} 1`, `${token} 2`]);
    expect(brief(await readAll(nc, jsm, 'DOMM'))).toEqual(['1:dom.a:d1', '2:dom.a:d2']);
  });

  it('deleting a mirror or an aggregate ends its reading: the origin keeps no consumer for it', async () => {
    await jsm.streams.add({ name: 'GA', subjects: ['ga.>'] });
    await js.publish('ga.1', 'g');
    expectOk(await create({ name: 'GM', mirror: { name: 'GA' } }));
    expectOk(await create({ name: 'GS', sources: [{ name: 'GA' }] }));
    await holds('GM', 1);
    await holds('GS', 1);
    // The readers are direct consumers: hidden from consumer_count, but counted by $JS.API.INFO.
    const withReaders = (await jsm.getAccountInfo()).consumers;
    expect(withReaders).toBeGreaterThanOrEqual(2);
    await jsm.streams.delete('GM');
    await jsm.streams.delete('GS');
    // nats-server lets the origin's reader consumers go when their inactivity threshold passes.
    const after = await pollUntil(async () => (await jsm.getAccountInfo()).consumers, (n) => n === withReaders - 2, kind === 'nats-edge' ? 5000 : 25000);
    expect(after).toBe(withReaders - 2);
    await js.publish('ga.2', 'g');
    expect((await info('GA')).state.messages).toBe(2);
  });

  // ---- origins that come and go ------------------------------------------------------------------

  it('an origin that does not exist yet: info shows the error, copying starts once it is created', async () => {
    expectOk(await create({ name: 'LM', mirror: { name: 'LATE' } }));
    expectOk(await create({ name: 'LS', sources: [{ name: 'LATE' }] }));
    const waiting = await pollUntil(() => info('LM'), (i) => i.mirror?.error !== undefined);
    expect(waiting.mirror).toMatchObject({ name: 'LATE', lag: 0, active: -1, error: { code: 404, err_code: 10059, description: 'stream not found' } });
    // The source's own retry may report a moment after the mirror's.
    const source = await pollUntil(() => info('LS'), (i) => i.sources?.[0]?.error !== undefined);
    expect(source.sources?.[0]).toMatchObject({ name: 'LATE', error: { err_code: 10059 } });
    await jsm.streams.add({ name: 'LATE', subjects: ['late.>'] });
    await js.publish('late.a', 'l1');
    await js.publish('late.a', 'l2');
    await holds('LM', 2);
    await holds('LS', 2);
    const si = await pollUntil(() => info('LM'), (i) => i.mirror?.error === undefined);
    expect(si.mirror?.error).toBeUndefined();
  });

  it('an origin deleted and recreated: copying resumes after the last sequence copied (as nats-server)', async () => {
    await jsm.streams.delete('LATE');
    await pollUntil(() => info('LM'), (i) => i.mirror?.error !== undefined);
    await jsm.streams.add({ name: 'LATE', subjects: ['late.>'] });
    for (let i = 1; i <= 4; i++) await js.publish('late.a', `n${i}`);
    await holds('LM', 4);
    await holds('LS', 4);
    // The new origin's first two sequences are those the mirror already holds: they are not copied.
    expect(brief(await readAll(nc, jsm, 'LM'))).toEqual(['1:late.a:l1', '2:late.a:l2', '3:late.a:n3', '4:late.a:n4']);
    expect((await readAll(nc, jsm, 'LS')).map((m) => `${m.data}:${sourceHeader(m)}`)).toEqual(['l1:LATE 1', 'l2:LATE 2', 'n3:LATE 3', 'n4:LATE 4']);
  });

  // ---- restarts ------------------------------------------------------------------------------------

  it('a restart resumes where each one stopped: nothing twice, nothing lost', async () => {
    await jsm.streams.add({ name: 'RA', subjects: ['ra.>'] });
    expectOk(await create({ name: 'RM', mirror: { name: 'RA' } }));
    expectOk(await create({ name: 'RS', sources: [{ name: 'RA' }, { name: 'XA', external: { api: '$JS.X.API' } }] }));
    for (let i = 1; i <= 3; i++) await js.publish('ra.x', `r${i}`);
    await holds('RM', 3);
    await holds('RS', 11);
    await server.restart();
    nc = await server.connect();
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    link = new ApiLink(await server.connect(), '$JS.X.API');
    for (let i = 4; i <= 6; i++) await js.publish('ra.x', `r${i}`);
    await js.publish('xa.9', 'x9');
    await holds('RM', 6);
    await holds('RS', 15);
    expect(brief(await readAll(nc, jsm, 'RM'))).toEqual([1, 2, 3, 4, 5, 6].map((i) => `${i}:ra.x:r${i}`));
    const hdrs = (await readAll(nc, jsm, 'RS')).map((m) => sourceHeader(m)!);
    expect(hdrs.filter((h) => h.startsWith('RA ')).sort()).toEqual([1, 2, 3, 4, 5, 6].map((i) => `RA ${i}`));
    const token = `XA:${apiHash('$JS.X.API')}`;
    expect(hdrs.filter((h) => h.startsWith('XA:'))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => `${token} ${i}`));
  });
});

/**
 * SIGKILL while a mirror and a source are catching up on a large origin, then a restart on the
 * same store: both end with every origin message exactly once, in order.
 */
describe.each(serverKinds())('jetstream mirrors and sources, crash during catch-up: %s', (kind: ServerKind) => {
  const N = 30_000;

  afterAll(async () => {
    await stopAllServers();
  });

  it('a SIGKILL in the middle of a catch-up loses nothing and copies nothing twice', async () => {
    const server = await JsServer.start(kind);
    let nc = await server.connect();
    let jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await jsm.streams.add({ name: 'BIG', subjects: ['big.>'] });
    const pending: Promise<unknown>[] = [];
    for (let i = 1; i <= N; i++) {
      pending.push(js.publish(`big.${i % 7}`, Buffer.from(`#${i}#`.padEnd(600, '.'))));
      if (pending.length >= 512) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
    expect((await jsm.streams.info('BIG')).state.messages).toBe(N);

    await apiRequest(nc, '$JS.API.STREAM.CREATE.CM', { name: 'CM', mirror: { name: 'BIG' } });
    await apiRequest(nc, '$JS.API.STREAM.CREATE.CS', { name: 'CS', sources: [{ name: 'BIG' }] });
    // Kill once both have started and one has copied somewhere between 1/15 and 1/2 of the origin.
    const threshold = 2000 + Math.floor(Math.random() * (N / 2 - 2000));
    const partway = await pollUntil(
      async () => [(await jsm.streams.info('CM')).state.messages, (await jsm.streams.info('CS')).state.messages],
      ([m, s]) => m! > 0 && s! > 0 && Math.max(m!, s!) >= threshold,
      20000,
    );
    expect(partway[0]! > 0 && partway[1]! > 0 && Math.min(partway[0]!, partway[1]!) < N, `progress before the kill: ${String(partway)}`).toBe(true);
    console.log(`${kind}: killed with ${partway[0]} / ${partway[1]} of ${N} copied`);
    await server.restart('SIGKILL');
    nc = await server.connect();
    jsm = await jetstreamManager(nc);

    for (const name of ['CM', 'CS']) {
      const si = await pollUntil(() => jsm.streams.info(name), (i) => i.state.messages >= N, 60000);
      expect(si.state.messages, name).toBe(N);
      expect(si.state.last_seq, name).toBe(N);
    }
    // Read both back in full: payload index, stream seq and source header all agree.
    for (const name of ['CM', 'CS']) {
      const jsc = jetstream(nc);
      const consumer = await jsc.consumers.get(name);
      const msgs = await consumer.consume();
      let expected = 1;
      const problems: string[] = [];
      await within(
        (async () => {
          for await (const m of msgs) {
            const i = Number(/^#(\d+)#/.exec(m.string())?.[1] ?? -1);
            if (i !== expected || m.seq !== expected) problems.push(`${name} seq ${m.seq}: payload #${i}, expected #${expected}`);
            if (name === 'CS' && m.headers?.get('Nats-Stream-Source') !== `BIG ${expected}`) {
              problems.push(`${name} seq ${m.seq}: header ${String(m.headers?.get('Nats-Stream-Source'))}`);
            }
            if (problems.length > 5) break;
            if (++expected > N) break;
          }
        })(),
        60000,
        `reading ${name}`,
      );
      await msgs.close();
      expect(problems).toEqual([]);
      expect(expected).toBe(N + 1);
    }
    await server.stop();
  }, 180_000);
});
