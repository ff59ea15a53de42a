import { describe, expect, it } from 'vitest';
import {
  boolParam,
  goAtoi,
  goParseBool,
  goParseUint64,
  goQuote,
  intParam,
  page,
  pageParams,
  QueryError,
  uint64Param,
} from '../../src/monitor/query.js';

const q = (s: string): URLSearchParams => new URLSearchParams(s);

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(QueryError);
    return (err as QueryError).message;
  }
  throw new Error('no error thrown');
}

describe('goParseBool', () => {
  it('accepts exactly Go ParseBool spellings', () => {
    for (const s of ['1', 't', 'T', 'TRUE', 'true', 'True']) expect(goParseBool(s)).toBe(true);
    for (const s of ['0', 'f', 'F', 'FALSE', 'false', 'False']) expect(goParseBool(s)).toBe(false);
  });
  it('refuses other spellings with the strconv text', () => {
    expect(goParseBool('yes')).toBe('strconv.ParseBool: parsing "yes": invalid syntax');
    expect(goParseBool('tRUE')).toBe('strconv.ParseBool: parsing "tRUE": invalid syntax');
  });
});

describe('goAtoi / goParseUint64', () => {
  it('parses signed decimal integers', () => {
    expect(goAtoi('42')).toBe(42);
    expect(goAtoi('+7')).toBe(7);
    expect(goAtoi('-3')).toBe(-3);
    expect(goAtoi('-9223372036854775808')).toBe(-9223372036854775808);
  });
  it('reports syntax and range errors as strconv does', () => {
    expect(goAtoi('x')).toBe('strconv.Atoi: parsing "x": invalid syntax');
    expect(goAtoi('1.5')).toBe('strconv.Atoi: parsing "1.5": invalid syntax');
    expect(goAtoi('-')).toBe('strconv.Atoi: parsing "-": invalid syntax');
    expect(goAtoi('1_000')).toBe('strconv.Atoi: parsing "1_000": invalid syntax');
    expect(goAtoi('99999999999999999999')).toBe('strconv.Atoi: parsing "99999999999999999999": value out of range');
  });
  it('ParseUint refuses signs', () => {
    expect(goParseUint64('5')).toBe(5);
    expect(goParseUint64('-1')).toBe('strconv.ParseUint: parsing "-1": invalid syntax');
    expect(goParseUint64('+1')).toBe('strconv.ParseUint: parsing "+1": invalid syntax');
    expect(goParseUint64('18446744073709551616')).toBe(
      'strconv.ParseUint: parsing "18446744073709551616": value out of range',
    );
  });
  it('quotes like strconv.Quote', () => {
    expect(goQuote('a"b\\c\n\u0001é')).toBe('"a\\"b\\\\c\\n\\x01é"');
  });
});

describe('parameter decoding (nats-server 400 texts)', () => {
  it('treats absent and empty as not given', () => {
    expect(boolParam(q(''), 'subs')).toBe(false);
    expect(boolParam(q('subs='), 'subs')).toBe(false);
    expect(intParam(q('offset='), 'offset')).toBe(0);
    expect(uint64Param(q(''), 'cid')).toBe(0);
  });
  it('uses the first value of a repeated parameter', () => {
    expect(boolParam(q('auth=1&auth=maybe'), 'auth')).toBe(true);
  });
  it('produces the exact 400 texts', () => {
    expect(errorOf(() => boolParam(q('subs=maybe'), 'subs'))).toBe(
      `Error decoding boolean for 'subs': strconv.ParseBool: parsing "maybe": invalid syntax`,
    );
    expect(errorOf(() => intParam(q('limit=x'), 'limit'))).toBe(
      `Error decoding int for 'limit': strconv.Atoi: parsing "x": invalid syntax`,
    );
    expect(errorOf(() => uint64Param(q('cid=-1'), 'cid'))).toBe(
      `Error decoding uint64 for 'cid': strconv.ParseUint: parsing "-1": invalid syntax`,
    );
  });
  it('pages as nats-server: negative offset 0, limit <= 0 the default', () => {
    expect(pageParams(q('offset=-1&limit=-5'), 1024)).toEqual({ offset: 0, limit: 1024 });
    expect(pageParams(q('offset=2&limit=0'), 1024)).toEqual({ offset: 2, limit: 1024 });
    expect(pageParams(q('offset=1&limit=2'), 1024)).toEqual({ offset: 1, limit: 2 });
    expect(page([1, 2, 3, 4], 1, 2)).toEqual([2, 3]);
    expect(page([1, 2, 3], 10, 2)).toEqual([]);
    expect(page([1, 2, 3], 2, 1024)).toEqual([3]);
  });
});
