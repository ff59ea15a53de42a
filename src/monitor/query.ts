/**
 * Query-string values parsed the way nats-server's monitor parses them (Go's strconv), with
 * the same 400 texts, so scripts that check nats-server's error bodies see the same words.
 *
 * An empty or absent parameter means "not given" (the Go handlers read Query().Get(name)
 * and skip empty values).
 */

/** A bad query value: the monitor answers HTTP 400 with `message` as plain text. */
export class QueryError extends Error {
  readonly status = 400;
  constructor(message: string) {
    super(message);
    this.name = 'QueryError';
  }
}

/** Go's strconv.Quote for error texts: printable characters as they are, others escaped. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (c === 7) out += '\\a';
    else if (c === 8) out += '\\b';
    else if (c === 12) out += '\\f';
    else if (c === 10) out += '\\n';
    else if (c === 13) out += '\\r';
    else if (c === 9) out += '\\t';
    else if (c === 11) out += '\\v';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else if (c >= 0x80 && c < 0xa0) out += '\\u' + c.toString(16).padStart(4, '0');
    else if (c >= 0xd800 && c <= 0xdfff) out += '\\ufffd';
    else out += ch;
  }
  return out + '"';
}

function numError(fn: string, s: string, what: 'invalid syntax' | 'value out of range'): string {
  return `strconv.${fn}: parsing ${goQuote(s)}: ${what}`;
}

/** Go's strconv.ParseBool. Returns the error text on failure. */
export function goParseBool(s: string): boolean | string {
  switch (s) {
    case '1':
    case 't':
    case 'T':
    case 'TRUE':
    case 'true':
    case 'True':
      return true;
    case '0':
    case 'f':
    case 'F':
    case 'FALSE':
    case 'false':
    case 'False':
      return false;
  }
  return numError('ParseBool', s, 'invalid syntax');
}

const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;

/**
 * Decimal digits into a bigint the way Go's ParseUint walks them: the first bad character
 * is a syntax error, the first digit that overflows `max` a range error, whichever comes first.
 */
function parseDigits(digits: string, max: bigint): bigint | 'invalid syntax' | 'value out of range' {
  if (digits.length === 0) return 'invalid syntax';
  let n = 0n;
  for (let i = 0; i < digits.length; i++) {
    const d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return 'invalid syntax';
    n = n * 10n + BigInt(d);
    if (n > max) return 'value out of range';
  }
  return n;
}

/** Go's strconv.Atoi on a 64-bit platform. Returns the error text on failure. */
export function goAtoi(s: string): number | string {
  let digits = s;
  let neg = false;
  if (s.startsWith('+') || s.startsWith('-')) {
    neg = s[0] === '-';
    digits = s.slice(1);
  }
  const r = parseDigits(digits, neg ? INT64_MAX + 1n : INT64_MAX);
  if (typeof r === 'string') return numError('Atoi', s, r);
  return Number(neg ? -r : r);
}

/** Go's strconv.ParseUint(s, 10, 64). Returns the error text on failure. */
export function goParseUint64(s: string): number | string {
  const r = parseDigits(s, UINT64_MAX);
  if (typeof r === 'string') return numError('ParseUint', s, r);
  return Number(r);
}

/** Boolean parameter; absent or empty = false. Throws QueryError with nats-server's text. */
export function boolParam(query: URLSearchParams, name: string): boolean {
  const s = query.get(name);
  if (s === null || s === '') return false;
  const v = goParseBool(s);
  if (typeof v === 'string') throw new QueryError(`Error decoding boolean for '${name}': ${v}`);
  return v;
}

/** Integer parameter; absent or empty = 0. Throws QueryError with nats-server's text. */
export function intParam(query: URLSearchParams, name: string): number {
  const s = query.get(name);
  if (s === null || s === '') return 0;
  const v = goAtoi(s);
  if (typeof v === 'string') throw new QueryError(`Error decoding int for '${name}': ${v}`);
  return v;
}

/** Unsigned 64-bit parameter (cid); absent or empty = 0. Throws QueryError with nats-server's text. */
export function uint64Param(query: URLSearchParams, name: string): number {
  const s = query.get(name);
  if (s === null || s === '') return 0;
  const v = goParseUint64(s);
  if (typeof v === 'string') throw new QueryError(`Error decoding uint64 for '${name}': ${v}`);
  return v;
}

/** String parameter; absent = ''. */
export function stringParam(query: URLSearchParams, name: string): string {
  return query.get(name) ?? '';
}

/** Paging as nats-server applies it: negative offset = 0, limit <= 0 = the default. */
export function pageParams(query: URLSearchParams, defaultLimit: number): { offset: number; limit: number } {
  const offset = Math.max(0, intParam(query, 'offset'));
  const limit = intParam(query, 'limit');
  return { offset, limit: limit > 0 ? limit : defaultLimit };
}

/** The slice [offset, offset + limit) of `items`, clamped to its length. */
export function page<T>(items: readonly T[], offset: number, limit: number): T[] {
  const from = Math.min(offset, items.length);
  const to = Math.min(items.length, from + limit);
  return items.slice(from, to);
}
