import { describe, expect, it } from 'vitest';
import { goDuration, goJson, goRtt, goUptime, rfc3339Nano } from '../../src/monitor/format.js';

describe('goDuration (Go time.Duration.String)', () => {
  it.each([
    [0, '0s'],
    [1, '1ns'],
    [999, '999ns'],
    [1_000, '1µs'],
    [363_000, '363µs'],
    [1_500, '1.5µs'],
    [1_988_976, '1.988976ms'],
    [150_496_235, '150.496235ms'],
    [1_000_000_000, '1s'],
    [1_500_000_000, '1.5s'],
    [60_000_000_000, '1m0s'],
    [90_500_000_000, '1m30.5s'],
    [7_200_000_000_000, '2h0m0s'],
    [3_723_004_000_000, '1h2m3.004s'],
    [-1_500_000, '-1.5ms'],
  ])('%d ns -> %s', (ns, text) => {
    expect(goDuration(ns)).toBe(text);
  });
});

describe('goRtt', () => {
  it('truncates to microseconds below one millisecond, keeps nanoseconds above', () => {
    expect(goRtt(0.3634567)).toBe('363µs');
    expect(goRtt(1.988976)).toBe('1.988976ms');
    expect(goRtt(142.537672)).toBe('142.537672ms');
  });
  it('is 0s when not measured', () => {
    expect(goRtt(undefined)).toBe('0s');
    expect(goRtt(0)).toBe('0s');
  });
});

describe('goUptime (nats-server compact uptime)', () => {
  it.each([
    [0, '0s'],
    [999, '0s'],
    [1_000, '1s'],
    [59_999, '59s'],
    [60_000, '1m0s'],
    [3_723_000, '1h2m3s'],
    [93_784_000, '1d2h3m4s'],
    [365 * 86_400_000 + 1_000, '1y0d0h0m1s'],
    [-5, '0s'],
  ])('%d ms -> %s', (ms, text) => {
    expect(goUptime(ms)).toBe(text);
  });
});

describe('rfc3339Nano', () => {
  it('drops trailing zeros of the fraction, and the fraction when zero', () => {
    expect(rfc3339Nano(new Date('2026-11-27T05:31:45.356Z'))).toBe('2026-11-27T05:31:45.356Z');
    expect(rfc3339Nano(new Date('2026-11-27T05:31:45.350Z'))).toBe('2026-11-27T05:31:45.35Z');
    expect(rfc3339Nano(new Date('2026-11-27T05:31:45.000Z'))).toBe('2026-11-27T05:31:45Z');
  });
  it('takes nanoseconds since the epoch as a bigint', () => {
    const ns = BigInt(Date.parse('2026-11-27T05:31:45Z')) * 1_000_000n + 356_601_643n;
    expect(rfc3339Nano(ns)).toBe('2026-11-27T05:31:45.356601643Z');
    expect(rfc3339Nano(ns - 356_601_643n + 10n)).toBe('2026-11-27T05:31:45.00000001Z');
  });
});

describe('goJson', () => {
  it('pretty-prints like MarshalIndent with 2 spaces and no trailing newline', () => {
    const v = { a: 1, b: ['x', 'y'], c: {}, d: [], e: { f: true, g: null } };
    expect(goJson(v)).toBe(JSON.stringify(v, null, 2));
    expect(goJson(v).endsWith('}')).toBe(true);
  });
  it('writes compact JSON when asked', () => {
    expect(goJson({ status: 'ok' }, false)).toBe('{"status":"ok"}');
  });
  it('omits undefined members, keeps insertion order', () => {
    expect(goJson({ z: 1, a: undefined, m: 2 }, false)).toBe('{"z":1,"m":2}');
    expect(goJson({ a: undefined })).toBe('{}');
  });
  it('escapes < > & and U+2028 as Go does', () => {
    expect(goJson({ s: 's1.> <a&b>\u2028' }, false)).toBe('{"s":"s1.\\u003e \\u003ca\\u0026b\\u003e\\u2028"}');
    expect(goJson('tab\tnl\nq"bs\\\u0001', false)).toBe('"tab\\tnl\\nq\\"bs\\\\\\u0001"');
    expect(JSON.parse(goJson({ s: 'a>b' }))).toEqual({ s: 'a>b' });
  });
  it('writes bigint as an exact integer (uint64 max)', () => {
    expect(goJson({ r: 18446744073709551615n }, false)).toBe('{"r":18446744073709551615}');
  });
  it('sorts Map keys like a Go map', () => {
    expect(goJson(new Map([['/varz', 1], ['/connz', 2]]), false)).toBe('{"/connz":2,"/varz":1}');
  });
  it('writes floats as Go does', () => {
    expect(goJson([0.75, 0, 1e21, 1e-7, 12.5], false)).toBe('[0.75,0,1e+21,1e-7,12.5]');
  });
});
