/**
 * JetStream API errors, one table run against Debian's nats-server (`-js -sd <dir>`) and our
 * bundle with the same flags: malformed requests, unknown streams and consumers, invalid
 * configs and a full store each get nats-server's error JSON, and nothing else is harmed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  jetstream,
  jetstreamManager,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { serverKinds, stopAllServers } from '../helpers/servers.js';
import { apiRequest, collect, expectApiError, expectErrorBody, JsServer } from '../helpers/js.js';

const CANARY_MSGS = 3;

describe.each(serverKinds())('jetstream errors: %s', (kind) => {
  let server: JsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  let canaryLast = CANARY_MSGS;

  beforeAll(async () => {
    server = await JsServer.start(kind);
    nc = await server.connect();
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    await jsm.streams.add({ name: 'CANARY', subjects: ['canary.>'] });
    await jsm.consumers.add('CANARY', { durable_name: 'watch', ack_policy: AckPolicy.Explicit });
    for (let i = 1; i <= CANARY_MSGS; i++) await js.publish('canary.x', `c${i}`);
  });

  afterAll(async () => {
    await server?.closeConnections();
    await stopAllServers();
  });

  /** The canary stream still answers and stores after an error elsewhere. */
  async function canaryUnharmed(): Promise<void> {
    const before = await jsm.streams.info('CANARY');
    expect(before.state).toMatchObject({ messages: canaryLast, last_seq: canaryLast, consumer_count: 1 });
    const pa = await js.publish('canary.x', 'still here');
    canaryLast += 1;
    expect(pa).toMatchObject({ stream: 'CANARY', seq: canaryLast });
    expect((await jsm.streams.getMessage('CANARY', { seq: canaryLast }))?.string()).toBe('still here');
    expect((await jsm.consumers.info('CANARY', 'watch')).num_pending).toBe(canaryLast);
  }

  it('malformed JSON is 400/10025 invalid JSON; nothing is created', async () => {
    const before = await jsm.getAccountInfo();
    const bad = await apiRequest(nc, '$JS.API.STREAM.CREATE.X', '{not json');
    expect(bad.type).toBe('io.nats.jetstream.api.v1.stream_create_response');
    // 2.9 answers exactly `invalid JSON`; 2.10+ appends `: <detail>`.
    expectErrorBody(bad, 10025, 400, /^invalid JSON/);
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.CREATE.X'), 10025, 400, /^invalid JSON/);
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.CREATE.X', { name: 'X', subjects: 'x.>' }), 10025, 400, /^invalid JSON/);
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.CREATE.X', { name: 'X', max_msgs: 'lots' }), 10025, 400, /^invalid JSON/);
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.CREATE.X', { name: 'X', storage: 'floppy' }), 10025, 400, /^invalid JSON/);
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.UPDATE.CANARY', '[1,'), 10025, 400, /^invalid JSON/);
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.NAMES', '{"offset":'), 10025, 400, /^invalid JSON/);
    const consumer = await apiRequest(nc, '$JS.API.CONSUMER.DURABLE.CREATE.CANARY.d', {
      stream_name: 'CANARY',
      config: { durable_name: 'd', ack_policy: 'bogus' },
    });
    expect(consumer.type).toBe('io.nats.jetstream.api.v1.consumer_create_response');
    expectErrorBody(consumer, 10025, 400, /^invalid JSON/);
    await expectApiError(jsm.streams.info('X'), 10059, 404);
    await expectApiError(jsm.consumers.info('CANARY', 'd'), 10014, 404);
    const after = await jsm.getAccountInfo();
    expect(after.streams).toBe(before.streams);
    expect(after.consumers).toBe(before.consumers);
    // Each error counted: the 8 bad requests and the two lookups above.
    expect(after.api.errors - before.api.errors).toBe(10);
    await canaryUnharmed();
  });

  it('unknown stream is 404/10059 everywhere; unknown consumer 404/10014', async () => {
    for (const subj of ['STREAM.INFO', 'STREAM.DELETE', 'STREAM.PURGE', 'STREAM.MSG.GET', 'STREAM.MSG.DELETE']) {
      const body = subj.startsWith('STREAM.MSG') ? { seq: 1 } : undefined;
      const res = await apiRequest(nc, `$JS.API.${subj}.NOPE`, body);
      expectErrorBody(res, 10059, 404, 'stream not found');
    }
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.UPDATE.NOPE', { name: 'NOPE', subjects: ['nope'] }), 10059, 404, 'stream not found');
    expectErrorBody(await apiRequest(nc, '$JS.API.CONSUMER.INFO.NOPE.c'), 10059, 404, 'stream not found');
    expectErrorBody(
      await apiRequest(nc, '$JS.API.CONSUMER.DURABLE.CREATE.NOPE.c', { stream_name: 'NOPE', config: { durable_name: 'c', ack_policy: 'explicit' } }),
      10059,
      404,
      'stream not found',
    );
    const sErr = await expectApiError(jsm.streams.info('NOPE'), 10059, 404, 'stream not found');
    expect(sErr.name).toBe('StreamNotFoundError');

    const info = await apiRequest(nc, '$JS.API.CONSUMER.INFO.CANARY.nobody');
    expect(info.type).toBe('io.nats.jetstream.api.v1.consumer_info_response');
    expectErrorBody(info, 10014, 404, 'consumer not found');
    expectErrorBody(await apiRequest(nc, '$JS.API.CONSUMER.DELETE.CANARY.nobody'), 10014, 404, 'consumer not found');
    const cErr = await expectApiError(jsm.consumers.info('CANARY', 'nobody'), 10014, 404, 'consumer not found');
    expect(cErr.name).toBe('ConsumerNotFoundError');
    await expectApiError(js.consumers.get('CANARY', 'nobody'), 10014, 404);
    // A message that is not there.
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.MSG.GET.CANARY', { seq: 999 }), 10037, 404, 'no message found');
    await canaryUnharmed();
  });

  it('invalid stream config: bad subjects are 500/10052, a name mismatch 400/10056', async () => {
    const dots = await apiRequest(nc, '$JS.API.STREAM.CREATE.BAD', { name: 'BAD', subjects: ['foo..bar'] });
    expectErrorBody(dots, 10052, 500, /invalid subject/);
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.CREATE.BAD', { name: 'BAD', subjects: ['foo.>.bar'] }), 10052, 500, /invalid subject/);
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.CREATE.BAD', { name: 'BAD', subjects: ['i4 x'] }), 10052, 500, /invalid subject/);
    expectErrorBody(
      await apiRequest(nc, '$JS.API.STREAM.CREATE.BAD', { name: 'BAD', subjects: ['$JS.API.>'] }),
      10052,
      500,
      /subjects overlap with jetstream api/,
    );
    expectErrorBody(
      await apiRequest(nc, '$JS.API.STREAM.CREATE.BAD', { name: 'BAD', subjects: ['bad'], max_age: 1_000_000 }),
      10052,
      500,
      /max age needs to be >= 100ms/,
    );
    expectErrorBody(
      await apiRequest(nc, '$JS.API.STREAM.CREATE.BAD', { name: 'BAD', subjects: ['bad'], num_replicas: 3 }),
      10074,
      500,
      'replicas > 1 not supported in non-clustered mode',
    );

    const mismatch = await apiRequest(nc, '$JS.API.STREAM.CREATE.BAD', { name: 'OTHER', subjects: ['bad'] });
    expectErrorBody(mismatch, 10056, 400, 'stream name in subject does not match request');
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.CREATE.BAD', { subjects: ['bad'] }), 10056, 400);
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.CREATE.AB', { name: 'A.B', subjects: ['bad'] }), 10056, 400);
    expectErrorBody(
      await apiRequest(nc, '$JS.API.STREAM.CREATE.A*', { name: 'A*', subjects: ['bad'] }),
      10052,
      500,
      /can not contain/,
    );
    // A stream overlapping the canary is refused with 400/10065, not a config error.
    expectErrorBody(await apiRequest(nc, '$JS.API.STREAM.CREATE.BAD', { name: 'BAD', subjects: ['canary.*'] }), 10065, 400);
    // Consumer side: filter outside the stream, and a stream name mismatch.
    expectErrorBody(
      await apiRequest(nc, '$JS.API.CONSUMER.DURABLE.CREATE.CANARY.f', {
        stream_name: 'CANARY',
        config: { durable_name: 'f', ack_policy: 'explicit', filter_subject: 'elsewhere.>' },
      }),
      10093,
      400,
    );
    expectErrorBody(
      await apiRequest(nc, '$JS.API.CONSUMER.DURABLE.CREATE.CANARY.f', {
        stream_name: 'OTHER',
        config: { durable_name: 'f', ack_policy: 'explicit' },
      }),
      10056,
      400,
    );
    await expectApiError(jsm.streams.info('BAD'), 10059, 404);
    await expectApiError(jsm.consumers.info('CANARY', 'f'), 10014, 404);
    await canaryUnharmed();
  });

  it('a name split over extra tokens matches no endpoint: no reply, nothing created', async () => {
    await expect(nc.request('$JS.API.STREAM.CREATE.A.B', JSON.stringify({ name: 'A' }), { timeout: 500 })).rejects.toBeInstanceOf(Error);
    await expectApiError(jsm.streams.info('A'), 10059, 404);
    await canaryUnharmed();
  });

  it('publish errors leave the stream as it was', async () => {
    await jsm.streams.add({ name: 'PE', subjects: ['pe'], max_msg_size: 10 });
    await expectApiError(js.publish('pe', 'x'.repeat(11)), 10054, 400);
    await expectApiError(js.publish('pe', 'ok', { expect: { lastSequence: 5 } }), 10071, 400, 'wrong last sequence: 0');
    expect((await js.publish('pe', 'ok')).seq).toBe(1);
    await canaryUnharmed();
  });
});

describe.each(serverKinds())('jetstream full store: %s', (kind) => {
  let server: JsServer;

  afterAll(async () => {
    await server?.closeConnections();
    await stopAllServers();
  });

  it('a full file store refuses publishes with nats-server error JSON; reads, memory streams and core pub/sub go on', async () => {
    server = await JsServer.start(kind, { config: 'jetstream {\n  max_file_store: 1MB\n  max_memory_store: 1MB\n}\n' });
    const nc = await server.connect();
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await jsm.streams.add({ name: 'OTHER', subjects: ['other'] });
    await jsm.consumers.add('OTHER', { durable_name: 'r', ack_policy: AckPolicy.Explicit });
    await js.publish('other', 'before');
    await jsm.streams.add({ name: 'MEMS', subjects: ['mems'], storage: StorageType.Memory });
    await jsm.streams.add({ name: 'BIG', subjects: ['big'] });

    // A stream asking for more than the store holds is refused up front.
    await expectApiError(
      jsm.streams.add({ name: 'HUGE', subjects: ['huge'], max_bytes: 10 * 1024 * 1024 }),
      10047,
      500,
      'insufficient storage resources available',
    );

    const payload = 'x'.repeat(10_000);
    let stored = 0;
    let refusal: Record<string, unknown> | null = null;
    for (let i = 0; i < 200 && refusal === null; i++) {
      const ack = JSON.parse((await nc.request('big', payload, { timeout: 3000 })).string()) as Record<string, unknown>;
      if (ack['error'] !== undefined) refusal = ack;
      else stored += 1;
    }
    // 1 MiB holds about a hundred 10 kB messages in nats-server's files; nats-edge's cap is the
    // SQLite file on disk (10 kB rows take three 4 KiB pages), so about 70. Past it: refused.
    expect(refusal).toEqual({ error: { code: 503, err_code: 10023, description: 'insufficient resources' }, stream: 'BIG', seq: 0 });
    expect(stored).toBeGreaterThanOrEqual(kind === 'nats-server' ? 90 : 60);
    expect(stored).toBeLessThanOrEqual(110);
    await expectApiError(js.publish('big', payload), 10023, 503, 'insufficient resources');
    await expectApiError(js.publish('other', 'more'), 10023, 503, 'insufficient resources');
    const big = await jsm.streams.info('BIG');
    expect(big.state).toMatchObject({ messages: stored, last_seq: stored });

    // The server still serves: stream reads, consumers, memory streams, core pub/sub.
    expect((await jsm.streams.getMessage('OTHER', { seq: 1 }))?.string()).toBe('before');
    const m = await (await js.consumers.get('OTHER', 'r')).next({ expires: 2000 });
    expect(m?.string()).toBe('before');
    await m?.ackAck();
    expect(await js.publish('mems', 'in memory')).toMatchObject({ stream: 'MEMS', seq: 1 });
    const sub = await server.connect();
    const { c } = collect(sub, 'core.ping');
    await sub.flush();
    nc.publish('core.ping', 'pong');
    expect((await c.until(1))[0]?.string()).toBe('pong');

    // Freeing space lets every stream store again, with sequences continuing.
    expect(await jsm.streams.purge('BIG')).toMatchObject({ success: true, purged: stored });
    expect(await js.publish('other', 'after')).toMatchObject({ stream: 'OTHER', seq: 2 });
    expect(await js.publish('big', 'small')).toMatchObject({ stream: 'BIG', seq: stored + 1 });
  });
});
