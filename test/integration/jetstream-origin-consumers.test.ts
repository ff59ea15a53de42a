/**
 * The consumers on the origin side of mirrors and sources, one table run against Debian's
 * nats-server 2.9.10 and our bundle: `direct: true` consumers (what a mirror or source reads its
 * origin with) are hidden from CONSUMER.NAMES / LIST, consumer_count and max_consumers but still
 * deliver as push consumers, and a consumer filter may select what a stream's origins bring in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { pollUntil, serverKinds, stopAllServers, type ServerKind } from '../helpers/servers.js';
import { apiRequest, collect, JsServer, type ApiResponse } from '../helpers/js.js';

describe.each(serverKinds())('jetstream consumers of mirror and source origins: %s', (kind: ServerKind) => {
  let server: JsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;

  beforeAll(async () => {
    server = await JsServer.start(kind);
    nc = await server.connect();
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
  });

  afterAll(async () => {
    await server?.closeConnections();
    await stopAllServers();
  });

  const createStream = async (cfg: Record<string, unknown>): Promise<void> => {
    const res = await apiRequest(nc, `$JS.API.STREAM.CREATE.${String(cfg['name'])}`, { storage: 'file', ...cfg });
    expect(res.error, JSON.stringify(res.error)).toBeUndefined();
  };
  const createConsumer = (stream: string, config: Record<string, unknown>, subject = `$JS.API.CONSUMER.CREATE.${stream}`): Promise<ApiResponse> =>
    apiRequest(nc, subject, { stream_name: stream, config });
  const names = async (stream: string): Promise<{ total: unknown; consumers: unknown }> => {
    const r = await apiRequest(nc, `$JS.API.CONSUMER.NAMES.${stream}`);
    return { total: r['total'], consumers: r['consumers'] };
  };
  const listed = async (stream: string): Promise<{ total: unknown; names: string[] }> => {
    const r = await apiRequest(nc, `$JS.API.CONSUMER.LIST.${stream}`);
    return { total: r['total'], names: ((r['consumers'] as { name: string }[] | null) ?? []).map((c) => c.name) };
  };
  const info = (stream: string): Promise<StreamInfo> => jsm.streams.info(stream);
  const accountConsumers = async (): Promise<number> => (await apiRequest(nc, '$JS.API.INFO'))['consumers'] as number;
  /** The err_code of a create response, or 'ok'. */
  const outcome = (r: ApiResponse): number | 'ok' => r.error?.err_code ?? 'ok';

  async function holds(stream: string, n: number): Promise<void> {
    const si = await pollUntil(() => info(stream), (i) => i.state.messages >= n, 15000);
    expect(si.state.messages, `${stream} messages`).toBe(n);
  }

  // ---- direct consumers ------------------------------------------------------------------------

  it("a mirror's and a source's readers are not listed or counted on the origin, but exist", async () => {
    await createStream({ name: 'DA', subjects: ['da.>'] });
    await js.publish('da.1', 'x');
    const before = await accountConsumers();
    await createStream({ name: 'DB', sources: [{ name: 'DA' }] });
    await createStream({ name: 'DM', mirror: { name: 'DA' } });
    await holds('DB', 1);
    await holds('DM', 1);
    expect(await names('DA')).toEqual({ total: 0, consumers: [] });
    expect(await listed('DA')).toEqual({ total: 0, names: [] });
    expect((await info('DA')).state.consumer_count).toBe(0);
    // $JS.API.INFO does count them (nats-server 2.9.10 too): they are there, only hidden.
    expect(await accountConsumers()).toBe(before + 2);
    // /jsz leaves them out, in its total and in the stream's consumer details.
    const jsz = (await (await fetch(`http://127.0.0.1:${server.srv.httpPort}/jsz?consumers=1`)).json()) as {
      consumers: number;
      account_details: { stream_detail: { name: string; consumer_detail?: unknown[] }[] }[];
    };
    expect(jsz.consumers).toBe(0);
    const da = jsz.account_details[0]!.stream_detail.find((d) => d.name === 'DA');
    expect(da?.consumer_detail ?? []).toEqual([]);
    // A consumer of the client's own is listed beside them.
    const own = await createConsumer('DA', { durable_name: 'own', ack_policy: 'explicit' }, '$JS.API.CONSUMER.DURABLE.CREATE.DA.own');
    expect(outcome(own)).toBe('ok');
    expect(await names('DA')).toEqual({ total: 1, consumers: ['own'] });
    expect((await info('DA')).state.consumer_count).toBe(1);
  });

  it('a source of a stream at max_consumers takes no slot: one public consumer still fits', async () => {
    await createStream({ name: 'XA', subjects: ['xa.>'], max_consumers: 1 });
    await js.publish('xa.1', 'x');
    await createStream({ name: 'XB', sources: [{ name: 'XA' }] });
    await holds('XB', 1);
    expect(outcome(await createConsumer('XA', { ack_policy: 'explicit', name: 'first' }, '$JS.API.CONSUMER.CREATE.XA.first'))).toBe('ok');
    expect(outcome(await createConsumer('XA', { ack_policy: 'explicit', name: 'second' }, '$JS.API.CONSUMER.CREATE.XA.second'))).toBe(10026);
    expect((await info('XA')).state.consumer_count).toBe(1);
  });

  it('a direct consumer made by hand delivers as a push consumer, shows in INFO, hides from NAMES', async () => {
    await createStream({ name: 'HD', subjects: ['hd.>'] });
    const { sub, c } = collect(nc, 'hd-deliver');
    await nc.flush();
    const r = await createConsumer('HD', { deliver_subject: 'hd-deliver', ack_policy: 'none', direct: true });
    expect(outcome(r)).toBe('ok');
    const name = r['name'] as string;
    expect((r['config'] as Record<string, unknown>)['direct']).toBe(true);
    await js.publish('hd.a', 'one');
    await js.publish('hd.b', 'two');
    const got = await c.until(2);
    expect(got.map((m) => `${m.subject}:${m.string()}`)).toEqual(['hd.a:one', 'hd.b:two']);
    const ci = await apiRequest(nc, `$JS.API.CONSUMER.INFO.HD.${name}`);
    expect(ci.error).toBeUndefined();
    expect((ci['config'] as Record<string, unknown>)['direct']).toBe(true);
    expect((ci['delivered'] as Record<string, unknown>)['stream_seq']).toBe(2);
    expect(await names('HD')).toEqual({ total: 0, consumers: [] });
    expect((await info('HD')).state.consumer_count).toBe(0);
    sub.unsubscribe();
    const del = await apiRequest(nc, `$JS.API.CONSUMER.DELETE.HD.${name}`);
    expect(del['success']).toBe(true);
  });

  it('direct must be push and ephemeral; the check runs after the push/pull rules, before filter and policy', async () => {
    await createStream({ name: 'DR', subjects: ['dr.>'] });
    const pull = { ack_policy: 'explicit', direct: true };
    const r = await createConsumer('DR', pull);
    expect(r.error).toEqual({ code: 400, err_code: 10090, description: 'consumer direct requires a push based consumer' });
    const d = await createConsumer('DR', { ...pull, durable_name: 'dd', deliver_subject: 'dr-d' }, '$JS.API.CONSUMER.DURABLE.CREATE.DR.dd');
    expect(d.error).toEqual({ code: 400, err_code: 10091, description: 'consumer direct requires an ephemeral consumer' });
    // Pull and durable: the push rule is first.
    expect(outcome(await createConsumer('DR', { ...pull, durable_name: 'dd' }, '$JS.API.CONSUMER.DURABLE.CREATE.DR.dd'))).toBe(10090);
    expect(outcome(await createConsumer('DR', { ...pull, idle_heartbeat: 1_000_000_000 }))).toBe(10088);
    expect(outcome(await createConsumer('DR', { ...pull, max_batch: -1 }))).toBe(10114);
    expect(outcome(await createConsumer('DR', { ...pull, num_replicas: 3 }))).toBe(10074);
    expect(outcome(await createConsumer('DR', { ...pull, filter_subject: 'zz' }))).toBe(10090);
    expect(outcome(await createConsumer('DR', { ...pull, deliver_policy: 'by_start_sequence' }))).toBe(10090);
    expect(outcome(await createConsumer('DR', { ack_policy: 'none', deliver_subject: 'dr-x', max_ack_pending: 3, direct: true }))).toBe(10082);
    expect(outcome(await createConsumer('DR', { ack_policy: 'none', deliver_subject: 'dr-y', filter_subject: 'zz', direct: true }))).toBe(10093);
  });

  it('a direct consumer is still refused at max_consumers, though it does not count towards it', async () => {
    await createStream({ name: 'DL', subjects: ['dl.>'], max_consumers: 1 });
    expect(outcome(await createConsumer('DL', { ack_policy: 'none', deliver_subject: 'dl-1', direct: true }))).toBe('ok');
    expect(outcome(await createConsumer('DL', { ack_policy: 'none', deliver_subject: 'dl-2' }))).toBe('ok');
    expect(outcome(await createConsumer('DL', { ack_policy: 'none', deliver_subject: 'dl-3', direct: true }))).toBe(10026);
    expect((await info('DL')).state.consumer_count).toBe(1);
  });

  it('workqueue: a direct consumer skips the ack rules but is a peer to the others', async () => {
    await createStream({ name: 'DW', subjects: ['dw.>'], retention: 'workqueue' });
    expect(outcome(await createConsumer('DW', { ack_policy: 'none', deliver_subject: 'dw-1', direct: true }))).toBe('ok');
    const r = await createConsumer('DW', { ack_policy: 'explicit', durable_name: 'w' }, '$JS.API.CONSUMER.DURABLE.CREATE.DW.w');
    expect(r.error?.err_code).toBe(10099);
    expect(outcome(await createConsumer('DW', { ack_policy: 'explicit', deliver_subject: 'dw-2', filter_subject: 'dw.a', direct: true }))).toBe('ok');
  });

  it('an update may turn a named ephemeral direct or public: listing follows', async () => {
    await createStream({ name: 'DU', subjects: ['du.>'] });
    const at = '$JS.API.CONSUMER.CREATE.DU.nm';
    expect(outcome(await createConsumer('DU', { name: 'nm', ack_policy: 'none', deliver_subject: 'du-1', direct: true }, at))).toBe('ok');
    expect(await names('DU')).toEqual({ total: 0, consumers: [] });
    const r = await createConsumer('DU', { name: 'nm', ack_policy: 'none', deliver_subject: 'du-1' }, at);
    expect(outcome(r)).toBe('ok');
    expect((r['config'] as Record<string, unknown>)['direct']).toBeUndefined();
    expect(await names('DU')).toEqual({ total: 1, consumers: ['nm'] });
    // nats-server 2.9.10 keeps counting it as created (direct, so 0) while listing it: nats-edge
    // deliberately counts what it lists.
    expect((await info('DU')).state.consumer_count).toBe(kind === 'nats-server' ? 0 : 1);
  });

  it('push-only fields the pull rules check are kept on a push consumer (max_batch -1 is echoed)', async () => {
    await createStream({ name: 'PB', subjects: ['pb.>'] });
    const r = await createConsumer('PB', { ack_policy: 'none', deliver_subject: 'pb-1', max_batch: -1, max_expires: 5 });
    expect(outcome(r)).toBe('ok');
    const cfg = r['config'] as Record<string, unknown>;
    expect([cfg['max_batch'], cfg['max_expires']]).toEqual([-1, 5]);
  });

  it('check order as 2.9.10: filter before deliver policy, pull limits before deliver policy', async () => {
    await createStream({ name: 'CO', subjects: ['co.>'] });
    expect(outcome(await createConsumer('CO', { ack_policy: 'explicit', deliver_policy: 'by_start_sequence', filter_subject: 'zz' }))).toBe(10093);
    expect(outcome(await createConsumer('CO', { ack_policy: 'explicit', deliver_policy: 'by_start_sequence', max_batch: -1 }))).toBe(10114);
    expect(outcome(await createConsumer('CO', { ack_policy: 'explicit', filter_subject: 'zz', num_replicas: 3 }))).toBe(10074);
    expect(outcome(await createConsumer('CO', { ack_policy: 'none', deliver_subject: 'co.x', filter_subject: 'zz' }))).toBe(10081);
    const fc = { ack_policy: 'none', deliver_subject: 'co-fc', flow_control: true };
    expect(outcome(await createConsumer('CO', { ...fc, filter_subject: 'zz' }))).toBe(10093);
    expect(outcome(await createConsumer('CO', { ...fc, deliver_policy: 'by_start_sequence' }))).toBe(10094);
  });

  // ---- filters over origins ----------------------------------------------------------------------

  it("a filter may select the stream's own subjects or its origins', followed through mirrors and sources", async () => {
    await createStream({ name: 'FA', subjects: ['fa.>'] });
    await createStream({ name: 'FS', subjects: ['fs.>'], sources: [{ name: 'FA' }] });
    await createStream({ name: 'FB', sources: [{ name: 'FA' }] });
    await createStream({ name: 'FM', mirror: { name: 'FA' } });
    await createStream({ name: 'FC', sources: [{ name: 'FB' }] });
    await createStream({ name: 'FF', sources: [{ name: 'FA', filter_subject: 'fa.one' }] });
    await createStream({ name: 'FX', sources: [{ name: 'FA', external: { api: '$JS.nowhere.API' } }] });
    const cases: [string, string, number | 'ok'][] = [
      ['FS', 'fa.x', 'ok'],
      ['FS', 'fs.x', 'ok'],
      ['FS', 'fa.*', 'ok'],
      ['FS', '>', 'ok'],
      ['FS', 'zz', 10093],
      ['FB', 'fa.x', 'ok'],
      ['FB', '>', 'ok'],
      ['FB', 'zz', 10093],
      ['FM', 'fa.x', 'ok'],
      ['FM', 'zz', 10093],
      ['FC', 'fa.x', 'ok'],
      ['FC', 'zz', 10093],
      // The origin's subjects count, not the source's own filter.
      ['FF', 'fa.two', 'ok'],
      ['FF', 'zz', 10093],
      // An external origin may hold anything.
      ['FX', 'zz', 'ok'],
    ];
    const got: string[] = [];
    for (const [stream, filter] of cases) {
      const r = await createConsumer(stream, { ack_policy: 'explicit', filter_subject: filter });
      got.push(`${stream} ${filter} ${outcome(r)}`);
    }
    expect(got).toEqual(cases.map(([s, f, want]) => `${s} ${f} ${want}`));
  });

  it('a consumer of a stream with its own subjects and a source gets the sourced messages it filters', async () => {
    await createStream({ name: 'GA', subjects: ['ga.>'] });
    await createStream({ name: 'GS', subjects: ['gs.>'], sources: [{ name: 'GA' }] });
    await js.publish('ga.1', 'sourced');
    await js.publish('gs.1', 'own');
    await holds('GS', 2);
    const r = await createConsumer('GS', { ack_policy: 'none', filter_subject: 'ga.>' });
    expect(outcome(r)).toBe('ok');
    expect(r['num_pending']).toBe(1);
  });
});
