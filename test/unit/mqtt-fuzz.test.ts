import { describe, expect, it } from 'vitest';
import mqtt from 'mqtt-packet';
import { readServerOutput, runMqttFuzz } from '../../scripts/fuzz/mqtt-fuzz.js';

describe('MQTT fuzz (short run of scripts/fuzz --target mqtt)', () => {
  it('3 000 mutated v3/v5 inputs through a real broker: no exception, well-formed answers, answer or close, budget back to zero, others unharmed', async () => {
    const result = await runMqttFuzz({ seed: 11, iterations: 3_000 });
    expect(result.failures).toEqual([]);
    expect(result.failureKinds).toEqual({});
    expect(result.iterations).toBe(3_000);
    // Both endings occur: inputs that leave a working session, and inputs that get it closed.
    const closed = Object.entries(result.outcomes)
      .filter(([k]) => k.startsWith('closed'))
      .reduce((n, [, v]) => n + v, 0);
    expect(result.outcomes['pingresp'] ?? 0).toBeGreaterThan(300);
    expect(closed).toBeGreaterThan(1_500);
    expect(closed + (result.outcomes['pingresp'] ?? 0)).toBe(3_000);
    // Refusals of each kind the decoder must make were reached.
    expect(result.outcomes['closed: Parse Error'] ?? 0).toBeGreaterThan(100);
    expect(result.outcomes['closed: Protocol Violation'] ?? 0).toBeGreaterThan(100);
    // A clean mqtt.js client got its QoS 1 round trip on both brokers after every 1 000 inputs.
    expect(result.healthChecks).toBe(6);
  }, 180_000);

  it('the output checker takes what a server sends', () => {
    const v5 = { protocolVersion: 5 };
    const out = Buffer.concat([
      mqtt.generate({ cmd: 'connack', sessionPresent: false, reasonCode: 0 }, v5),
      mqtt.generate({ cmd: 'suback', messageId: 1, granted: [1, 0x8f] }, v5),
      mqtt.generate({ cmd: 'pubcomp', messageId: 7, reasonCode: 0x92 }, v5),
      mqtt.generate({ cmd: 'pingresp' }, v5),
      mqtt.generate({ cmd: 'disconnect', reasonCode: 0x81, properties: { reasonString: 'Malformed Packet' } }, v5),
    ]);
    const view = readServerOutput(out, true);
    expect(view.problem).toBeNull();
    expect(view.packets.map((p) => p.cmd)).toEqual(['connack', 'suback', 'pubcomp', 'pingresp', 'disconnect']);
    expect(readServerOutput(Buffer.from('20020000d000', 'hex'), false).problem).toBeNull();
  });

  it('the output checker refuses what a server must not send', () => {
    // A PUBCOMP cut after its fixed header, then a PINGRESP read as its body.
    expect(readServerOutput(Buffer.from('200200007004d000', 'hex'), false).problem).not.toBeNull();
    expect(readServerOutput(Buffer.from('200200007002', 'hex'), false).problem).toMatch(/partial packet/);
    // DISCONNECT to a 3.1.1 client, a v5 DISCONNECT without a failure code, packets after it.
    expect(readServerOutput(Buffer.from('20020000e000', 'hex'), false).problem).toMatch(/3\.1\.1/);
    expect(readServerOutput(Buffer.from('2003000000e00100', 'hex'), true).problem).toMatch(/reason 0/);
    expect(readServerOutput(Buffer.from('2003000000e0028100d000', 'hex'), true).problem).toMatch(/after DISCONNECT/);
    // Anything before CONNACK, a second CONNACK, packets after a refusing CONNACK, client packets.
    expect(readServerOutput(Buffer.from('d00020020000', 'hex'), false).problem).toMatch(/before CONNACK/);
    expect(readServerOutput(Buffer.from('2002000020020000', 'hex'), false).problem).toMatch(/not first/);
    expect(readServerOutput(Buffer.from('20020005d000', 'hex'), false).problem).toMatch(/refusing/);
    expect(readServerOutput(Buffer.from('20020000c000', 'hex'), false).problem).toMatch(/pingreq/);
  });
});
