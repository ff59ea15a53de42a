/**
 * JetStream streams, one table run with the real nats.js clients against Debian's nats-server
 * (`-js -sd <dir>`) and our bundle with the same flags: every case passes on the real server
 * first, so a failure on nats-edge is a deviation from it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { pollUntil, serverKinds, stopAllServers } from '../helpers/servers.js';
import { apiRequest, expectApiError, expectErrorBody, expectNoResponders, JsServer, ns, rawRequest } from '../helpers/js.js';

const ZERO_TIME = '0001-01-01T00:00:00Z';

describe.each(serverKinds())('jetstream streams: %s', (kind) => {
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

  async function publishN(subject: string | ((i: number) => string), n: number, payload = (i: number) => `m${i}`): Promise<number[]> {
    const seqs: number[] = [];
    for (let i = 1; i <= n; i++) {
      const subj = typeof subject === 'string' ? subject : subject(i);
      seqs.push((await js.publish(subj, payload(i))).seq);
    }
    return seqs;
  }

  async function addStream(cfg: Partial<StreamConfig> & { name: string }): Promise<void> {
    await jsm.streams.add(cfg);
  }

  it('INFO: account info counts streams and consumers and carries the limits', async () => {
    const before = await apiRequest(nc, '$JS.API.INFO');
    expect(before.type).toBe('io.nats.jetstream.api.v1.account_info_response');
    expect(before.error).toBeUndefined();
    const limits = before['limits'] as Record<string, unknown>;
    expect(limits).toMatchObject({ max_memory: -1, max_storage: -1, max_streams: -1, max_consumers: -1 });
    expect(typeof before['memory']).toBe('number');
    expect(typeof before['storage']).toBe('number');
    const api = before['api'] as { total: number; errors: number };
    expect(api.total).toBeGreaterThan(0);
    expect(api.errors).toBeGreaterThanOrEqual(0);

    await addStream({ name: 'AI1', subjects: ['ai1.>'] });
    await addStream({ name: 'AI2', subjects: ['ai2.>'], storage: StorageType.Memory });
    await jsm.consumers.add('AI1', { durable_name: 'c1', ack_policy: AckPolicy.Explicit });
    await js.publish('ai1.x', 'hello');
    await js.publish('ai2.x', 'hello');

    const after = await jsm.getAccountInfo();
    expect(after.streams).toBe((before['streams'] as number) + 2);
    expect(after.consumers).toBe((before['consumers'] as number) + 1);
    expect(after.storage).toBeGreaterThan(before['storage'] as number);
    expect(after.memory).toBeGreaterThan(before['memory'] as number);
    expect(after.limits.max_streams).toBe(-1);
    // Every API call so far was counted; none of them failed.
    expect(after.api.total).toBeGreaterThan(api.total);
    expect(after.api.errors).toBe(api.errors);
  });

  it('create with defaults echoes the full config and an empty state', async () => {
    const res = await apiRequest(nc, '$JS.API.STREAM.CREATE.DEF', { name: 'DEF', subjects: ['def.>'] });
    expect(res.type).toBe('io.nats.jetstream.api.v1.stream_create_response');
    expect(res.error).toBeUndefined();
    expect(res['did_create']).toBe(true);
    expect(res['config']).toMatchObject({
      name: 'DEF',
      subjects: ['def.>'],
      retention: 'limits',
      max_consumers: -1,
      max_msgs: -1,
      max_bytes: -1,
      max_age: 0,
      max_msgs_per_subject: -1,
      max_msg_size: -1,
      discard: 'old',
      storage: 'file',
      num_replicas: 1,
      duplicate_window: 120_000_000_000,
      sealed: false,
      deny_delete: false,
      deny_purge: false,
      allow_rollup_hdrs: false,
      allow_direct: false,
      mirror_direct: false,
    });
    expect(res['state']).toMatchObject({
      messages: 0,
      bytes: 0,
      first_seq: 0,
      first_ts: ZERO_TIME,
      last_seq: 0,
      last_ts: ZERO_TIME,
      consumer_count: 0,
    });
    expect(Date.parse(res['created'] as string)).toBeGreaterThan(Date.now() - 60_000);

    // No subjects: the stream takes its own name as its subject.
    const own = await apiRequest(nc, '$JS.API.STREAM.CREATE.OWNSUBJ', { name: 'OWNSUBJ' });
    expect((own['config'] as StreamConfig).subjects).toEqual(['OWNSUBJ']);
    const pa = await js.publish('OWNSUBJ', 'x');
    expect(pa).toMatchObject({ stream: 'OWNSUBJ', seq: 1, duplicate: false });

    // A max_age below the 2 min default shrinks the duplicate window to it.
    const aged = await jsm.streams.add({ name: 'AGED', subjects: ['aged'], max_age: ns(30_000) });
    expect(aged.config.max_age).toBe(ns(30_000));
    expect(aged.config.duplicate_window).toBe(ns(30_000));
  });

  it('create is idempotent for the same config; a different config is 10058, overlapping subjects 10065', async () => {
    const cfg = { name: 'IDEM', subjects: ['idem.>'], max_msgs: 10 };
    const first = await apiRequest(nc, '$JS.API.STREAM.CREATE.IDEM', cfg);
    expect(first['did_create']).toBe(true);
    await js.publish('idem.a', '1');
    const again = await apiRequest(nc, '$JS.API.STREAM.CREATE.IDEM', cfg);
    expect(again.error).toBeUndefined();
    // The sheet says did_create is absent on a repeat; nats-server 2.9.10 answers true.
    expect(again['did_create']).toBe(true);
    // The existing stream was left alone.
    expect((again['state'] as { messages: number }).messages).toBe(1);

    const diff = await apiRequest(nc, '$JS.API.STREAM.CREATE.IDEM', { ...cfg, max_msgs: 11 });
    expect(diff.type).toBe('io.nats.jetstream.api.v1.stream_create_response');
    expectErrorBody(diff, 10058, 400, 'stream name already in use with a different configuration');
    await expectApiError(jsm.streams.add({ name: 'IDEM', subjects: ['other.>'] }), 10058, 400);

    await expectApiError(
      jsm.streams.add({ name: 'OVERLAP', subjects: ['idem.x'] }),
      10065,
      400,
      'subjects overlap with an existing stream',
    );
    await expectApiError(jsm.streams.add({ name: 'OVERLAP', subjects: ['>'] }), 10065, 400);
    await expectApiError(jsm.streams.info('OVERLAP'), 10059, 404);
    expect((await jsm.streams.info('IDEM')).config.max_msgs).toBe(10);
  });

  it('update: subjects move, lowering max_msgs trims at once, retention cannot change', async () => {
    await addStream({ name: 'UPD', subjects: ['upd.old'] });
    await publishN('upd.old', 10);
    const moved = await jsm.streams.update('UPD', { subjects: ['upd.new'] });
    expect(moved.config.subjects).toEqual(['upd.new']);
    expect(moved.state.messages).toBe(10);
    await expect(js.publish('upd.old', 'x', { timeout: 1000 })).rejects.toBeInstanceOf(Error);
    expect((await js.publish('upd.new', 'x')).seq).toBe(11);

    const trimmed = await jsm.streams.update('UPD', { subjects: ['upd.new'], max_msgs: 3 });
    expect(trimmed.config.max_msgs).toBe(3);
    expect(trimmed.state).toMatchObject({ messages: 3, first_seq: 9, last_seq: 11 });

    await expectApiError(
      jsm.streams.update('UPD', { subjects: ['upd.new'], max_msgs: 3, retention: RetentionPolicy.Workqueue } as never),
      10052,
      500,
      'stream configuration update can not change retention policy',
    );
    await expectApiError(jsm.streams.update('NOPE_UPD', { subjects: ['x.y'] }), 10059, 404, 'stream not found');
    const info = await jsm.streams.info('UPD');
    expect(info.config.retention).toBe('limits');
    expect(info.state.messages).toBe(3);
  });

  it('publishing to the old subject after a move finds no responders', async () => {
    await addStream({ name: 'MV', subjects: ['mv.a'] });
    await jsm.streams.update('MV', { subjects: ['mv.b'] });
    await expectNoResponders(nc.request('mv.a', 'x', { timeout: 1000 }));
  });

  it('info with subjects_filter reports per-subject counts', async () => {
    await addStream({ name: 'SF', subjects: ['sf.>'] });
    await publishN((i) => ['sf.a.1', 'sf.a.2', 'sf.a.1', 'sf.b.1', 'sf.a.1'][i - 1] as string, 5);
    const all = await jsm.streams.info('SF');
    expect(all.state.num_subjects).toBe(3);
    expect(all.state.subjects).toBeUndefined();
    const some = await jsm.streams.info('SF', { subjects_filter: 'sf.a.>' });
    expect(some.state.subjects).toEqual({ 'sf.a.1': 3, 'sf.a.2': 1 });
    const raw = await apiRequest(nc, '$JS.API.STREAM.INFO.SF', { subjects_filter: '>' });
    expect((raw['state'] as { subjects: Record<string, number> }).subjects).toEqual({ 'sf.a.1': 3, 'sf.a.2': 1, 'sf.b.1': 1 });
    expect(raw['total']).toBe(3);
    expect(raw['offset']).toBe(0);
  });

  it('names and list: paging by offset and filtering by subject', async () => {
    await addStream({ name: 'PGA', subjects: ['pg.a.>'] });
    await addStream({ name: 'PGB', subjects: ['pg.b.*'] });
    await addStream({ name: 'PGC', subjects: ['pg.c'] });

    const names: string[] = [];
    for await (const n of jsm.streams.names()) names.push(n);
    expect(names).toEqual(expect.arrayContaining(['PGA', 'PGB', 'PGC', 'DEF', 'IDEM']));
    const total = names.length;

    const page0 = await apiRequest(nc, '$JS.API.STREAM.NAMES', { offset: 0 });
    expect(page0.type).toBe('io.nats.jetstream.api.v1.stream_names_response');
    expect(page0['total']).toBe(total);
    expect(page0['offset']).toBe(0);
    expect(page0['limit']).toBe(1024);
    expect(page0['streams']).toHaveLength(total);
    const page2 = await apiRequest(nc, '$JS.API.STREAM.NAMES', { offset: 2 });
    expect(page2['total']).toBe(total);
    expect(page2['offset']).toBe(2);
    expect(page2['streams']).toHaveLength(total - 2);

    const filtered: string[] = [];
    for await (const n of jsm.streams.names('pg.b.x')) filtered.push(n);
    expect(filtered).toEqual(['PGB']);
    const byWildcard = await apiRequest(nc, '$JS.API.STREAM.NAMES', { subject: 'pg.>' });
    expect([...(byWildcard['streams'] as string[])].sort()).toEqual(['PGA', 'PGB', 'PGC']);
    expect(byWildcard['total']).toBe(3);
    expect(await jsm.streams.find('pg.a.q.r')).toBe('PGA');

    const listed: string[] = [];
    for await (const si of jsm.streams.list('pg.c')) {
      listed.push(si.config.name);
      expect(si.config.subjects).toEqual(['pg.c']);
      expect(si.state.messages).toBe(0);
    }
    expect(listed).toEqual(['PGC']);
    const list = await apiRequest(nc, '$JS.API.STREAM.LIST', { offset: 1 });
    expect(list.type).toBe('io.nats.jetstream.api.v1.stream_list_response');
    expect(list['total']).toBe(total);
    expect(list['offset']).toBe(1);
    expect(list['limit']).toBe(256);
    expect(list['streams']).toHaveLength(total - 1);
  });

  it('delete: success, then 10059 for info, delete and publish', async () => {
    await addStream({ name: 'DEL', subjects: ['del.>'] });
    await publishN('del.a', 2);
    const res = await apiRequest(nc, '$JS.API.STREAM.DELETE.DEL');
    expect(res).toEqual({ type: 'io.nats.jetstream.api.v1.stream_delete_response', success: true });
    const err = await expectApiError(jsm.streams.info('DEL'), 10059, 404, 'stream not found');
    expect(err.name).toBe('StreamNotFoundError');
    await expectApiError(jsm.streams.delete('DEL'), 10059, 404);
    await expectNoResponders(nc.request('del.a', 'x', { timeout: 1000 }));
    // The name can be taken again, starting from sequence 1.
    await addStream({ name: 'DEL', subjects: ['del.>'] });
    expect((await js.publish('del.a', 'again')).seq).toBe(1);
  });

  it('purge: all, by subject filter, below a sequence, keep newest on a gap-free stream', async () => {
    await addStream({ name: 'PUR', subjects: ['pur.>'] });
    await publishN((i) => (i % 2 === 1 ? 'pur.a' : 'pur.b'), 10);
    const all = await apiRequest(nc, '$JS.API.STREAM.PURGE.PUR');
    expect(all).toEqual({ type: 'io.nats.jetstream.api.v1.stream_purge_response', success: true, purged: 10 });
    let info = await jsm.streams.info('PUR');
    expect(info.state).toMatchObject({ messages: 0, first_seq: 11, last_seq: 10 });
    // Sequences continue after a purge.
    expect((await js.publish('pur.a', 'next')).seq).toBe(11);

    await publishN((i) => (i % 2 === 1 ? 'pur.b' : 'pur.a'), 9); // 12..20: b at even seqs
    expect(await jsm.streams.purge('PUR', { filter: 'pur.b' })).toMatchObject({ success: true, purged: 5 });
    info = await jsm.streams.info('PUR');
    expect(info.state).toMatchObject({ messages: 5, first_seq: 11, last_seq: 20 });
    expect(await jsm.streams.getMessage('PUR', { last_by_subj: 'pur.b' })).toBeNull();

    await addStream({ name: 'PURSEQ', subjects: ['purseq'] });
    await publishN('purseq', 10);
    expect(await jsm.streams.purge('PURSEQ', { seq: 7 })).toMatchObject({ success: true, purged: 6 });
    info = await jsm.streams.info('PURSEQ');
    expect(info.state).toMatchObject({ messages: 4, first_seq: 7, last_seq: 10 });

    expect(await jsm.streams.purge('PURSEQ', { keep: 2 })).toMatchObject({ success: true, purged: 2 });
    info = await jsm.streams.info('PURSEQ');
    expect(info.state).toMatchObject({ messages: 2, first_seq: 9, last_seq: 10 });
    expect((await jsm.streams.getMessage('PURSEQ', { seq: 9 }))?.string()).toBe('m9');
  });

  it('MSG.GET by seq, last_by_subj and next_by_subj; a miss is 10037', async () => {
    await addStream({ name: 'GET', subjects: ['get.>'] });
    const h = headers();
    h.set('X-Tag', 'one');
    await js.publish('get.a', 'A1', { headers: h });
    await js.publish('get.b', 'B1');
    await js.publish('get.a', 'A2');
    await js.publish('get.c', '');

    const bySeq = await jsm.streams.getMessage('GET', { seq: 1 });
    expect(bySeq?.subject).toBe('get.a');
    expect(bySeq?.seq).toBe(1);
    expect(bySeq?.string()).toBe('A1');
    expect(bySeq?.header.get('X-Tag')).toBe('one');
    const last = await jsm.streams.getMessage('GET', { last_by_subj: 'get.a' });
    expect([last?.seq, last?.string()]).toEqual([3, 'A2']);
    const lastWild = await jsm.streams.getMessage('GET', { last_by_subj: 'get.*' });
    expect(lastWild?.seq).toBe(4);
    const next = (await apiRequest(nc, '$JS.API.STREAM.MSG.GET.GET', { next_by_subj: 'get.b', seq: 1 }))['message'];
    expect(next).toMatchObject({ seq: 2, subject: 'get.b', data: Buffer.from('B1').toString('base64') });
    const nextA = (await apiRequest(nc, '$JS.API.STREAM.MSG.GET.GET', { next_by_subj: 'get.a', seq: 2 }))['message'];
    expect(nextA).toMatchObject({ seq: 3, subject: 'get.a' });

    const raw = await apiRequest(nc, '$JS.API.STREAM.MSG.GET.GET', { seq: 2 });
    expect(raw.type).toBe('io.nats.jetstream.api.v1.stream_msg_get_response');
    const message = raw['message'] as Record<string, unknown>;
    expect(message).toMatchObject({ subject: 'get.b', seq: 2, data: Buffer.from('B1').toString('base64') });
    expect(message['hdrs']).toBeUndefined();
    expect(Date.parse(message['time'] as string)).toBeGreaterThan(Date.now() - 60_000);
    const withHdrs = (await apiRequest(nc, '$JS.API.STREAM.MSG.GET.GET', { seq: 1 }))['message'] as { hdrs: string };
    expect(Buffer.from(withHdrs.hdrs, 'base64').toString()).toMatch(/^NATS\/1\.0\r\nX-Tag: one\r\n\r\n$/);
    const empty = (await apiRequest(nc, '$JS.API.STREAM.MSG.GET.GET', { seq: 4 }))['message'] as Record<string, unknown>;
    expect(empty['data']).toBeUndefined();

    const miss = await apiRequest(nc, '$JS.API.STREAM.MSG.GET.GET', { seq: 99 });
    expectErrorBody(miss, 10037, 404, 'no message found');
    expect(await jsm.streams.getMessage('GET', { last_by_subj: 'get.zzz' })).toBeNull();
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.MSG.GET.GET', { next_by_subj: 'get.b', seq: 3 }), 10037, 404, 'no message found');
  });

  it('MSG.DELETE (erase or not) leaves an interior gap; deny_delete refuses it', async () => {
    await addStream({ name: 'MDEL', subjects: ['mdel'] });
    await publishN('mdel', 5);
    expect(await jsm.streams.deleteMessage('MDEL', 2)).toBe(true);
    const raw = await apiRequest(nc, '$JS.API.STREAM.MSG.DELETE.MDEL', { seq: 3, no_erase: true });
    expect(raw).toEqual({ type: 'io.nats.jetstream.api.v1.stream_msg_delete_response', success: true });
    expect(await jsm.streams.getMessage('MDEL', { seq: 2 })).toBeNull();
    let info = await jsm.streams.info('MDEL');
    expect(info.state).toMatchObject({ messages: 3, first_seq: 1, last_seq: 5, num_deleted: 2 });
    // Deleting the first message moves first_seq instead of counting a gap.
    expect(await jsm.streams.deleteMessage('MDEL', 1)).toBe(true);
    info = await jsm.streams.info('MDEL');
    expect(info.state).toMatchObject({ messages: 2, first_seq: 4, last_seq: 5 });
    await expectApiError(jsm.streams.deleteMessage('MDEL', 2), 10057, 500);

    await addStream({ name: 'NODEL', subjects: ['nodel'], deny_delete: true });
    await publishN('nodel', 2);
    await expectApiError(jsm.streams.deleteMessage('NODEL', 1), 10057, 500, 'message delete not permitted');
    await expectApiError(jsm.streams.deleteMessage('NODEL', 1, false), 10057, 500, 'message delete not permitted');
    expect((await jsm.streams.info('NODEL')).state.messages).toBe(2);
  });

  it('DIRECT.GET: query form and subject form with the stored headers; 404 when missing', async () => {
    await addStream({ name: 'DIR', subjects: ['dir.>'], allow_direct: true });
    const h = headers();
    h.set('Nats-Msg-Id', 'id1');
    await js.publish('dir.a', 'A1');
    await js.publish('dir.b', 'B1');
    await js.publish('dir.a', 'A2', { headers: h });

    const bySeq = await jsm.direct.getMessage('DIR', { seq: 2 });
    expect([bySeq?.seq, bySeq?.subject, bySeq?.string()]).toEqual([2, 'dir.b', 'B1']);
    const bySubj = await jsm.direct.getMessage('DIR', { last_by_subj: 'dir.a' });
    expect([bySubj?.seq, bySubj?.string()]).toEqual([3, 'A2']);
    const next = await jsm.direct.getMessage('DIR', { next_by_subj: 'dir.a', seq: 2 });
    expect(next?.seq).toBe(3);

    const q = await rawRequest(nc, '$JS.API.DIRECT.GET.DIR', { seq: 3 });
    expect(q.headers?.code ?? 0).toBe(0);
    expect(q.subject).toMatch(/^_INBOX\./);
    expect(q.headers?.get('Nats-Msg-Id')).toBe('id1');
    expect(q.headers?.get('Nats-Stream')).toBe('DIR');
    expect(q.headers?.get('Nats-Subject')).toBe('dir.a');
    expect(q.headers?.get('Nats-Sequence')).toBe('3');
    expect(Date.parse(q.headers?.get('Nats-Time-Stamp') ?? '')).toBeGreaterThan(Date.now() - 60_000);
    expect(q.string()).toBe('A2');

    const s = await rawRequest(nc, '$JS.API.DIRECT.GET.DIR.dir.b');
    expect(s.headers?.get('Nats-Sequence')).toBe('2');
    expect(s.headers?.get('Nats-Subject')).toBe('dir.b');
    expect(s.string()).toBe('B1');

    const miss = await rawRequest(nc, '$JS.API.DIRECT.GET.DIR.dir.none');
    expect(miss.headers?.code).toBe(404);
    expect(miss.headers?.description).toBe('Message Not Found');
    expect(miss.data.length).toBe(0);
    const missSeq = await rawRequest(nc, '$JS.API.DIRECT.GET.DIR', { seq: 50 });
    expect(missSeq.headers?.code).toBe(404);
    expect(await jsm.direct.getMessage('DIR', { seq: 50 })).toBeNull();

    // Without allow_direct nobody answers DIRECT.GET (2.9.10: the request times out).
    await addStream({ name: 'NODIR', subjects: ['nodir'] });
    await js.publish('nodir', 'x');
    await expect(nc.request('$JS.API.DIRECT.GET.NODIR', JSON.stringify({ seq: 1 }), { timeout: 500 })).rejects.toBeInstanceOf(Error);
  });

  it('limits: max_msgs, max_bytes and max_msgs_per_subject drop the oldest', async () => {
    await addStream({ name: 'LMSGS', subjects: ['lmsgs'], max_msgs: 5 });
    await publishN('lmsgs', 8);
    let info = await jsm.streams.info('LMSGS');
    expect(info.state).toMatchObject({ messages: 5, first_seq: 4, last_seq: 8 });

    await addStream({ name: 'LBYTES', subjects: ['lbytes'], max_bytes: 1000 });
    await publishN('lbytes', 10, () => 'x'.repeat(200));
    info = await jsm.streams.info('LBYTES');
    expect(info.state.bytes).toBeLessThanOrEqual(1000);
    expect(info.state.messages).toBeGreaterThanOrEqual(3);
    expect(info.state.messages).toBeLessThanOrEqual(4);
    expect(info.state.last_seq).toBe(10);
    expect(info.state.first_seq).toBe(11 - info.state.messages);

    await addStream({ name: 'LPERSUBJ', subjects: ['lps.*'], max_msgs_per_subject: 2 });
    await publishN((i) => (i <= 4 ? 'lps.a' : 'lps.b'), 5);
    info = await jsm.streams.info('LPERSUBJ', { subjects_filter: '>' });
    expect(info.state.messages).toBe(3);
    expect(info.state.subjects).toEqual({ 'lps.a': 2, 'lps.b': 1 });
    expect(await jsm.streams.getMessage('LPERSUBJ', { seq: 2 })).toBeNull();
    expect((await jsm.streams.getMessage('LPERSUBJ', { seq: 3 }))?.string()).toBe('m3');
  });

  it('limits: max_msg_size stores the limit and refuses one byte more (10054)', async () => {
    await addStream({ name: 'LSIZE', subjects: ['lsize'], max_msg_size: 100 });
    expect((await js.publish('lsize', 'x'.repeat(100))).seq).toBe(1);
    await expectApiError(js.publish('lsize', 'x'.repeat(101)), 10054, 400, 'message size exceeds maximum allowed');
    expect((await jsm.streams.info('LSIZE')).state.messages).toBe(1);
  });

  it('limits: max_age expires messages (observed through stream info)', async () => {
    await addStream({ name: 'LAGE', subjects: ['lage'], max_age: ns(500) });
    await publishN('lage', 3);
    expect((await jsm.streams.info('LAGE')).state.messages).toBe(3);
    const info = await pollUntil(
      () => jsm.streams.info('LAGE'),
      (si) => si.state.messages === 0,
      4000,
    );
    expect(info.state).toMatchObject({ messages: 0, last_seq: 3, first_seq: 4 });
    expect(await jsm.streams.getMessage('LAGE', { seq: 3 })).toBeNull();
  });

  it('discard new refuses the publish with 10077 and the reason', async () => {
    await addStream({ name: 'DNEW', subjects: ['dnew'], max_msgs: 2, discard: DiscardPolicy.New });
    await publishN('dnew', 2);
    await expectApiError(js.publish('dnew', 'third'), 10077, 503, 'maximum messages exceeded');
    const raw = await apiRequest(nc, 'dnew', 'third');
    expectErrorBody(raw, 10077, 503, 'maximum messages exceeded');
    expect(raw['stream']).toBe('DNEW');
    let info = await jsm.streams.info('DNEW');
    expect(info.state).toMatchObject({ messages: 2, first_seq: 1, last_seq: 2 });

    await addStream({ name: 'DNEWB', subjects: ['dnewb'], max_bytes: 300, discard: DiscardPolicy.New });
    await js.publish('dnewb', 'x'.repeat(150));
    await expectApiError(js.publish('dnewb', 'x'.repeat(200)), 10077, 503, 'maximum bytes exceeded');
    info = await jsm.streams.info('DNEWB');
    expect(info.state.messages).toBe(1);
  });

  it('duplicate window: a repeated Nats-Msg-Id returns the original seq with duplicate:true', async () => {
    await addStream({ name: 'DUP', subjects: ['dup'], duplicate_window: ns(60_000) });
    const a = await js.publish('dup', 'one', { msgID: 'm1' });
    const b = await js.publish('dup', 'two', { msgID: 'm2' });
    const again = await js.publish('dup', 'one again', { msgID: 'm1' });
    expect([a.seq, a.duplicate, b.seq]).toEqual([1, false, 2]);
    expect(again).toMatchObject({ stream: 'DUP', seq: 1, duplicate: true });
    const h = headers();
    h.set('Nats-Msg-Id', 'm2');
    const raw = await nc.request('dup', 'dup', { headers: h, timeout: 2000 });
    expect(JSON.parse(raw.string())).toEqual({ stream: 'DUP', seq: 2, duplicate: true });
    const info = await jsm.streams.info('DUP');
    expect(info.state).toMatchObject({ messages: 2, last_seq: 2 });
    expect((await jsm.streams.getMessage('DUP', { seq: 1 }))?.string()).toBe('one');

    // Past the window the same id is new again.
    await addStream({ name: 'DUPW', subjects: ['dupw'], duplicate_window: ns(300) });
    expect((await js.publish('dupw', 'a', { msgID: 'w1' })).seq).toBe(1);
    expect((await js.publish('dupw', 'a', { msgID: 'w1' })).duplicate).toBe(true);
    const later = await pollUntil(
      () => js.publish('dupw', 'a', { msgID: 'w1' }),
      (pa) => !pa.duplicate,
      4000,
    );
    expect(later).toMatchObject({ seq: 2, duplicate: false });
  });

  it('expected stream / last seq / last subject seq / last msg id: exact codes and texts', async () => {
    await addStream({ name: 'EXP', subjects: ['exp.>'] });
    await js.publish('exp.a', '1', { msgID: 'id-1' }); // 1
    await js.publish('exp.b', '2', { msgID: 'id-2' }); // 2

    await expectApiError(js.publish('exp.a', 'x', { expect: { streamName: 'OTHER' } }), 10060, 400, 'expected stream does not match');
    expect((await js.publish('exp.a', '3', { expect: { streamName: 'EXP' } })).seq).toBe(3);

    await expectApiError(js.publish('exp.a', 'x', { expect: { lastSequence: 2 } }), 10071, 400, 'wrong last sequence: 3');
    expect((await js.publish('exp.a', '4', { expect: { lastSequence: 3 } })).seq).toBe(4);

    await expectApiError(js.publish('exp.b', 'x', { expect: { lastSubjectSequence: 1 } }), 10071, 400, 'wrong last sequence: 2');
    expect((await js.publish('exp.b', '5', { expect: { lastSubjectSequence: 2 } })).seq).toBe(5);
    expect((await js.publish('exp.new', '6', { expect: { lastSubjectSequence: 0 } })).seq).toBe(6);
    await expectApiError(js.publish('exp.new', 'x', { expect: { lastSubjectSequence: 0 } }), 10071, 400, 'wrong last sequence: 6');

    await js.publish('exp.c', '7', { msgID: 'id-7' });
    await expectApiError(js.publish('exp.c', 'x', { expect: { lastMsgID: 'id-2' } }), 10070, 400, 'wrong last msg ID: id-7');
    expect((await js.publish('exp.c', '8', { msgID: 'id-8', expect: { lastMsgID: 'id-7' } })).seq).toBe(8);

    // A duplicate is answered before the expectations are checked.
    const dup = await js.publish('exp.c', 'x', { msgID: 'id-8', expect: { lastMsgID: 'nope' } });
    expect(dup).toMatchObject({ seq: 8, duplicate: true });

    // The refused publishes stored nothing; the raw ack carries stream and error.
    const h = headers();
    h.set('Nats-Expected-Last-Sequence', '1');
    const raw = JSON.parse((await nc.request('exp.a', 'x', { headers: h, timeout: 2000 })).string()) as Record<string, unknown>;
    expect(raw['error']).toEqual({ code: 400, err_code: 10071, description: 'wrong last sequence: 8' });
    expect(raw['stream']).toBe('EXP');
    expect((await jsm.streams.info('EXP')).state).toMatchObject({ messages: 8, last_seq: 8 });
  });

  it('rollup: sub keeps the newest of the subject, all keeps one message; refused without allow_rollup_hdrs (10111)', async () => {
    await addStream({ name: 'ROLL', subjects: ['roll.>'], allow_rollup_hdrs: true });
    await publishN((i) => (i % 2 === 1 ? 'roll.a' : 'roll.b'), 6); // a:1,3,5 b:2,4,6
    const sub = headers();
    sub.set('Nats-Rollup', 'sub');
    expect((await js.publish('roll.a', 'A-rolled', { headers: sub })).seq).toBe(7);
    let info = await jsm.streams.info('ROLL', { subjects_filter: '>' });
    expect(info.state.subjects).toEqual({ 'roll.a': 1, 'roll.b': 3 });
    expect(info.state.messages).toBe(4);
    const rolled = await jsm.streams.getMessage('ROLL', { last_by_subj: 'roll.a' });
    expect([rolled?.seq, rolled?.string(), rolled?.header.get('Nats-Rollup')]).toEqual([7, 'A-rolled', 'sub']);

    const all = headers();
    all.set('Nats-Rollup', 'all');
    expect((await js.publish('roll.c', 'everything', { headers: all })).seq).toBe(8);
    info = await jsm.streams.info('ROLL');
    expect(info.state).toMatchObject({ messages: 1, first_seq: 8, last_seq: 8 });

    await addStream({ name: 'NOROLL', subjects: ['noroll'] });
    await js.publish('noroll', '1');
    await expectApiError(js.publish('noroll', '2', { headers: sub }), 10111, 500, 'rollup not permitted');
    await expectApiError(js.publish('noroll', '2', { headers: all }), 10111, 500, 'rollup not permitted');
    expect((await jsm.streams.info('NOROLL')).state.messages).toBe(1);

    // Rollups need purge: 2.9.10 refuses the combination already at create.
    await expectApiError(
      jsm.streams.add({ name: 'ROLLNP', subjects: ['rollnp'], allow_rollup_hdrs: true, deny_purge: true }),
      10052,
      500,
      'roll-ups require the purge permission',
    );
  });

  it('sealed: create refuses it, update seals; then writes are 10109 and reads still work', async () => {
    await expectApiError(jsm.streams.add({ name: 'SEALC', subjects: ['sealc'], sealed: true }), 10052, 500);
    await addStream({ name: 'SEAL', subjects: ['seal'], allow_rollup_hdrs: true });
    await publishN('seal', 3);
    const cfg = (await jsm.streams.info('SEAL')).config;
    const sealed = await apiRequest(nc, '$JS.API.STREAM.UPDATE.SEAL', { ...cfg, sealed: true });
    expect(sealed.type).toBe('io.nats.jetstream.api.v1.stream_update_response');
    expect(sealed['config']).toMatchObject({ sealed: true, deny_delete: true, deny_purge: true, allow_rollup_hdrs: false });
    await expectApiError(js.publish('seal', 'x'), 10109, 400, 'invalid operation on sealed stream');
    await expectApiError(jsm.streams.deleteMessage('SEAL', 1), 10109, 400, 'invalid operation on sealed stream');
    await expectApiError(jsm.streams.purge('SEAL'), 10109, 400, 'invalid operation on sealed stream');
    const unseal = await apiRequest(nc, '$JS.API.STREAM.UPDATE.SEAL', { ...cfg, sealed: false, deny_delete: true, deny_purge: true, allow_rollup_hdrs: false });
    expectErrorBody(unseal, 10052, 500, /can not unseal a sealed stream/);
    expect((await jsm.streams.getMessage('SEAL', { seq: 2 }))?.string()).toBe('m2');
    const info = await jsm.streams.info('SEAL');
    expect(info.state).toMatchObject({ messages: 3, last_seq: 3 });
    expect(info.config.sealed).toBe(true);
    // Consumers keep working on a sealed stream.
    await jsm.consumers.add('SEAL', { durable_name: 'r', ack_policy: AckPolicy.Explicit });
    const c = await js.consumers.get('SEAL', 'r');
    const m = await c.next({ expires: 2000 });
    expect([m?.seq, m?.string()]).toEqual([1, 'm1']);
  });

  it('info with deleted_details lists the interior deletes; MSG.GET of a deleted seq is 10037', async () => {
    await addStream({ name: 'DD', subjects: ['dd'] });
    await publishN('dd', 5);
    await jsm.streams.deleteMessage('DD', 2);
    await jsm.streams.deleteMessage('DD', 4);
    const res = await apiRequest(nc, '$JS.API.STREAM.INFO.DD', { deleted_details: true });
    expect(res['state']).toMatchObject({ messages: 3, first_seq: 1, last_seq: 5, num_subjects: 1, num_deleted: 2, deleted: [2, 4] });
    const plain = await apiRequest(nc, '$JS.API.STREAM.INFO.DD');
    expect((plain['state'] as Record<string, unknown>)['deleted']).toBeUndefined();
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.MSG.GET.DD', { seq: 4 }), 10037, 404, 'no message found');
  });

  it('update refuses max_consumers and storage changes; max_consumers caps consumers (10026)', async () => {
    const cfg = { name: 'MC', subjects: ['mc'], max_consumers: 1 };
    await apiRequest(nc, '$JS.API.STREAM.CREATE.MC', cfg);
    expectErrorBody(
      await apiRequest(nc, '$JS.API.STREAM.UPDATE.MC', { ...cfg, max_consumers: 2 }),
      10052,
      500,
      'stream configuration update can not change MaxConsumers',
    );
    expectErrorBody(
      await apiRequest(nc, '$JS.API.STREAM.UPDATE.MC', { ...cfg, storage: 'memory' }),
      10052,
      500,
      'stream configuration update can not change storage type',
    );
    await jsm.consumers.add('MC', { durable_name: 'one', ack_policy: AckPolicy.Explicit });
    await expectApiError(
      jsm.consumers.add('MC', { durable_name: 'two', ack_policy: AckPolicy.Explicit }),
      10026,
      400,
      'maximum consumers limit reached',
    );
    const info = await jsm.streams.info('MC');
    expect(info.config).toMatchObject({ max_consumers: 1, storage: 'file' });
    expect(info.state.consumer_count).toBe(1);
  });

  it('deny_purge refuses every purge (10110)', async () => {
    await addStream({ name: 'NOPURGE', subjects: ['nopurge'], deny_purge: true });
    await publishN('nopurge', 2);
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.PURGE.NOPURGE'), 10110, 500, 'stream purge not permitted');
    await expectApiError(jsm.streams.purge('NOPURGE', { filter: 'nopurge' }), 10110, 500, 'stream purge not permitted');
    expect((await jsm.streams.info('NOPURGE')).state.messages).toBe(2);
  });

  it('discard_new_per_subject needs max_msgs_per_subject, then refuses per subject (10077)', async () => {
    const base = { name: 'DNPS', subjects: ['dnps.*'], discard: 'new', discard_new_per_subject: true };
    expectErrorBody(
      await apiRequest(nc, '$JS.API.STREAM.CREATE.DNPS', base),
      10052,
      500,
      'discard new per subject requires max msgs per subject > 0',
    );
    const ok = await apiRequest(nc, '$JS.API.STREAM.CREATE.DNPS', { ...base, max_msgs_per_subject: 1 });
    expect(ok['config']).toMatchObject({ discard: 'new', discard_new_per_subject: true, max_msgs_per_subject: 1 });
    expect(await js.publish('dnps.a', '1')).toMatchObject({ seq: 1 });
    await expectApiError(js.publish('dnps.a', '2'), 10077, 503, 'maximum messages per subject exceeded');
    expect(await js.publish('dnps.b', '3')).toMatchObject({ seq: 2 });
  });

  it('without discard_new_per_subject, discard new still drops the oldest of a full subject', async () => {
    await addStream({ name: 'DNS', subjects: ['dns.*'], discard: DiscardPolicy.New, max_msgs_per_subject: 1 });
    await js.publish('dns.a', '1');
    expect(await js.publish('dns.a', '2')).toMatchObject({ seq: 2 });
    const info = await jsm.streams.info('DNS');
    expect(info.state).toMatchObject({ messages: 1, first_seq: 2, last_seq: 2 });
  });

  it('an invalid Nats-Rollup value gets no reply and stores nothing', async () => {
    await addStream({ name: 'RBOG', subjects: ['rbog'], allow_rollup_hdrs: true });
    await js.publish('rbog', 'first');
    const h = headers();
    h.set('Nats-Rollup', 'bogus');
    await expect(nc.request('rbog', 'x', { headers: h, timeout: 500 })).rejects.toBeInstanceOf(Error);
    expect((await jsm.streams.info('RBOG')).state).toMatchObject({ messages: 1, last_seq: 1 });
  });

  it('interest retention without consumers keeps nothing; deleting the last consumer releases the rest', async () => {
    await addStream({ name: 'INT2', subjects: ['int2'], retention: RetentionPolicy.Interest });
    expect(await js.publish('int2', 'nobody')).toMatchObject({ seq: 1 });
    expect((await jsm.streams.info('INT2')).state.messages).toBe(0);
    await jsm.consumers.add('INT2', { durable_name: 'a', ack_policy: AckPolicy.Explicit });
    await publishN('int2', 2);
    expect((await jsm.streams.info('INT2')).state.messages).toBe(2);
    await jsm.consumers.delete('INT2', 'a');
    const info = await pollUntil(
      () => jsm.streams.info('INT2'),
      (si) => si.state.messages === 0,
      3000,
    );
    expect(info.state).toMatchObject({ messages: 0, last_seq: 3, first_seq: 4, consumer_count: 0 });
  });

  it('list pages through more streams than one LIST page (256)', async () => {
    const N = 260;
    const before: string[] = [];
    for await (const n of jsm.streams.names()) before.push(n);
    for (let i = 0; i < N; i++) {
      await apiRequest(nc, `$JS.API.STREAM.CREATE.MANY${i}`, { name: `MANY${i}`, subjects: [`many.${i}`], storage: 'memory' });
    }
    const total = before.length + N;
    const page0 = await apiRequest(nc, '$JS.API.STREAM.LIST', { offset: 0 });
    expect(page0['total']).toBe(total);
    expect(page0['limit']).toBe(256);
    expect(page0['streams']).toHaveLength(256);
    const page1 = await apiRequest(nc, '$JS.API.STREAM.LIST', { offset: 256 });
    expect(page1['streams']).toHaveLength(total - 256);
    const listed = new Set<string>();
    for await (const si of jsm.streams.list()) listed.add(si.config.name);
    expect(listed.size).toBe(total);
    for (let i = 0; i < N; i++) expect(listed.has(`MANY${i}`)).toBe(true);
    const names = await apiRequest(nc, '$JS.API.STREAM.NAMES', { subject: 'many.*' });
    expect(names['total']).toBe(N);
    for (let i = 0; i < N; i++) await apiRequest(nc, `$JS.API.STREAM.DELETE.MANY${i}`);
    expect((await jsm.getAccountInfo()).streams).toBe(before.length);
  });

  it('a restart keeps stream state, config, headers, deletes, the dedupe of stored ids; max_age runs on', async () => {
    const own = await JsServer.start(kind);
    try {
      let c2 = await own.connect();
      let m2 = await jetstreamManager(c2);
      let j2 = jetstream(c2);
      await m2.streams.add({ name: 'R1', subjects: ['r1'] });
      for (let i = 1; i <= 4; i++) await j2.publish('r1', `x${i}`);
      await m2.streams.purge('R1');
      await m2.streams.add({ name: 'R2', subjects: ['r2.*'], max_msgs_per_subject: 2, allow_rollup_hdrs: true, description: 'desc' });
      for (let i = 1; i <= 6; i++) await j2.publish(i % 2 === 1 ? 'r2.a' : 'r2.b', `y${i}`, { msgID: `m${i}` });
      await m2.streams.deleteMessage('R2', 4);
      const h = headers();
      h.set('Nats-Rollup', 'sub');
      h.set('X-K', 'v');
      expect((await j2.publish('r2.c', 'rolled', { headers: h })).seq).toBe(7);
      await m2.streams.add({ name: 'R3', subjects: ['r3'], max_age: ns(1000) });
      await j2.publish('r3', 'soon gone');
      const r2Before = (await m2.streams.info('R2', { deleted_details: true })).state;
      expect(r2Before).toMatchObject({ messages: 4, first_seq: 3, last_seq: 7, num_deleted: 1, deleted: [4], num_subjects: 3 });

      await own.restart();
      c2 = await own.connect();
      m2 = await jetstreamManager(c2);
      j2 = jetstream(c2);
      expect((await m2.streams.info('R1')).state).toMatchObject({ messages: 0, first_seq: 5, last_seq: 4 });
      expect((await j2.publish('r1', 'next')).seq).toBe(5);
      const r2 = await m2.streams.info('R2', { deleted_details: true });
      expect(r2.config).toMatchObject({ description: 'desc', max_msgs_per_subject: 2, allow_rollup_hdrs: true, subjects: ['r2.*'] });
      expect(r2.state).toEqual(r2Before);
      const rolled = await m2.streams.getMessage('R2', { seq: 7 });
      expect([rolled?.subject, rolled?.string(), rolled?.header.get('X-K'), rolled?.header.get('Nats-Rollup')]).toEqual(['r2.c', 'rolled', 'v', 'sub']);
      // A stored message id is still a duplicate after the restart.
      expect(await j2.publish('r2.a', 'again', { msgID: 'm5' })).toMatchObject({ seq: 5, duplicate: true });
      expect(await j2.publish('r2.a', 'new', { msgID: 'm8' })).toMatchObject({ seq: 8, duplicate: false });
      const r3 = await pollUntil(
        () => m2.streams.info('R3'),
        (si) => si.state.messages === 0,
        4000,
      );
      expect(r3.state).toMatchObject({ messages: 0, last_seq: 1, first_seq: 2 });
    } finally {
      await own.stop();
    }
  });

  it('memory storage stores and serves messages', async () => {
    const si = await jsm.streams.add({ name: 'MEM', subjects: ['mem.>'], storage: StorageType.Memory });
    expect(si.config.storage).toBe('memory');
    await publishN((i) => `mem.${i}`, 4);
    const info = await jsm.streams.info('MEM');
    expect(info.state).toMatchObject({ messages: 4, first_seq: 1, last_seq: 4, num_subjects: 4 });
    expect((await jsm.streams.getMessage('MEM', { last_by_subj: 'mem.3' }))?.string()).toBe('m3');
  });

  it('interest retention: a message goes once every consumer acked it', async () => {
    await addStream({ name: 'INT', subjects: ['int.>'], retention: RetentionPolicy.Interest });
    await jsm.consumers.add('INT', { durable_name: 'a', ack_policy: AckPolicy.Explicit });
    await jsm.consumers.add('INT', { durable_name: 'b', ack_policy: AckPolicy.Explicit });
    await publishN('int.x', 3);
    expect((await jsm.streams.info('INT')).state.messages).toBe(3);

    for (const name of ['a', 'b']) {
      const c = await js.consumers.get('INT', name);
      const batch = await c.fetch({ max_messages: 3, expires: 2000 });
      const seqs: number[] = [];
      for await (const m of batch) {
        seqs.push(m.seq);
        await m.ackAck();
      }
      expect(seqs).toEqual([1, 2, 3]);
      const info = await pollUntil(
        () => jsm.streams.info('INT'),
        (si) => si.state.messages === (name === 'a' ? 3 : 0),
        3000,
      );
      // After only `a` acked, `b` still needs all three.
      expect(info.state.messages).toBe(name === 'a' ? 3 : 0);
    }
    expect((await jsm.streams.info('INT')).state).toMatchObject({ messages: 0, last_seq: 3, first_seq: 4 });
  });

  it('workqueue retention: an acked message is removed; a second unfiltered consumer is refused', async () => {
    await addStream({ name: 'WQ', subjects: ['wq.>'], retention: RetentionPolicy.Workqueue });
    await jsm.consumers.add('WQ', { durable_name: 'w', ack_policy: AckPolicy.Explicit });
    await publishN('wq.job', 3);
    const c = await js.consumers.get('WQ', 'w');
    const batch = await c.fetch({ max_messages: 2, expires: 2000 });
    for await (const m of batch) await m.ackAck();
    const info = await pollUntil(
      () => jsm.streams.info('WQ'),
      (si) => si.state.messages === 1,
      3000,
    );
    expect(info.state).toMatchObject({ messages: 1, first_seq: 3, last_seq: 3 });
    await expectApiError(
      jsm.consumers.add('WQ', { durable_name: 'w2', ack_policy: AckPolicy.Explicit }),
      10099,
      400,
      'multiple non-filtered consumers not allowed on workqueue stream',
    );
  });
});
