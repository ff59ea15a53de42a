/**
 * SIGHUP reload and MQTT clients (nats-edge): a connected MQTT client is checked again against
 * the reloaded users, as NATS clients are. A subscription the new permissions deny is removed;
 * a client whose password changed is disconnected (v5 reason 0x87 Not authorized).
 * Also: max_connections counts MQTT clients as nats-server does.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { IConnackPacket, IDisconnectPacket } from 'mqtt-packet';
import { connect } from '@nats-io/transport-node';
import { RawMqtt, connectMqtt, connectPacket, endMqtt, stopAllMqtt } from '../helpers/mqtt.js';
import { freePort, makeTempDir, pollUntil, startServer, stopAllServers, within, type RunningServer } from '../helpers/servers.js';

afterAll(async () => {
  await stopAllMqtt();
  await stopAllServers();
});

function config(o: { mqttPort: number; storeDir: string; aliceSub: string; bobPass: string }): string {
  return `
jetstream { store_dir: "${o.storeDir}" }
mqtt { port: ${o.mqttPort} }
authorization {
  users: [
    { user: alice, password: pa, permissions: { publish: ">", subscribe: ${o.aliceSub} } }
    { user: bob, password: ${o.bobPass} }
  ]
}
`;
}

async function logged(srv: RunningServer, needle: string): Promise<void> {
  await pollUntil(async () => srv.logs(), (l) => l.includes(needle), 10_000);
}

describe('MQTT clients on SIGHUP reload (nats-edge)', () => {
  it('narrowed permissions remove a subscription; a changed password disconnects the client', async () => {
    const mqttPort = await freePort();
    const storeDir = makeTempDir();
    const v1 = { mqttPort, storeDir, aliceSub: '">"', bobPass: 'pb' };
    const srv = await startServer('nats-edge', { config: config(v1) });
    const alice = await connectMqtt(mqttPort, { protocolVersion: 5, username: 'alice', password: 'pa' });
    const bob = await connectMqtt(mqttPort, { protocolVersion: 5, username: 'bob', password: 'pb' });
    await alice.client.subscribeAsync(['keep/+', 'gone/+'], { qos: 0 });

    // Before the reload both subscriptions deliver.
    await bob.client.publishAsync('gone/1', 'one');
    await alice.inbox.waitFor((m) => m.topic === 'gone/1');

    const disconnect = new Promise<IDisconnectPacket>((resolve) => bob.client.once('disconnect', resolve));
    const bobClosed = new Promise<void>((resolve) => bob.client.once('close', () => resolve()));
    writeFileSync(join(srv.dir, 'server.conf'), config({ ...v1, aliceSub: '"keep.*"', bobPass: 'pb2' }));
    process.kill(srv.pid, 'SIGHUP');
    await logged(srv, 'subscription "gone/+" no longer allowed after reload: removed');

    // bob's password changed: his open connection is closed with Not authorized.
    expect((await within(disconnect, 5000, 'DISCONNECT to bob')).reasonCode).toBe(0x87);
    await within(bobClosed, 5000, 'bob closed');

    // alice stays connected; only the allowed subscription still delivers.
    const carol = await connectMqtt(mqttPort, { protocolVersion: 5, username: 'alice', password: 'pa' });
    alice.inbox.clear();
    await carol.client.publishAsync('gone/2', 'two');
    await carol.client.publishAsync('keep/1', 'kept');
    // keep/1 is the marker: gone/2, published before it, must not have arrived.
    const before = await alice.inbox.until('keep/1');
    expect(before.map((m) => m.topic)).toEqual([]);
    expect(alice.client.connected).toBe(true);

    // The new password works for a new connection; the old one is refused.
    await expect(connectMqtt(mqttPort, { protocolVersion: 5, username: 'bob', password: 'pb' })).rejects.toThrow();
    const bob2 = await connectMqtt(mqttPort, { protocolVersion: 5, username: 'bob', password: 'pb2' });
    expect(bob2.connack.reasonCode).toBe(0);
  });
});

describe('max_connections counts MQTT clients with NATS ones (nats-edge)', () => {
  it('over the limit an MQTT CONNECT is refused (3.1.1: 3 Server unavailable, 5.0: 0x97) and so is a NATS client', async () => {
    const mqttPort = await freePort();
    const srv = await startServer('nats-edge', { config: `max_connections: 2\njetstream { store_dir: "${makeTempDir()}" }\nmqtt { port: ${mqttPort} }\n` });
    const a = await connectMqtt(mqttPort, { protocolVersion: 4 });
    const b = await connectMqtt(mqttPort, { protocolVersion: 5 });
    expect([a.connack.returnCode, b.connack.reasonCode]).toEqual([0, 0]);
    const v3 = await RawMqtt.open(mqttPort, 4);
    v3.send(connectPacket(4));
    const ack3 = (await v3.next('connack')) as IConnackPacket;
    expect(ack3.returnCode).toBe(3);
    const v5 = await RawMqtt.open(mqttPort, 5);
    v5.send(connectPacket(5));
    const ack5 = (await v5.next('connack')) as IConnackPacket;
    expect(ack5.reasonCode).toBe(0x97);
    await expect(connect({ servers: srv.url, reconnect: false, timeout: 2000 })).rejects.toThrow(/maximum connections/i);
    await endMqtt(b.client);
    // A place is free again.
    const c = await connectMqtt(mqttPort, { protocolVersion: 4 });
    expect(c.connack.returnCode).toBe(0);
  });
});
