import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getEntry, parseConfig, parseConfigFile, toPlain, type ConfMap } from '../../src/config/conf-parser.js';
import { ConfigError } from '../../src/config/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'nats-edge-conf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function plain(text: string, env: NodeJS.ProcessEnv = {}): unknown {
  return toPlain(parseConfig(text, 'test.conf', { env }));
}

function parseError(text: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfig(text, 'test.conf', { env });
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a parse error');
}

describe('lexical rules (spec 1.1)', () => {
  it('takes # and // comments anywhere a key or a value end is allowed', () => {
    expect(plain('# c\n// c\nport: 4222 # trailing\nhost: h // trailing\n  # indented\n')).toEqual({ port: 4222, host: 'h' });
  });

  it('accepts = : and whitespace as separators', () => {
    expect(plain('a = 1\nb: 2\nc 3\nd=4\ne:5\nf\t6\n')).toEqual({ a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 });
  });

  it('ends values at new line, ; and ,', () => {
    expect(plain('debug: false, trace: off, logtime: yes\na: 1; b: 2\n')).toEqual({ debug: false, trace: false, logtime: true, a: 1, b: 2 });
  });

  it('accepts a document wrapped in braces, with or without a new line', () => {
    expect(plain('{\nport: 4222\n}\n')).toEqual({ port: 4222 });
    expect(plain('{port: 4222}')).toEqual({ port: 4222 });
    // nats-server tolerates a missing closing brace and a stray one at the end.
    expect(plain('{\nport: 4222\n')).toEqual({ port: 4222 });
    expect(plain('port: 4222\n}\n')).toEqual({ port: 4222 });
  });

  it('reads quoted keys', () => {
    expect(plain('"a b": 1\n\'c\': 2\n')).toEqual({ 'a b': 1, c: 2 });
  });

  it('reads maps with new line, comma or semicolon between entries', () => {
    expect(plain('a { b: 1\n c: 2, d: 3; e: { f: x } }\n')).toEqual({ a: { b: 1, c: 2, d: 3, e: { f: 'x' } } });
    expect(plain('a {}\n')).toEqual({ a: {} });
  });

  it('reads arrays on one line or one element per line, trailing comma allowed', () => {
    expect(plain('a: [1, 2, 3]\nb: [\n  x\n  y, # c\n  "z",\n]\nc: []\n')).toEqual({ a: [1, 2, 3], b: ['x', 'y', 'z'], c: [] });
    expect(plain('a: [{u: 1}, {u: 2}]\n')).toEqual({ a: [{ u: 1 }, { u: 2 }] });
  });

  it('reads double-quoted strings with \\t \\n \\r \\" \\\\ \\xHH and keeps new lines', () => {
    expect(plain('a: "x\\ty\\nz\\r\\"q\\"\\\\\\x41"\nb: "two\nlines"\n')).toEqual({ a: 'x\ty\nz\r"q"\\A', b: 'two\nlines' });
  });

  it('refuses other escapes', () => {
    expect(parseError('a: "x\\qy"\n')).toMatch(/^test\.conf:1:6: Invalid escape character 'q'/);
    expect(parseError('a: "x\\x4"\n')).toMatch(/Expected two hexadecimal digits/);
  });

  it('reads single-quoted strings raw', () => {
    expect(plain("a: 'x\\ty $HOME'\n")).toEqual({ a: 'x\\ty $HOME' });
  });

  it('reads unquoted strings holding : and / up to whitespace or a terminator', () => {
    expect(plain('a: nats://h:4222\nb: 127.0.0.1:4222\nc: a=b:c/d\nd: x#y\ne: [p/q, r:s]\n')).toEqual({
      a: 'nats://h:4222',
      b: '127.0.0.1:4222',
      c: 'a=b:c/d',
      d: 'x#y',
      e: ['p/q', 'r:s'],
    });
    expect(plain('a: x\\ty\n')).toEqual({ a: 'x\ty' });
  });

  it('reads block strings ( ... ) up to ) alone on a line', () => {
    expect(plain('a: (\nline 1\n  line ) 2\n)\nb: 1\n')).toEqual({ a: '\nline 1\n  line ) 2\n', b: 1 });
    expect(parseError('a: (\nnever closed )\n')).toMatch(/test\.conf:1:4: Unexpected EOF processing block/);
  });

  it('reads booleans case-insensitively, quoted ones stay strings', () => {
    expect(plain('a: true\nb: FALSE\nc: yes\nd: No\ne: on\nf: OFF\ng: "true"\n')).toEqual({
      a: true,
      b: false,
      c: true,
      d: false,
      e: true,
      f: false,
      g: 'true',
    });
  });

  it('reads integers, negative numbers, floats and dates', () => {
    const v = plain('a: 42\nb: -1\nc: 1.5\nd: -0.25\ne: 010\nf: 2020-01-01T00:00:00Z\n') as Record<string, unknown>;
    expect(v).toMatchObject({ a: 42, b: -1, c: 1.5, d: -0.25, e: 10 });
    expect(v['f']).toEqual(new Date(Date.UTC(2020, 0, 1)));
  });

  it('takes digits followed by other text as a string (durations, addresses)', () => {
    expect(plain('a: 10s\nb: 1h30m\nc: 500ms\nd: 1.2.3.4\ne: 1_000\nf: 1x\n')).toEqual({
      a: '10s',
      b: '1h30m',
      c: '500ms',
      d: '1.2.3.4',
      e: '1_000',
      f: '1x',
    });
  });

  it('refuses malformed numbers like nats-server', () => {
    expect(parseError('a: .5\n')).toMatch(/test\.conf:1:4: Floats must start with a digit/);
    expect(parseError('a: -x\n')).toMatch(/Expected a digit but got 'x'/);
    expect(parseError('a: 1.5x\n')).toMatch(/test\.conf:1:4: invalid float/);
    expect(parseError('a: 2020-01\n')).toMatch(/ISO8601/);
    expect(parseError('a: 1kb2\n')).toMatch(/invalid number/);
    expect(parseError('a: 1kbb\n')).toMatch(/invalid size suffix/);
  });
});

describe('size suffixes (spec 1.2)', () => {
  const cases: [string, number][] = [
    ['1k', 1000],
    ['1K', 1000],
    ['2KB', 2048],
    ['1kb', 1024],
    ['1Ki', 1024],
    ['1KiB', 1024],
    ['1m', 1e6],
    ['1M', 1e6],
    ['2MB', 2097152],
    ['1Mi', 1048576],
    ['1MiB', 1048576],
    ['1g', 1e9],
    ['1GB', 1024 ** 3],
    ['1gib', 1024 ** 3],
    ['1t', 1e12],
    ['1TB', 1024 ** 4],
    ['1tib', 1024 ** 4],
    ['1p', 1e15],
    ['1pb', 1024 ** 5],
    ['1e', 1e18],
    ['1eb', 1024 ** 6],
    ['-1K', -1000],
    ['0', 0],
  ];
  it.each(cases)('%s = %d', (lit, n) => {
    expect(plain(`a: ${lit}\n`)).toEqual({ a: n });
  });

  it('keeps the literal for messages', () => {
    const e = getEntry(parseConfig('a: 2m\n', 'x.conf', { env: {} }), 'a')!;
    expect(e.value).toMatchObject({ kind: 'int', value: 2000000, raw: '2m' });
  });

  it('leaves a quoted size a string', () => {
    expect(plain('a: "1MB"\n')).toEqual({ a: '1MB' });
  });
});

describe('variables (spec 1.3)', () => {
  it('reads a top-level variable defined above', () => {
    expect(plain('PAYLOAD = 2MB\nmax_payload: $PAYLOAD\n')).toEqual({ PAYLOAD: 2097152, max_payload: 2097152 });
  });

  it('looks up the innermost enclosing map first, then outward', () => {
    expect(plain('X = outer\na { X = inner, b: $X }\nc { d: $X }\n')).toMatchObject({ a: { X: 'inner', b: 'inner' }, c: { d: 'outer' } });
    expect(plain('X = 1\na: [ { y: $X } ]\n')).toMatchObject({ a: [{ y: 1 }] });
  });

  it('marks a key used as a variable', () => {
    const m = parseConfig('X = 1\nY = 2\na: $X\n', 't.conf', { env: {} });
    expect(getEntry(m, 'X')!.usedAsVariable).toBe(true);
    expect(getEntry(m, 'Y')!.usedAsVariable).toBe(false);
  });

  it('falls back to the environment and parses its value as config', () => {
    expect(plain('password: $ADMINPASS\n', { ADMINPASS: 'pw1' })).toEqual({ password: 'pw1' });
    expect(plain('a: $N\n', { N: '123' })).toEqual({ a: 123 });
    expect(plain('a: $N\n', { N: '2MB' })).toEqual({ a: 2097152 });
    expect(plain('a: $N\n', { N: 'true' })).toEqual({ a: true });
    expect(plain('a: $N\n', { N: '[1, 2]' })).toEqual({ a: [1, 2] });
    expect(plain('a: $N\n', { N: '"x y"' })).toEqual({ a: 'x y' });
  });

  it('prefers the config over the environment', () => {
    expect(plain('X = conf\na: $X\n', { X: 'env' })).toEqual({ X: 'conf', a: 'conf' });
  });

  it('does not expand inside quotes', () => {
    expect(plain('a: "$HOME"\nb: \'$HOME\'\n', { HOME: '/root' })).toEqual({ a: '$HOME', b: '$HOME' });
  });

  it('fails on an unknown variable with nats-server words and the position', () => {
    expect(parseError('port: 1\nx: $NOPE\n')).toBe("test.conf:2:4: variable reference for 'NOPE' on line 2 can not be found");
  });

  it('treats $2a$ values as bcrypt hashes, $2b$ as variables (as 2.9 does)', () => {
    expect(plain('p: $2a$11$abcdefghijk\n')).toEqual({ p: '$2a$11$abcdefghijk' });
    expect(parseError('p: $2b$10$abc\n')).toMatch(/variable reference for '2b\$10\$abc' on line 1 can not be found/);
  });

  it('reports a bad environment value at the reference', () => {
    expect(parseError('\na: $X\n', { X: 'foo bar' })).toMatch(/^test\.conf:2:4: error parsing environment variable 'X': /);
  });
});

describe('include', () => {
  it('merges the included keys at top level and inside a block, relative to the including file', () => {
    mkdirSync(join(dir, 'sub', 'inner'), { recursive: true });
    writeFileSync(join(dir, 'sub', 'limits.conf'), 'max_payload: 2KB\ninclude inner/more.conf\n');
    writeFileSync(join(dir, 'sub', 'inner', 'more.conf'), 'ping_max: 3\n');
    writeFileSync(join(dir, 'sub', 'auth.conf'), 'user: bob\npassword: pw\n');
    writeFileSync(join(dir, 'main.conf'), 'port: 1\ninclude ./sub/limits.conf\nauthorization {\n  include "sub/auth.conf"\n  timeout: 1\n}\n');
    expect(toPlain(parseConfigFile(join(dir, 'main.conf'), { env: {} }))).toEqual({
      port: 1,
      max_payload: 2048,
      ping_max: 3,
      authorization: { user: 'bob', password: 'pw', timeout: 1 },
    });
  });

  it('parses the included file in its own scope: parent variables are not visible there', () => {
    writeFileSync(join(dir, 'v.conf'), 'server_name: $NAME\n');
    writeFileSync(join(dir, 'vmain.conf'), 'NAME = foo\ninclude v.conf\n');
    expect(() => parseConfigFile(join(dir, 'vmain.conf'), { env: {} })).toThrow(/v\.conf:1:14: variable reference for 'NAME'/);
    expect(toPlain(parseConfigFile(join(dir, 'vmain.conf'), { env: { NAME: 'env' } }))).toEqual({ NAME: 'foo', server_name: 'env' });
  });

  it('reports a missing include and an include cycle', () => {
    writeFileSync(join(dir, 'missing.conf'), 'port: 1\ninclude nope.conf\n');
    expect(() => parseConfigFile(join(dir, 'missing.conf'))).toThrow(/missing\.conf:2:9: error parsing include file 'nope\.conf'/);
    writeFileSync(join(dir, 'loop.conf'), 'include loop.conf\n');
    expect(() => parseConfigFile(join(dir, 'loop.conf'))).toThrow(/include cycle/);
  });

  it('reports errors inside an included file with that file and line', () => {
    writeFileSync(join(dir, 'badinc.conf'), 'a: 1\nb: "x\\q"\n');
    writeFileSync(join(dir, 'badmain.conf'), 'include badinc.conf\n');
    expect(() => parseConfigFile(join(dir, 'badmain.conf'))).toThrow(/badinc\.conf:2:6: Invalid escape/);
  });
});

describe('positions and syntax errors', () => {
  it('keeps file, line and 1-based column on keys and values', () => {
    const m: ConfMap = parseConfig('port: 1\n  authorization {\n    user: "bob"\n  }\n', 'pos.conf', { env: {} });
    const auth = getEntry(m, 'authorization')!;
    expect(auth.keyPos).toEqual({ file: 'pos.conf', line: 2, col: 3 });
    expect(auth.value.pos).toEqual({ file: 'pos.conf', line: 2, col: 17 });
    const user = getEntry(auth.value as ConfMap, 'USER')!;
    expect(user.keyPos).toEqual({ file: 'pos.conf', line: 3, col: 5 });
    expect(user.value.pos).toEqual({ file: 'pos.conf', line: 3, col: 11 });
  });

  it('gives the place of each syntax error', () => {
    expect(parseError('server_name: foo bar\n')).toBe(
      "test.conf:1:18: Expected a top-level value to end with a new line, comment or EOF, but got 'b' instead.",
    );
    expect(parseError('port: 1\nmax_payload: {\n')).toMatch(/^test\.conf:3:1: Unexpected EOF processing map\./);
    expect(parseError('a { b: 1 c: 2 }\n')).toMatch(/^test\.conf:1:10: Expected a map value terminator/);
    expect(parseError('a [1 2]\n')).toMatch(/^test\.conf:1:6: Expected an array value terminator/);
    expect(parseError('a [,1]\n')).toMatch(/Unexpected array value terminator ','/);
    expect(parseError('a [1,,2]\n')).toMatch(/Unexpected array value terminator ','/);
    expect(parseError('port:\n')).toMatch(/^test\.conf:1:6: Expected value but found new line/);
    expect(parseError('= 4222\n')).toMatch(/Unexpected key separator '='/);
    expect(parseError('a: "open\n')).toMatch(/Unexpected EOF in quoted string/);
    expect(parseError('port: 1 } port: 2\n')).toMatch(/after the closing '}'/);
  });

  it('reads CRLF files and a byte order mark', () => {
    expect(plain('\ufeffport: 1\r\na {\r\n  b: x\r\n}\r\nc: [1,\r\n 2]\r\nd: (\r\ntext\r\n)\r\n')).toEqual({ port: 1, a: { b: 'x' }, c: [1, 2], d: '\r\ntext\r\n' });
  });

  it('keeps the later of two definitions of a key', () => {
    expect(plain('mqtt { port: 1, host: a }\nmqtt { port: 2 }\n')).toEqual({ mqtt: { port: 2 } });
  });
});

describe('JSON files', () => {
  it('loads a JSON document, with JSON escapes, exponents and null', () => {
    const f = join(dir, 'c.json');
    writeFileSync(f, JSON.stringify({ port: 4222, server_name: 'caf\u00e9/x', ratio: 1.5e3, n: null, authorization: { users: [{ user: 'a', password: 'b' }] } }, null, 2).replace('\u00e9', '\\u00e9').replace('/x', '\\/x'));
    expect(toPlain(parseConfigFile(f, { env: {} }))).toEqual({
      port: 4222,
      server_name: 'caf\u00e9/x',
      ratio: 1500,
      n: null,
      authorization: { users: [{ user: 'a', password: 'b' }] },
    });
  });

  it('takes compact JSON on one line', () => {
    expect(toPlain(parseConfig('{"a":{"b":[1,-2.5,"x"]},"c":true}', 'x.json', { env: {} }))).toEqual({ a: { b: [1, -2.5, 'x'] }, c: true });
  });
});
