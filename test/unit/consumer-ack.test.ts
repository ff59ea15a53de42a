import { describe, expect, it } from 'vitest';
import { AckKind, ackPrefix, ackSubject, parseAckBody, parseAckSubject, parseGoDuration } from '../../src/jetstream/ack.js';

const body = (s: string) => parseAckBody(Buffer.from(s));

describe('ack reply subject', () => {
  it('encodes the 9-token form with the store time in ns', () => {
    const s = ackSubject(ackPrefix('ORDERS', 'C1'), 1, 2, 2, 1795757414355339, 0);
    expect(s).toBe('$JS.ACK.ORDERS.C1.1.2.2.1795757414355339000.0');
    expect(s.split('.')).toHaveLength(9);
  });

  it('keeps all digits of a 2026 timestamp (beyond 2^53 in ns)', () => {
    const tsUs = 1795757435743344;
    const s = ackSubject(ackPrefix('S', 'D'), 3, 1, 5, tsUs, 4);
    expect(BigInt(s.split('.')[7]!)).toBe(BigInt(tsUs) * 1000n);
  });

  it('decodes what it encodes', () => {
    const s = ackSubject(ackPrefix('KV_cfg', 'oc_x_1'), 2, 17, 40, 1795757414352977, 12);
    expect(parseAckSubject(s)).toEqual({ stream: 'KV_cfg', consumer: 'oc_x_1', delivered: 2, sseq: 17, dseq: 40 });
  });

  it('decodes a subject nats-server sent', () => {
    expect(parseAckSubject('$JS.ACK.V.C.2.5.7.1795764850901335027.0')).toEqual({ stream: 'V', consumer: 'C', delivered: 2, sseq: 5, dseq: 7 });
  });

  it.each([
    '$JS.ACK.S.C.1.1.1.123',
    '$JS.ACK.S.C.1.1.1.123.0.extra',
    '$JS.ACK._.hash.S.C.1.1.1.123.0.rand',
    '$JS.ACK.S.C.x.1.1.123.0',
    '$JS.ACK.S.C.1.0.1.123.0',
    '$JS.ACK..C.1.1.1.123.0',
    '$JS.NAK.S.C.1.1.1.123.0',
    '$JS.ACK.S.C.1..1.123.0',
  ])('refuses %s', (s) => {
    expect(parseAckSubject(s)).toBeNull();
  });
});

describe('ack bodies', () => {
  it.each([
    ['', AckKind.Ack],
    ['+ACK', AckKind.Ack],
    ['+OK', AckKind.Ack],
    ['+WPI', AckKind.Progress],
    ['-NAK', AckKind.Nak],
    ['+TERM', AckKind.Term],
    ['+TERM because', AckKind.Term],
    ['+NXT', AckKind.Next],
  ])('%j', (text, kind) => {
    expect(body(text)?.kind).toBe(kind);
  });

  it.each(['+ACKX', '+ACK ', 'ACK', '+WPI2', 'hello', '-NA'])('ignores %j as nats-server does', (text) => {
    expect(body(text)).toBeNull();
  });

  it('-NAK delays: JSON from nats.js, Go durations, nothing', () => {
    expect(body('-NAK {"delay":600000000}')?.delayNs).toBe(600_000_000);
    expect(body('-NAK 5s')?.delayNs).toBe(5_000_000_000);
    expect(body('-NAK 1m30s')?.delayNs).toBe(90_000_000_000);
    expect(body('-NAK')?.delayNs).toBe(0);
    expect(body('-NAK {"delay":"soon"}')?.delayNs).toBe(0);
    expect(body('-NAK {broken')?.delayNs).toBe(0);
  });

  it('+NXT carries the pull request that follows it', () => {
    const b = body('+NXT {"batch":2}');
    expect(Buffer.from(b!.next!).toString()).toBe('{"batch":2}');
    expect(body('+NXT')!.next!.length).toBe(0);
  });
});

describe('parseGoDuration', () => {
  it.each<[string, number | null]>([
    ['300ms', 300_000_000],
    ['1.5s', 1_500_000_000],
    ['2h', 7_200_000_000_000],
    ['1us', 1000],
    ['1µs', 1000],
    ['10ns', 10],
    ['0', 0],
    ['-1s', -1_000_000_000],
    ['5', null],
    ['s', null],
    ['5x', null],
    ['', null],
  ])('%j', (s, ns) => {
    expect(parseGoDuration(s)).toBe(ns);
  });
});
