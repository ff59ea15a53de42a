import { afterEach, describe, expect, it } from 'vitest';
import { Router } from '../../src/core/router.js';
import { JsApi } from '../../src/jetstream/api.js';
import { jszHandler } from '../../src/jetstream/jsz.js';
import type { ApiRequest } from '../../src/jetstream/types.js';
import { Logger } from '../../src/log.js';
import { Harness, nextTurn, TestClient } from './jetstream-harness.js';

const log = new Logger({ debug: false, trace: false, logtime: false, logtimeUtc: false });

let h: Harness | null = null;
afterEach(() => {
  h?.close();
  h = null;
});

describe('JsApi dispatch', () => {
  it('hands a request to the longest registered prefix; no endpoint = no answer at all', async () => {
    const router = new Router();
    const api = new JsApi(router, log, 1, undefined);
    const seen: string[] = [];
    api.register(['CONSUMER', 'CREATE'], (req) => {
      seen.push('create:' + req.tokens.join('.'));
      api.respond(req.reply, 'consumer_create_response', { ok: 1 });
    });
    api.register(['CONSUMER', 'DURABLE', 'CREATE'], (req) => seen.push('durable:' + req.tokens.join('.')));
    api.register(['CONSUMER'], (req) => seen.push('any:' + req.tokens.join('.')));
    api.start();
    const client = new TestClient(router);
    expect(client.publish('$JS.API.CONSUMER.CREATE.S.c', '{}', undefined, '_INBOX.a')).toBe(1);
    client.publish('$JS.API.CONSUMER.DURABLE.CREATE.S.d', '{}', undefined, '_INBOX.b');
    client.publish('$JS.API.CONSUMER.INFO.S.d', '', undefined, '_INBOX.c');
    // Interest exists (no 503), but nobody answers.
    expect(client.publish('$JS.API.NOPE.X', '', undefined, '_INBOX.d')).toBe(1);
    expect(seen).toEqual(['create:CONSUMER.CREATE.S.c', 'durable:CONSUMER.DURABLE.CREATE.S.d', 'any:CONSUMER.INFO.S.d']);
    expect((await client.reply('_INBOX.a')).json()).toEqual({ type: 'io.nats.jetstream.api.v1.consumer_create_response', ok: 1 });
    expect(client.got.has('_INBOX.d')).toBe(false);
    api.stop();
    expect(client.publish('$JS.API.CONSUMER.CREATE.S.c', '{}', undefined, '_INBOX.e')).toBe(0);
  });

  it('counts every JSON answer, errors twice; a request without reply is handled and counted but not answered', () => {
    const router = new Router();
    const api = new JsApi(router, log, 1, undefined);
    let handled = 0;
    api.register(['X'], (req: ApiRequest) => {
      handled++;
      expect(req.data.toString()).toBe('body');
      expect(req.hdr?.toString()).toBe('NATS/1.0\r\nA: b\r\n\r\n');
      api.respondError(req.reply, 'x_response', { code: 400, err_code: 10003, description: 'bad request' }, { purged: 0 });
    });
    api.start();
    const client = new TestClient(router);
    client.publish('$JS.API.X', 'body', { A: 'b' });
    client.publish('$JS.API.X', 'body', { A: 'b' }, '_INBOX.1');
    expect(handled).toBe(2);
    expect(api.counters).toEqual({ total: 2, errors: 2 });
    expect(client.got.get('_INBOX.1')?.json()).toEqual({
      type: 'io.nats.jetstream.api.v1.x_response',
      error: { code: 400, err_code: 10003, description: 'bad request' },
      purged: 0,
    });
  });

  it('with a domain answers $JS.<domain>.API too, and takes KV writes through it as publishes', async () => {
    h = new Harness({ domain: 'hub' });
    const c = h.client;
    const info = await c.api('$JS.hub.API.INFO');
    expect(info).toMatchObject({ type: 'io.nats.jetstream.api.v1.account_info_response', domain: 'hub' });
    await c.api('$JS.hub.API.STREAM.CREATE.KV_b', { name: 'KV_b', subjects: ['$KV.b.>'] });
    const ack = await c.request('$JS.hub.API.$KV.b.key', 'v1');
    expect(ack.data.toString()).toBe('{"stream":"KV_b", "domain":"hub", "seq":1}');
    expect(h.js.streams.get('KV_b')?.getMsg(1)?.subject).toBe('$KV.b.key');
    const si = await c.api('$JS.API.STREAM.INFO.KV_b');
    expect(si['domain']).toBe('hub');
  });
});

describe('account info, /jsz and /varz', () => {
  it('INFO counts itself; /jsz reports the account, streams and consumers', async () => {
    h = new Harness();
    const c = h.client;
    const first = await c.api('$JS.API.INFO');
    expect(first['api']).toEqual({ total: 1, errors: 0 });
    await c.api('$JS.API.STREAM.CREATE.J', { name: 'J', subjects: ['j'], max_bytes: 1000 });
    await c.api('$JS.API.STREAM.INFO.NOPE');
    await c.request('j', 'hello');
    const info = await c.api('$JS.API.INFO');
    expect(info).toMatchObject({ streams: 1, consumers: 0, storage: 36, memory: 0, api: { total: 4, errors: 1 } });
    expect(Object.keys(info)).toEqual(['type', 'memory', 'storage', 'streams', 'consumers', 'limits', 'api']);

    const jsz = jszHandler(h.js, { serverId: 'SID', serverName: 'edge1' });
    const plain = (await jsz(new URLSearchParams(''))).body as Record<string, unknown>;
    expect(plain).toMatchObject({
      server_id: 'SID',
      memory: 0,
      storage: 36,
      reserved_storage: 1000,
      accounts: 1,
      streams: 1,
      messages: 1,
      bytes: 36,
      api: { total: 4, errors: 1 },
    });
    expect(plain['account_details']).toBeUndefined();
    expect((plain['config'] as Record<string, unknown>)['store_dir']).toBe(h.js.storeDir);
    const full = (await jsz(new URLSearchParams('consumers=true&config=true'))).body as Record<string, unknown>;
    const acc = (full['account_details'] as Record<string, unknown>[])[0]!;
    expect(acc).toMatchObject({ name: '$G', id: '$G', reserved_storage: 18446744073709551615n });
    const sd = (acc['stream_detail'] as Record<string, unknown>[])[0]!;
    expect(sd).toMatchObject({ name: 'J', cluster: { leader: 'edge1' }, config: { name: 'J' }, state: { messages: 1 }, consumer_detail: [] });
    const noConfig = (await jsz(new URLSearchParams('streams=1'))).body as Record<string, unknown>;
    const sd2 = ((noConfig['account_details'] as Record<string, unknown>[])[0]!['stream_detail'] as Record<string, unknown>[])[0]!;
    expect(sd2['config']).toBeUndefined();
    const disabled = (await jszHandler(null, { serverId: 'SID', serverName: 'x' })(new URLSearchParams(''))).body;
    expect(disabled).toMatchObject({ disabled: true, config: { max_memory: 0, max_storage: 0 } });
    await nextTurn();
  });
});
