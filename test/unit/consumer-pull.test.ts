import { describe, expect, it } from 'vitest';
import {
  formatGoDuration,
  newWaitingRequest,
  parsePullRequest,
  statusExceededExpires,
  statusHeartbeat,
  statusRequestTimeout,
  statusSizeExceeded,
} from '../../src/jetstream/pull.js';

const parse = (s: string) => parsePullRequest(Buffer.from(s));

describe('pull request bodies (as nats-server 2.9.10 reads them)', () => {
  it('nats.js fetch', () => {
    expect(parse('{"batch":2,"max_bytes":0,"idle_heartbeat":1000000000,"expires":2000000000}')).toEqual({
      batch: 2,
      expiresNs: 2_000_000_000,
      noWait: false,
      maxBytes: 0,
      heartbeatNs: 1_000_000_000,
    });
  });

  it.each<[string, number]>([
    ['', 1],
    ['2', 2],
    [' 3', 3],
    ['garbage', 1],
    ['0', 1],
    ['{"batch":0}', 1],
    ['{"batch":-1}', 1],
    ['{}', 1],
  ])('batch of %j is %d', (text, batch) => {
    const r = parse(text);
    expect('bad' in r ? null : r.batch).toBe(batch);
  });

  it('no_wait and max_bytes', () => {
    expect(parse('{"batch":5,"no_wait":true,"max_bytes":60}')).toMatchObject({ batch: 5, noWait: true, maxBytes: 60 });
  });

  it.each(['{bad', '{"batch":"x"}', '{"batch":1.5}', '{"no_wait":"yes"}'])('%j is a 400 bad request', (text) => {
    expect('bad' in parse(text)).toBe(true);
  });

  it('heartbeat must fit twice in expires, and needs expires', () => {
    expect(parse('{"batch":1,"idle_heartbeat":1000000000,"expires":1500000000}')).toEqual({ bad: 'heartbeat value too large' });
    expect(parse('{"batch":1,"idle_heartbeat":1000000000}')).toEqual({ bad: 'heartbeat value too large' });
    expect('bad' in parse('{"batch":1,"idle_heartbeat":500000000,"expires":1000000000}')).toBe(false);
  });

  it('waiting request deadlines in ms', () => {
    const o = parse('{"batch":5,"expires":1000000000,"idle_heartbeat":300000000}');
    if ('bad' in o) throw new Error(o.bad);
    const r = newWaitingRequest('in.1', o, 10_000);
    expect([r.expiresAt, r.hbAt, r.batch, r.hasMaxBytes]).toEqual([11_000, 10_300, 5, false]);
    const past = parse('{"expires":-1}');
    if ('bad' in past) throw new Error(past.bad);
    expect(newWaitingRequest('in.2', past, 10_000).expiresAt).toBe(10_000);
  });
});

describe('status replies, byte for byte', () => {
  it('408 with pending headers', () => {
    expect(statusRequestTimeout(5, 0).toString()).toBe('NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\nNats-Pending-Bytes: 0\r\n\r\n');
  });

  it('409 size exceeded', () => {
    expect(statusSizeExceeded(4, 16).toString()).toBe(
      'NATS/1.0 409 Message Size Exceeds MaxBytes\r\nNats-Pending-Messages: 4\r\nNats-Pending-Bytes: 16\r\n\r\n',
    );
  });

  it('heartbeats, with and without a stalled flow control', () => {
    expect(statusHeartbeat(3, 3).toString()).toBe('NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 3\r\nNats-Last-Stream: 3\r\n\r\n');
    expect(statusHeartbeat(32, 32, '$JS.FC.P.F.ODd6').toString()).toBe(
      'NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 32\r\nNats-Last-Stream: 32\r\nNats-Consumer-Stalled: $JS.FC.P.F.ODd6\r\n\r\n',
    );
  });

  it('MaxRequestExpires uses Go duration text', () => {
    expect(statusExceededExpires(5_000_000_000).toString()).toBe('NATS/1.0 409 Exceeded MaxRequestExpires of 5s\r\n\r\n');
  });

  it.each<[number, string]>([
    [0, '0s'],
    [5_000_000_000, '5s'],
    [1_500_000_000, '1.5s'],
    [90_000_000_000, '1m30s'],
    [3_600_000_000_000, '1h0m0s'],
    [500_000_000, '500ms'],
    [1500, '1.5µs'],
    [10, '10ns'],
  ])('formatGoDuration(%d) = %s', (ns, s) => {
    expect(formatGoDuration(ns)).toBe(s);
  });
});
