import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/conf-parser.js';
import { defaultOptions } from '../../src/config/load.js';
import type { RawBlock, ServerOptions } from '../../src/config/options.js';
import { parseWebsocketConfig } from '../../src/ws/config.js';
import { OriginPolicy } from '../../src/ws/origin.js';

function block(text: string): RawBlock {
  const root = parseConfig(text, '/tmp/ws.conf');
  const e = root.entries.get('websocket')!;
  return { value: null, where: `/tmp/ws.conf:${e.keyPos.line}`, node: e.value };
}

function withUsers(): ServerOptions {
  const o = defaultOptions();
  o.authorization = { users: [{ user: 'dash', password: 'pw' }], timeoutMs: 2000 };
  return o;
}

describe('websocket {} block', () => {
  it('reads nats-server keys with their defaults', () => {
    const o = parseWebsocketConfig(
      block('websocket {\n  port: 8080\n  no_tls: true\n  same_origin: true\n  allowed_origins: ["https://a.example", "http://b.example:81"]\n  compression: true\n  handshake_timeout: "3s"\n}'),
      defaultOptions(),
    );
    expect(o).toMatchObject({ host: '0.0.0.0', port: 8080, noTls: true, sameOrigin: true, compression: true, handshakeTimeoutMs: 3000 });
    expect(o?.allowedOrigins).toEqual(['https://a.example', 'http://b.example:81']);
    expect(parseWebsocketConfig(block('websocket { listen: "127.0.0.1:-1", no_tls: true }'), defaultOptions())).toMatchObject({ host: '127.0.0.1', port: 0 });
    expect(parseWebsocketConfig(block('websocket { port: 1, no_tls: true, allowed_origins: "http://x" }'), defaultOptions())?.allowedOrigins).toEqual(['http://x']);
    const a = parseWebsocketConfig(block('websocket { port: 1, no_tls: true, authorization { token: t, timeout: 5 } }'), defaultOptions());
    expect(a?.authorization).toEqual({ token: 't', timeoutMs: 5000 });
  });

  it('no port: the listener stays off and nothing else is checked (nats-server)', () => {
    expect(parseWebsocketConfig(block('websocket { }'), defaultOptions())).toBeNull();
    expect(parseWebsocketConfig(block('websocket { port: 0 }'), defaultOptions())).toBeNull();
  });

  it('errors name file:line:col', () => {
    expect(() => parseWebsocketConfig(block('websocket {\n  port: 8080\n}'), defaultOptions())).toThrow('/tmp/ws.conf:1:11: websocket requires TLS configuration');
    expect(() => parseWebsocketConfig(block('websocket {\n  port: 8080\n  no_tls: true\n  bogus: 1\n}'), defaultOptions())).toThrow('/tmp/ws.conf:4:3: unknown field "bogus"');
    expect(() => parseWebsocketConfig(block('websocket {\n  port: 1\n  no_tls: 1\n}'), defaultOptions())).toThrow(/ws\.conf:3:\d+: no_tls: expected true or false/);
    expect(() => parseWebsocketConfig(block('websocket {\n  port: 1\n  no_tls: true\n  allowed_origins: ["not a url"]\n}'), defaultOptions())).toThrow(/ws\.conf:4:\d+: allowed_origins: unable to parse/);
    expect(() => parseWebsocketConfig(block('websocket {\n  port: 1\n  tls { cert_file: "/x" }\n}'), defaultOptions())).toThrow(/ws\.conf:3:\d+: missing 'key_file'/);
    expect(() => parseWebsocketConfig(block('websocket {\n  port: 1\n  no_tls: true\n  authorization { users: [] }\n}'), defaultOptions())).toThrow(/ws\.conf:4:\d+: unknown field "users"/);
  });

  it('the block credential and no_auth_user against the top-level users, as nats-server checks them', () => {
    expect(() => parseWebsocketConfig(block('websocket { port: 1, no_tls: true, authorization { user: u, password: p } }'), withUsers())).toThrow(/username not compatible with presence of users/);
    expect(() => parseWebsocketConfig(block('websocket { port: 1, no_tls: true, authorization { token: t } }'), withUsers())).toThrow(/token not compatible with presence of users/);
    expect(() => parseWebsocketConfig(block('websocket { port: 1, no_tls: true, no_auth_user: x }'), defaultOptions())).toThrow(/no_auth_user: "x" present, but users are not defined/);
    expect(() => parseWebsocketConfig(block('websocket { port: 1, no_tls: true, no_auth_user: x }'), withUsers())).toThrow(/no_auth_user: "x" not present as user/);
    expect(parseWebsocketConfig(block('websocket { port: 1, no_tls: true, no_auth_user: dash }'), withUsers())?.noAuthUser).toBe('dash');
  });
});

describe('OriginPolicy', () => {
  it('lets everything through when neither same_origin nor allowed_origins is set', () => {
    expect(new OriginPolicy(false, []).check('http://evil.example', 'h:1', false)).toBeNull();
  });

  it('allowed_origins compares scheme, host (case-insensitive) and port with scheme defaults', () => {
    const p = new OriginPolicy(false, ['http://dash.example', 'https://secure.example']);
    expect(p.check(undefined, 'x', false)).toBeNull();
    expect(p.check('http://DASH.example:80', 'x', false)).toBeNull();
    expect(p.check('https://secure.example:443', 'x', false)).toBeNull();
    expect(p.check('https://dash.example', 'x', false)).toBe('not in the allowed list');
    expect(p.check('http://dash.example:8080', 'x', false)).toBe('not in the allowed list');
    expect(p.check('http://other.example', 'x', false)).toBe('not in the allowed list');
    expect(p.check('garbage', 'x', false)).toBe('invalid origin');
  });

  it('same_origin compares with the Host header, port defaulting by TLS', () => {
    const p = new OriginPolicy(true, []);
    expect(p.check('http://gw.local:8080', 'gw.local:8080', false)).toBeNull();
    expect(p.check('https://gw.local', 'gw.local', true)).toBeNull();
    expect(p.check('http://gw.local', 'gw.local', true)).toBe('not same origin');
    expect(p.check('http://[::1]:8080', '[::1]:8080', false)).toBeNull();
    expect(p.check('http://other:8080', 'gw.local:8080', false)).toBe('not same origin');
  });
});
