import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/conf-parser.js';
import { defaultOptions } from '../../src/config/load.js';
import type { RawBlock, ServerOptions } from '../../src/config/options.js';
import { parseMqttConfig } from '../../src/mqtt/config.js';

function block(text: string): RawBlock {
  const root = parseConfig(text, '/tmp/test.conf');
  const e = root.entries.get('mqtt')!;
  return { value: null, where: `/tmp/test.conf:${e.keyPos.line}`, node: e.value };
}

function withJs(): ServerOptions {
  const o = defaultOptions();
  o.jetstream = { enabled: true, storeDir: '/tmp/x', maxMemoryStore: 0, maxFileStore: 0, syncInterval: 'always' };
  return o;
}

describe('mqtt {} block', () => {
  it('reads nats-server keys with defaults', () => {
    const o = parseMqttConfig(block('mqtt {\n  port: 1884\n  host: "127.0.0.1"\n  ack_wait: "10s"\n  max_inflight: 50\n  js_domain: hub\n}'), withJs());
    expect(o).toMatchObject({ port: 1884, host: '127.0.0.1', ackWaitMs: 10_000, maxAckPending: 50, maxQueuedMessages: 1000 });
    const d = parseMqttConfig(block('mqtt { }'), withJs());
    expect(d).toMatchObject({ port: 1883, ackWaitMs: 30_000, maxAckPending: 1024 });
    expect(parseMqttConfig(block('mqtt { listen: "0.0.0.0:1999" }'), withJs())).toMatchObject({ host: '0.0.0.0', port: 1999 });
    const a = parseMqttConfig(block('mqtt { authorization { user: u, password: p, timeout: 3 } }'), withJs());
    expect(a.authorization).toEqual({ user: 'u', password: 'p', timeoutMs: 3000 });
  });

  it('errors name file:line:col', () => {
    expect(() => parseMqttConfig(block('mqtt {\n  port: 1883\n  bogus: 1\n}'), withJs())).toThrow('/tmp/test.conf:3:3: unknown field "bogus" in mqtt block');
    expect(() => parseMqttConfig(block('mqtt {\n  max_ack_pending: 70000\n}'), withJs())).toThrow(/test\.conf:2:\d+: max_ack_pending: invalid value 70000/);
    expect(() => parseMqttConfig(block('mqtt {\n  ack_wait: "abc"\n}'), withJs())).toThrow(/test\.conf:2:\d+: ack_wait: time: invalid duration/);
  });

  it('requires JetStream', () => {
    expect(() => parseMqttConfig(block('mqtt { port: 1883 }'), defaultOptions())).toThrow(/test\.conf:1:\d+: mqtt requires jetstream/);
  });

  it('no_auth_user must be a configured user', () => {
    const o = withJs();
    o.authorization = { users: [{ user: 'dev', password: 'x' }], timeoutMs: 2000 };
    expect(parseMqttConfig(block('mqtt { no_auth_user: dev }'), o).noAuthUser).toBe('dev');
    expect(() => parseMqttConfig(block('mqtt { no_auth_user: nobody }'), o)).toThrow(/not present as user/);
    expect(() => parseMqttConfig(block('mqtt { authorization { user: a, password: b } }'), o)).toThrow(/cannot be combined/);
  });
});
