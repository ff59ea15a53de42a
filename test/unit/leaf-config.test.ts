import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createUser } from '@nats-io/nkeys';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/conf-parser.js';
import { ConfigError } from '../../src/config/errors.js';
import { defaultOptions, loadOptions } from '../../src/config/load.js';
import type { RawBlock, ServerOptions } from '../../src/config/options.js';
import { parseLeafConfig, redactUrl, urlCredentials } from '../../src/leaf/config.js';
import type { LeafOptions } from '../../src/leaf/types.js';

const dir = mkdtempSync(join(tmpdir(), 'nats-edge-leafcfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FILE = join(dir, 'test.conf');

const userSeed = Buffer.from(createUser().getSeed()).toString('latin1');
const credsFile = join(dir, 'user.creds');
writeFileSync(
  credsFile,
  `-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJVIn0.c2ln\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${userSeed}\n------END USER NKEY SEED------\n`,
);
const badCreds = join(dir, 'bad.creds');
writeFileSync(badCreds, 'just some text\n');
const caFile = join(dir, 'ca.pem');
writeFileSync(caFile, 'not checked here\n');

function block(text: string): RawBlock {
  const root = parseConfig(text, FILE);
  const e = root.entries.get('leafnodes')!;
  return { value: null, where: `${FILE}:${e.keyPos.line}`, node: e.value };
}

function withJs(maxFileStore = 0): ServerOptions {
  const o = defaultOptions();
  o.jetstream = { enabled: true, storeDir: '/tmp/x', maxMemoryStore: 0, maxFileStore, syncInterval: 'always' };
  return o;
}

function parse(text: string, server: ServerOptions = withJs()): LeafOptions {
  const o = parseLeafConfig(block(text), server);
  if (o === null) throw new Error('expected remotes');
  return o;
}

/** The error text with the temp dir replaced by F, for exact position checks. */
function error(text: string, server: ServerOptions = withJs()): string {
  try {
    parseLeafConfig(block(text), server);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message.split(FILE).join('F');
  }
  throw new Error('expected a ConfigError');
}

describe('leafnodes {} block', () => {
  it('reads a remote with nats-server keys and defaults', () => {
    const o = parse(`leafnodes {
  reconnect: "5s"
  remotes: [
    {
      urls: ["nats-leaf://u%40x:p%3Aw@hub1:7000", "nats://hub2", "tls://[::1]:7423"]
      account: "$G"
      deny_imports: ["secret.>", "x.*"]
      deny_export: "local.>"
      no_randomize: true
      first_info_timeout: "3s"
      hub: false
      compression: s2_auto
      ws_compression: true
      jetstream_cluster_migrate: true
    }
  ]
}`);
    expect(o.reconnectMs).toBe(5000);
    expect(o.remotes).toHaveLength(1);
    const r = o.remotes[0]!;
    expect(r.urls.map((u) => u.href)).toEqual(['nats-leaf://u%40x:p%3Aw@hub1:7000', 'nats://hub2:7422', 'tls://[::1]:7423']);
    expect(r).toMatchObject({ account: '$G', denyImports: ['secret.>', 'x.*'], denyExports: ['local.>'], noRandomize: true, firstInfoTimeoutMs: 3000 });
    expect(r.where).toBe(`${FILE}:4`);
    expect(r.tls).toBeUndefined();
    expect(r.buffer).toBeUndefined();
    expect(r.credentials).toBeUndefined();
  });

  it('defaults: reconnect 1 s, first_info_timeout 1 s, $G, url alone', () => {
    const o = parse('leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1" } ] }');
    expect(o.reconnectMs).toBe(1000);
    expect(o.remotes[0]).toMatchObject({ account: '$G', denyImports: [], denyExports: [], noRandomize: false, firstInfoTimeoutMs: 1000 });
    expect(o.remotes[0]!.urls.map(String)).toEqual(['nats-leaf://127.0.0.1:7422']);
    expect(parse('leafnodes { reconnect_interval: 2, remotes: [ { url: "nats://h:1" } ] }').reconnectMs).toBe(2000);
    expect(parse('leafnodes { reconnect_delay: "250ms", remotes: [ { url: "nats://h:1" } ] }').reconnectMs).toBe(250);
    // url and urls together add up, in order.
    expect(parse('leafnodes { remotes: [ { url: "nats://a:1", urls: ["nats://b:2"] } ] }').remotes[0]!.urls.map((u) => u.host)).toEqual(['a:1', 'b:2']);
  });

  it('is null without remotes', () => {
    expect(parseLeafConfig(block('leafnodes { reconnect: 2 }'), withJs())).toBeNull();
    expect(parseLeafConfig(block('leafnodes { remotes: [] }'), withJs())).toBeNull();
    expect(parseLeafConfig(block('leafnodes { no_advertise: true, compression: off }'), withJs())).toBeNull();
  });

  it('reads auth: credentials, nkey seed, user/password', () => {
    const c = parse(`leafnodes { remotes: [ { url: "nats://h", creds: "${credsFile}" } ] }`).remotes[0]!;
    expect(c.credentials).toBe(credsFile);
    const k = parse(`leafnodes { remotes: [ { url: "nats://h", seed: "${userSeed}" } ] }`).remotes[0]!;
    expect(k.nkeySeed).toBe(userSeed);
    const u = parse('leafnodes { remotes: [ { url: "nats://h", username: leafu, pass: leafp } ] }').remotes[0]!;
    expect(u).toMatchObject({ user: 'leafu', password: 'leafp' });
  });

  it('reads a remote tls block', () => {
    const t = parse(`leafnodes { remotes: [ { url: "tls://h", tls { ca_file: "${caFile}", insecure: true, timeout: 3, handshake_first: true } } ] }`).remotes[0]!.tls;
    expect(t).toEqual({ caFile, insecure: true, timeoutMs: 3000, handshakeFirst: true });
    const d = parse('leafnodes { remotes: [ { url: "tls://h", tls { } } ] }').remotes[0]!.tls;
    expect(d).toEqual({ insecure: false, timeoutMs: 2000, handshakeFirst: false });
    const c = parse(`leafnodes { remotes: [ { url: "tls://h", tls { cert_file: "${caFile}", key_file: "${caFile}" } } ] }`).remotes[0]!.tls;
    expect(c).toMatchObject({ certFile: caFile, keyFile: caFile });
  });

  it('errors name file:line:col', () => {
    expect(error('leafnodes {\n  bogus: 1\n}')).toBe('F:2:3: unknown field "bogus" in leafnodes block');
    expect(error('leafnodes {\n  remotes: [ {\n    url: "nats://h"\n    nope: 1\n  } ]\n}')).toBe('F:4:5: unknown field "nope" in leafnodes remote');
    expect(error('leafnodes {\n  remotes: { url: "nats://h" }\n}')).toMatch(/^F:2:\d+: remotes: expected a list of remote blocks/);
    expect(error('leafnodes {\n  remotes: [ "nats://h" ]\n}')).toMatch(/^F:2:\d+: remotes: each remote must be a block/);
    expect(error('leafnodes {\n  remotes: [ { no_randomize: true } ]\n}')).toMatch(/^F:2:\d+: leafnodes remote: missing url/);
    expect(error('leafnodes {\n  remotes: [ { url: "nats://h", no_randomize: "yes" } ]\n}')).toMatch(/^F:2:\d+: no_randomize: expected true or false/);
    expect(error('leafnodes {\n  reconnect: "soon"\n  remotes: [ { url: "nats://h" } ]\n}')).toMatch(/^F:2:\d+: reconnect: time: invalid duration/);
    expect(error('leafnodes {\n  remotes: [ { url: "nats://h", tls { verify_and_map: true } } ]\n}')).toMatch(
      /^F:2:\d+: unknown field "verify_and_map" in leafnodes remote tls block/,
    );
  });

  it('refuses the accept-side keys by name', () => {
    for (const key of ['port: 7422', 'listen: "0.0.0.0:7422"', 'host: "0.0.0.0"', 'net: "0.0.0.0"', 'advertise: "x:1"', 'authorization { user: a, password: b }', 'min_version: "2.9.0"']) {
      const name = key.split(/[: {]/)[0]!;
      expect(error(`leafnodes {\n  ${key}\n}`)).toBe(`F:2:3: nats-edge accepts no leafnode connections; it is always the leaf: remove ${name}`);
    }
    expect(error(`leafnodes {\n  tls { ca_file: "${caFile}" }\n  remotes: [ { url: "nats://h" } ]\n}`)).toBe(
      'F:2:3: nats-edge accepts no leafnode connections; it is always the leaf: remove tls',
    );
    expect(error('leafnodes {\n  remotes: [ { url: "nats://h", hub: true } ]\n}')).toMatch(/^F:2:\d+: hub: nats-edge is always the leaf/);
  });

  it('checks URLs', () => {
    expect(error('leafnodes { remotes: [ { url: "ws://hub:443" } ] }')).toMatch(/^F:1:\d+: url: websocket leafnode remotes \(ws:\/\/\) are not supported/);
    expect(error('leafnodes { remotes: [ { urls: ["nats://a", "wss://hub"] } ] }')).toMatch(/wss:\/\/\) are not supported/);
    expect(error('leafnodes { remotes: [ { url: "http://hub" } ] }')).toMatch(/unsupported scheme "http"/);
    expect(error('leafnodes { remotes: [ { url: "hub:7422" } ] }')).toMatch(/needs a scheme/);
    expect(error('leafnodes { remotes: [ { url: 7422 } ] }')).toMatch(/url: expected a URL string/);
    expect(error('leafnodes { remotes: [ { urls: [] } ] }')).toMatch(/urls: expected at least one URL/);
    expect(error('leafnodes { remotes: [ { url: "nats://h:0" } ] }')).toMatch(/port 0 cannot be dialed/);
    // A URL that does not parse is shown without its userinfo.
    const bad = error('leafnodes { remotes: [ { url: "nats://user:secret@h:99999" } ] }');
    expect(bad).toMatch(/cannot parse/);
    expect(bad).not.toContain('secret');
  });

  it('binds only the global account', () => {
    expect(error('leafnodes {\n  remotes: [ { url: "nats://h", account: APP } ]\n}')).toMatch(/^F:2:\d+: account: nats-edge has a single account, so a remote can only bind "\$G" \(got "APP"\)/);
    expect(error('leafnodes { remotes: [ { url: "nats://h", local: "SYS" } ] }')).toMatch(/local: nats-edge has a single account/);
    expect(parse('leafnodes { remotes: [ { url: "nats://h", local: "$G" } ] }').remotes[0]!.account).toBe('$G');
  });

  it('checks credentials and seeds', () => {
    expect(error('leafnodes {\n  remotes: [ { url: "nats://h",\n    credentials: "/no/such/file.creds" } ]\n}')).toBe('F:3:18: credentials: no such file "/no/such/file.creds"');
    expect(error(`leafnodes { remotes: [ { url: "nats://h", creds: "${badCreds}" } ] }`)).toMatch(/creds ".*bad\.creds": Credentials file malformed/);
    const account = Buffer.from(createUser().getSeed()).toString('latin1').replace(/^SU/, 'SA');
    // One character changed inside the payload (the last one may hold only padding bits): the CRC fails.
    const corrupted = userSeed.slice(0, 20) + (userSeed[20] === 'A' ? 'B' : 'A') + userSeed.slice(21);
    for (const s of ['SUNOTASEED', account, corrupted]) {
      const msg = error(`leafnodes { remotes: [ { url: "nats://h", nkey: "${s}" } ] }`);
      expect(msg).toMatch(/nkey: not a valid user nkey seed/);
      expect(msg).not.toContain(s);
    }
    expect(error(`leafnodes { remotes: [ { url: "nats://h", creds: "${credsFile}", nkey: "${userSeed}" } ] }`)).toMatch(/either credentials or an nkey seed/);
    expect(error('leafnodes { remotes: [ { url: "nats://h", password: p } ] }')).toMatch(/password: a password needs a user/);
  });

  it('checks deny subjects', () => {
    expect(error('leafnodes {\n  remotes: [ { url: "nats://h", deny_imports: ["ok", "bad..subj"] } ]\n}')).toMatch(/^F:2:\d+: deny_imports: invalid subject "bad\.\.subj"/);
    expect(error('leafnodes { remotes: [ { url: "nats://h", deny_exports: "a.>.b" } ] }')).toMatch(/deny_exports: invalid subject "a\.>\.b"/);
    expect(error('leafnodes { remotes: [ { url: "nats://h", deny_exports: [1] } ] }')).toMatch(/deny_exports: expected a subject/);
  });

  it('checks the remote tls block', () => {
    expect(error('leafnodes {\n  remotes: [ { url: "nats://h", tls { ca_file: "/no/ca.pem" } } ]\n}')).toMatch(/^F:2:\d+: ca_file: no such file "\/no\/ca\.pem"/);
    expect(error(`leafnodes { remotes: [ { url: "nats://h", tls { cert_file: "${caFile}" } } ] }`)).toMatch(/missing 'key_file'/);
    expect(error('leafnodes { remotes: [ { url: "nats://h", tls { insecure: 1 } } ] }')).toMatch(/insecure: expected true or false/);
  });
});

describe('buffer {} (nats-edge store-and-forward)', () => {
  it('reads sizes, durations and counts', () => {
    const b = parse(`leafnodes { remotes: [ { url: "nats://h"
      buffer { subjects: ["telemetry.>", "alarm.*"], max_bytes: 1GB, max_age: "24h", replay_rate: 500, max_msgs: 10000 }
    } ] }`).remotes[0]!.buffer;
    expect(b).toEqual({ subjects: ['telemetry.>', 'alarm.*'], maxBytes: 2 ** 30, maxAgeMs: 86_400_000, replayRate: 500, maxMsgs: 10000 });
    const sizes: Array<[string, number]> = [['"512MB"', 512 * 2 ** 20], ['"1G"', 2 ** 30], ['"2GiB"', 2 ** 31], ['"64k"', 65536], ['1000', 1000], ['"1000"', 1000], ['10MB', 10 * 2 ** 20]];
    for (const [text, bytes] of sizes) {
      expect(parse(`leafnodes { remotes: [ { url: "nats://h", buffer { subjects: "a", max_bytes: ${text} } } ] }`).remotes[0]!.buffer!.maxBytes).toBe(bytes);
    }
    expect(parse('leafnodes { remotes: [ { url: "nats://h", buffer { subjects: "a", max_age: 60 } } ] }').remotes[0]!.buffer!.maxAgeMs).toBe(60_000);
  });

  it('defaults max_bytes to a quarter of the store limit, else 256 MiB', () => {
    const text = 'leafnodes { remotes: [ { url: "nats://h", buffer { subjects: ["a.>"] } } ] }';
    expect(parse(text, withJs(4 * 2 ** 30)).remotes[0]!.buffer).toEqual({ subjects: ['a.>'], maxBytes: 2 ** 30, maxAgeMs: 0, replayRate: 0, maxMsgs: 0 });
    expect(parse(text, withJs(0)).remotes[0]!.buffer!.maxBytes).toBe(256 * 2 ** 20);
    const p = withJs(0);
    p.profile = { maxFileStore: 400 * 2 ** 20 } as NonNullable<ServerOptions['profile']>;
    expect(parse(text, p).remotes[0]!.buffer!.maxBytes).toBe(100 * 2 ** 20);
  });

  it('refuses bad buffer blocks', () => {
    const r = (b: string, s: ServerOptions = withJs()): string => error(`leafnodes {\n  remotes: [ { url: "nats://h"\n    buffer { ${b} }\n  } ]\n}`, s);
    expect(r('max_bytes: 1MB')).toMatch(/^F:3:\d+: buffer: subjects is required/);
    expect(r('subjects: []')).toMatch(/^F:3:\d+: buffer: subjects is required/);
    expect(r('subjects: ["a..b"]')).toMatch(/^F:3:\d+: subjects: invalid subject "a\.\.b"/);
    expect(r('subjects: ["a"], max_bytes: "lots"')).toMatch(/max_bytes: expected a size/);
    expect(r('subjects: ["a"], max_bytes: 0')).toMatch(/max_bytes: must be positive/);
    expect(r('subjects: ["a"], max_bytes: 2GB', withJs(2 ** 30))).toMatch(/exceeds the JetStream store limit/);
    expect(r('subjects: ["a"], max_msgs: -1')).toMatch(/max_msgs: must not be negative/);
    expect(r('subjects: ["a"], replay_rate: "fast"')).toMatch(/replay_rate: expected an integer/);
    expect(r('subjects: ["a"], max_age: "1x"')).toMatch(/max_age: time: /);
    expect(r('subjects: ["a"], color: red')).toMatch(/^F:3:\d+: unknown field "color" in leafnodes remote buffer block/);
    expect(r('subjects: ["a"]', defaultOptions())).toMatch(/^F:3:12: buffer: store-and-forward keeps its queue in the JetStream store, so it requires jetstream/);
    const off = withJs();
    off.jetstream!.enabled = false;
    expect(r('subjects: ["a"]', off)).toMatch(/requires jetstream/);
  });

  it('refuses buffered subjects that deny_exports forbids', () => {
    const text = 'leafnodes {\n  remotes: [ { url: "nats://h", deny_exports: ["local.>"]\n    buffer { subjects: ["ok.>", "local.x"] }\n  } ]\n}';
    expect(error(text)).toMatch(/^F:3:\d+: buffer: subject "local\.x" is covered by deny_exports "local\.>"/);
    // Overlap without containment is fine: part of it still goes to the hub.
    expect(parse('leafnodes { remotes: [ { url: "nats://h", deny_exports: ["local.x"], buffer { subjects: ["local.*"] } } ] }').remotes[0]!.buffer!.subjects).toEqual(['local.*']);
  });
});

describe('URL helpers', () => {
  it('redactUrl drops userinfo, urlCredentials decodes it', () => {
    const u = new URL('nats-leaf://u%40x:p%3Aw@hub:7422');
    expect(redactUrl(u)).toBe('nats-leaf://hub:7422');
    expect(u.href).toBe('nats-leaf://u%40x:p%3Aw@hub:7422');
    expect(urlCredentials(u)).toEqual({ user: 'u@x', pass: 'p:w' });
    expect(urlCredentials(new URL('nats://token@hub:1'))).toEqual({ user: 'token' });
    expect(urlCredentials(new URL('nats://hub:1'))).toEqual({});
    expect(redactUrl(new URL('tls://[::1]:7422'))).toBe('tls://[::1]:7422');
  });
});

describe('through loadOptions', () => {
  it('a whole config file loads and its leafnodes block parses', () => {
    const f = join(dir, 'whole.conf');
    writeFileSync(
      f,
      `server_name: edge1
jetstream { store_dir: "${join(dir, 'js')}", max_file_store: 8GB }
leafnodes {
  reconnect: 3
  remotes: [
    { url: "nats-leaf://leafu:leafp@127.0.0.1:7422", credentials: "${credsFile}", deny_imports: ["secret.>"],
      buffer { subjects: ["telemetry.>"], max_age: "1h" } }
  ]
}
`,
    );
    const { options } = loadOptions({ argv: ['-c', f], env: {} });
    const block = options.blocks.leafnodes;
    expect(block).toBeDefined();
    const o = parseLeafConfig(block!, options);
    expect(o).not.toBeNull();
    expect(o!.reconnectMs).toBe(3000);
    const r = o!.remotes[0]!;
    expect(redactUrl(r.urls[0]!)).toBe('nats-leaf://127.0.0.1:7422');
    expect(urlCredentials(r.urls[0]!)).toEqual({ user: 'leafu', pass: 'leafp' });
    expect(r.credentials).toBe(credsFile);
    expect(r.where).toBe(`${f}:6`);
    expect(r.buffer).toEqual({ subjects: ['telemetry.>'], maxBytes: 2 * 2 ** 30, maxAgeMs: 3_600_000, replayRate: 0, maxMsgs: 0 });
  });

  it('errors keep the position of the file loaded', () => {
    const f = join(dir, 'bad.conf');
    writeFileSync(f, 'leafnodes {\n  port: 7422\n}\n');
    const { options } = loadOptions({ argv: ['-c', f], env: {} });
    expect(() => parseLeafConfig(options.blocks.leafnodes!, options)).toThrow(`${f}:2:3: nats-edge accepts no leafnode connections; it is always the leaf: remove port`);
  });
});
