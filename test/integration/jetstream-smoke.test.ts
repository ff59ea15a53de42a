/**
 * JetStream smoke test of the bundle with the real nats.js clients: `-js -sd <dir>` brings up
 * the API, streams, publish acks, message reads and KV; /jsz and /varz show it; and every
 * acknowledged publish survives a SIGKILL right after its ack.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { makeTempDir, monitor, startServer, stopAllServers, type RunningServer } from '../helpers/servers.js';

const conns: NatsConnection[] = [];

async function open(srv: RunningServer): Promise<NatsConnection> {
  const nc = await connect({ servers: srv.url, reconnect: false });
  conns.push(nc);
  return nc;
}

afterAll(async () => {
  await Promise.all(conns.map((nc) => (nc.isClosed() ? undefined : nc.close().catch(() => undefined))));
  await stopAllServers();
});

describe('JetStream smoke (nats-edge)', () => {
  it('streams, publish with msgID, getMessage and KV through nats.js; /jsz and /varz', async () => {
    const store = makeTempDir('js-smoke-');
    const srv = await startServer('nats-edge', { args: ['-js', '-sd', store] });
    expect(srv.logs()).toContain(`Store Directory: "${store}/jetstream"`);
    const nc = await open(srv);
    expect(nc.info?.jetstream).toBe(true);
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);

    const si = await jsm.streams.add({ name: 'ORDERS', subjects: ['orders.>'] });
    expect(si.config).toMatchObject({ name: 'ORDERS', subjects: ['orders.>'], storage: 'file', retention: 'limits' });
    const a = await js.publish('orders.new', 'one', { msgID: 'm1' });
    expect(a).toMatchObject({ stream: 'ORDERS', seq: 1, duplicate: false });
    const dup = await js.publish('orders.new', 'one again', { msgID: 'm1' });
    expect(dup).toMatchObject({ stream: 'ORDERS', seq: 1, duplicate: true });
    expect((await js.publish('orders.old', 'two')).seq).toBe(2);
    const m = await jsm.streams.getMessage('ORDERS', { seq: 1 });
    expect([m?.subject, m?.string(), m?.header.get('Nats-Msg-Id')]).toEqual(['orders.new', 'one', 'm1']);
    expect((await jsm.streams.getMessage('ORDERS', { last_by_subj: 'orders.old' }))?.string()).toBe('two');
    expect((await jsm.streams.info('ORDERS')).state).toMatchObject({ messages: 2, first_seq: 1, last_seq: 2, num_subjects: 2 });

    const kvm = new Kvm(nc);
    const kv = await kvm.create('cfg', { history: 3 });
    expect(await kv.put('a.b', 'v1')).toBe(1);
    expect(await kv.create('new', 'n1')).toBe(2);
    await expect(kv.create('new', 'again')).rejects.toThrow(/wrong last sequence/);
    expect(await kv.update('a.b', 'v2', 1)).toBe(3);
    const e = await kv.get('a.b');
    expect([e?.revision, e?.string(), e?.operation]).toEqual([3, 'v2', 'PUT']);
    expect(await kv.get('missing')).toBeNull();

    const jsz = await monitor<Record<string, unknown>>(srv, '/jsz?streams=true');
    expect(jsz).toMatchObject({ streams: 2, messages: 5, accounts: 1 });
    const details = (jsz['account_details'] as Record<string, unknown>[])[0]!['stream_detail'] as { name: string }[];
    expect(details.map((d) => d.name)).toEqual(['KV_cfg', 'ORDERS']);
    const varz = await monitor<{ jetstream: { config: Record<string, unknown>; stats: Record<string, unknown> } }>(srv, '/varz');
    expect(varz.jetstream.config['store_dir']).toBe(`${store}/jetstream`);
    expect(varz.jetstream.stats['storage']).toBe(jsz['storage']);
    expect((varz.jetstream.stats['api'] as { total: number }).total).toBeGreaterThan(5);

    // SIGTERM closes the store cleanly: checkpointed, no WAL left beside the database.
    await nc.close();
    expect(await srv.stop('SIGTERM')).toBe(0);
    expect(srv.logs()).toContain('JetStream stopped');
    expect(readdirSync(join(store, 'jetstream')).sort()).toEqual(['nats-edge.db']);
  });

  it('a domain is advertised in INFO, in acks and answers on $JS.<domain>.API', async () => {
    const store = makeTempDir('js-smoke-dom-');
    const srv = await startServer('nats-edge', { args: ['-js', '-sd', store], config: 'jetstream { domain: hub }\n' });
    const nc = await open(srv);
    expect((nc.info as unknown as Record<string, unknown> | undefined)?.['domain']).toBe('hub');
    const jsm = await jetstreamManager(nc, { domain: 'hub' });
    await jsm.streams.add({ name: 'D', subjects: ['d.>'] });
    const pa = await jetstream(nc, { domain: 'hub' }).publish('d.x', 'v');
    expect(pa).toMatchObject({ stream: 'D', seq: 1, domain: 'hub' });
    const kv = await new Kvm(jetstream(nc, { domain: 'hub' })).create('dk');
    expect(await kv.put('k', 'v')).toBe(1);
    expect((await kv.get('k'))?.string()).toBe('v');
  });

  for (const sync of ['interval', 'always'] as const) {
    it(`every acknowledged publish survives a SIGKILL right after its ack (sync ${sync})`, async () => {
      const store = makeTempDir('js-smoke-kill-');
      const opts = { args: ['-js', '-sd', store], ...(sync === 'always' ? { config: 'jetstream { sync_interval: always }\n' } : {}) };
      let srv = await startServer('nats-edge', opts);
      let nc = await open(srv);
      await (await jetstreamManager(nc)).streams.add({ name: 'K', subjects: ['k.*'] });
      const js = jetstream(nc);
      const acked = new Map<number, string>();
      const TOTAL = 3000;
      let next = 0;
      let killed = false;
      // 8 publishers in parallel; the kill goes out from the ack of message #2000.
      const worker = async (): Promise<void> => {
        while (!killed && next < TOTAL) {
          const i = next++;
          try {
            const pa = await js.publish(`k.${i % 10}`, `payload-${i}`, { timeout: 2000 });
            acked.set(pa.seq, `payload-${i}`);
            if (acked.size === 2000 && !killed) {
              killed = true;
              process.kill(srv.pid, 'SIGKILL');
            }
          } catch {
            return; // the server is gone: this publish was never acked
          }
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      expect(killed).toBe(true);
      expect(acked.size).toBeGreaterThanOrEqual(2000);
      await srv.stop('SIGKILL');
      await nc.close().catch(() => undefined);

      srv = await startServer('nats-edge', opts);
      nc = await open(srv);
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info('K');
      expect(info.state.last_seq).toBeGreaterThanOrEqual(Math.max(...acked.keys()));
      for (const [seq, payload] of acked) {
        const m = await jsm.streams.getMessage('K', { seq });
        expect(m?.string(), `seq ${seq}`).toBe(payload);
      }
      // The store keeps going where it stopped.
      expect((await jetstream(nc).publish('k.x', 'after')).seq).toBe(info.state.last_seq + 1);
    });
  }
});
