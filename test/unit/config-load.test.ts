import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { defaultMemoryBudget, loadOptions, parseDuration, usage, type LoadResult } from '../../src/config/load.js';
import { loadProfile } from '../../src/config/profiles.js';

const dir = mkdtempSync(join(tmpdir(), 'nats-edge-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function conf(text: string, ext = '.conf'): string {
  const f = join(dir, `c${n++}${ext}`);
  writeFileSync(f, text);
  return f;
}

function load(text: string, argv: string[] = [], env: NodeJS.ProcessEnv = {}): LoadResult {
  return loadOptions({ argv: ['-c', conf(text), ...argv], env });
}

function loadError(text: string, argv: string[] = [], env: NodeJS.ProcessEnv = {}): string {
  const f = conf(text);
  try {
    loadOptions({ argv: ['-c', f, ...argv], env });
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message.split(f).join('F');
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  it('are nats-server defaults without a config file', () => {
    const { options, action, warnings } = loadOptions({ argv: [] });
    expect(action).toBe('run');
    expect(warnings).toEqual([]);
    expect(options).toMatchObject({
      host: '0.0.0.0',
      port: 4222,
      serverName: '',
      maxPayload: 1048576,
      maxControlLine: 4096,
      maxPending: 64 * 1024 * 1024,
      maxConnections: 65536,
      maxSubscriptions: 0,
      maxSubTokens: 0,
      pingIntervalMs: 120000,
      pingMax: 2,
      writeDeadlineMs: 10000,
      lameDuckDurationMs: 120000,
      lameDuckGracePeriodMs: 10000,
      maxClosedClients: 10000,
      noHeaderSupport: false,
      allowNonTls: false,
      httpBasePath: '/',
      logging: { debug: false, trace: false, logtime: true, logtimeUtc: false },
      blocks: {},
    });
    expect(options.httpPort).toBeUndefined();
    expect(options.authorization).toBeUndefined();
    expect(options.jetstream).toBeUndefined();
    expect(options.profile).toBeUndefined();
    expect(options.memoryBudget).toBe(Math.min(512 * 1024 * 1024, Math.floor(totalmem() / 4)));
  });

  it('memory budget is min(512 MiB, 25 % of RAM)', () => {
    expect(defaultMemoryBudget(1024 * 1024 * 1024)).toBe(256 * 1024 * 1024);
    expect(defaultMemoryBudget(16 * 1024 * 1024 * 1024)).toBe(512 * 1024 * 1024);
  });
});

describe('durations', () => {
  it('parses Go duration strings to ms', () => {
    expect(parseDuration('1h30m')).toBe(5400000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('2m')).toBe(120000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('-2s')).toBe(-2000);
    expect(parseDuration('0')).toBe(0);
    expect(parseDuration('1h1m1s1ms')).toBe(3661001);
    expect(parseDuration('10us')).toBeCloseTo(0.01);
    expect(parseDuration('10\u00b5s')).toBeCloseTo(0.01);
    expect(parseDuration('100ns')).toBeCloseTo(0.0001);
  });

  it('refuses what Go refuses', () => {
    expect(() => parseDuration('10')).toThrow('time: missing unit in duration "10"');
    expect(() => parseDuration('1d')).toThrow('time: unknown unit "d" in duration "1d"');
    expect(() => parseDuration('x')).toThrow('time: invalid duration "x"');
    expect(() => parseDuration('')).toThrow('time: invalid duration ""');
  });

  it('reads ping_interval and write_deadline as durations, int seconds with a warning', () => {
    const r = load('ping_interval: "30s"\nwrite_deadline: 500ms\n');
    expect(r.options.pingIntervalMs).toBe(30000);
    expect(r.options.writeDeadlineMs).toBe(500);
    const w = load('ping_interval: 120\nwrite_deadline: 5\n');
    expect(w.options.pingIntervalMs).toBe(120000);
    expect(w.options.writeDeadlineMs).toBe(5000);
    expect(w.warnings.map((x) => x.replace(/^.*?c\d+\.conf/, 'F'))).toEqual([
      'F:1: ping_interval should be converted to a duration',
      'F:2: write_deadline should be converted to a duration',
    ]);
  });

  it('refuses an unquoted 2m (the number 2,000,000) as a duration', () => {
    expect(loadError('ping_interval: 2m\n')).toBe('F:1:16: "ping_interval": unquoted 2m is the number 2000000, not a duration; write "2m" in quotes');
  });

  it('enforces the lame duck minimum and duration strings', () => {
    expect(loadError('lame_duck_duration: "5s"\n')).toBe('F:1:21: invalid lame_duck_duration of 5s, minimum is 30 seconds');
    expect(loadError('lame_duck_duration: 45\n')).toMatch(/^F:1:21: "lame_duck_duration" expects a duration string/);
    expect(loadError('lame_duck_grace_period: "-5s"\n')).toMatch(/^F:1:25: invalid lame_duck_grace_period, needs to be positive/);
    const r = load('lame_duck_duration: "45s"\nlame_duck_grace_period: "3s"\n');
    expect(r.options.lameDuckDurationMs).toBe(45000);
    expect(r.options.lameDuckGracePeriodMs).toBe(3000);
  });

  it('reports a bad duration string with Go words', () => {
    expect(loadError('ping_interval: "10"\n')).toBe('F:1:16: error parsing ping_interval: time: missing unit in duration "10"');
  });
});

describe('server keys', () => {
  it('maps listen, http and the limits', () => {
    const r = load(
      [
        'listen: "127.0.0.1:14228"',
        'http: "127.0.0.2:18228"',
        'server_name: edge-1',
        'max_payload: 2MB',
        'max_control_line: 2KB',
        'max_pending: 32MB',
        'max_conn: 100',
        'max_subs: 50',
        'max_sub_tokens: 16',
        'ping_max: 3',
        'no_header_support: true',
        'max_closed_clients: 5',
        'pidfile: /tmp/x.pid',
        'ports_file_dir: /tmp',
        'server_tags: [a, "b:c"]',
        'allow_non_tls: true',
        'http_base_path: /mon',
        'debug: true, trace: on, logtime: no, logtime_utc: yes',
        'log_file: /tmp/x.log',
      ].join('\n'),
    );
    expect(r.warnings).toEqual([]);
    expect(r.options).toMatchObject({
      host: '127.0.0.1',
      port: 14228,
      httpHost: '127.0.0.2',
      httpPort: 18228,
      serverName: 'edge-1',
      maxPayload: 2097152,
      maxControlLine: 2048,
      maxPending: 32 * 1024 * 1024,
      maxConnections: 100,
      maxSubscriptions: 50,
      maxSubTokens: 16,
      pingMax: 3,
      noHeaderSupport: true,
      maxClosedClients: 5,
      pidFile: '/tmp/x.pid',
      portsFileDir: '/tmp',
      serverTags: ['a', 'b:c'],
      allowNonTls: true,
      httpBasePath: '/mon',
      logging: { debug: true, trace: true, logtime: false, logtimeUtc: true, logFile: '/tmp/x.log' },
    });
  });

  it('takes the aliases host/net, port, http_port/monitor_port, max_connections, max_subscriptions, pid_file, logfile', () => {
    const r = load('net: 10.0.0.1\nport: 4333\nmonitor_port: 8333\nmax_connections: 7\nmax_subscriptions: 9\npid_file: p\nlogfile: l\n');
    expect(r.options).toMatchObject({ host: '10.0.0.1', port: 4333, httpHost: '10.0.0.1', httpPort: 8333, maxConnections: 7, maxSubscriptions: 9, pidFile: 'p' });
    expect(r.options.logging.logFile).toBe('l');
    expect(load('host: h\nhttp_port: 1\n').options).toMatchObject({ host: 'h', httpHost: 'h', httpPort: 1 });
  });

  it('reads listen as a port alone, an IPv6 address, an empty host', () => {
    expect(load('listen: 4333\n').options).toMatchObject({ host: '0.0.0.0', port: 4333 });
    expect(load('listen: "[::1]:4333"\n').options).toMatchObject({ host: '::1', port: 4333 });
    expect(load('listen: ":4333"\n').options).toMatchObject({ host: '0.0.0.0', port: 4333 });
    expect(load('http: 8333\n').options).toMatchObject({ httpHost: '0.0.0.0', httpPort: 8333 });
  });

  it('maps random ports (-1, 0) to 0', () => {
    expect(load('port: -1\nhttp_port: -1\n').options).toMatchObject({ port: 0, httpPort: 0 });
    expect(load('listen: "127.0.0.1:-1"\n').options).toMatchObject({ host: '127.0.0.1', port: 0 });
  });

  it('refuses bad addresses and ports', () => {
    expect(loadError('listen: 127.0.0.1\n')).toBe('F:1:9: could not parse address string "127.0.0.1"');
    expect(loadError('listen: "127.0.0.1:x"\n')).toBe('F:1:9: could not parse port "x"');
    expect(loadError('port: 70000\n')).toMatch(/^F:1:7: port value is too big/);
  });

  it('makes type errors fatal with the position', () => {
    expect(loadError('max_payload: "1MB"\n')).toBe('F:1:14: "max_payload" expects an integer, got string "1MB" (a quoted size is a string: remove the quotes)');
    expect(loadError('port: 1.5\n')).toBe('F:1:7: "port" expects an integer, got float 1.5');
    expect(loadError('server_name: 12\n')).toBe('F:1:14: "server_name" expects a string, got integer 12');
    expect(loadError('debug: "yes"\n')).toMatch(/^F:1:8: "debug" expects a boolean/);
    expect(loadError('max_connections: -5\n')).toMatch(/^F:1:18: "max_connections" must be zero or more/);
  });

  it('checks max_payload against max_pending and the size limits', () => {
    expect(loadError('max_payload: 2MB\nmax_pending: 1MB\n')).toBe('F:1:14: max_payload (2097152) cannot be higher than max_pending (1048576)');
    expect(loadError('max_payload: 1T\n')).toBe('F:1:14: max_payload value is too big');
    expect(loadError('max_sub_tokens: 300\n')).toBe('F:1:17: max_sub_tokens value is too big');
    const big = load('max_payload: 9MB\n');
    expect(big.warnings[0]).toMatch(/c\d+\.conf:1: Maximum payloads over 8\.00 MB are generally discouraged/);
  });

  it('treats 0 as "use the default" where nats-server does', () => {
    expect(load('max_payload: 0\nmax_pending: 0\nmax_connections: 0\nping_max: 0\nmax_closed_clients: 0\n').options).toMatchObject({
      maxPayload: 1048576,
      maxPending: 64 * 1024 * 1024,
      maxConnections: 65536,
      pingMax: 2,
      maxClosedClients: 10000,
    });
  });

  it('matches keys case-insensitively', () => {
    expect(load('PORT: 4333\nMax_Payload: 5\nAUTHORIZATION { USER: a, PASSWORD: b }\n').options).toMatchObject({
      port: 4333,
      maxPayload: 5,
      authorization: { user: 'a', password: 'b' },
    });
  });

  it('reads variables from the config and the environment', () => {
    const r = load('PAYLOAD = 2MB\nmax_payload: $PAYLOAD\nauthorization { user: admin, password: $ADMINPASS }\n', [], { ADMINPASS: 'pw1' });
    expect(r.options.maxPayload).toBe(2097152);
    expect(r.options.authorization).toMatchObject({ user: 'admin', password: 'pw1' });
    expect(r.warnings).toEqual([]);
  });
});

describe('unknown and unsupported keys', () => {
  it('fails on a key nats-server does not know, with file:line:col', () => {
    expect(loadError('port: 4222\n  bogus_key: 1\n')).toBe('F:2:3: unknown field "bogus_key"');
  });

  it('reports every problem, not only the first', () => {
    expect(loadError('a: 1\nport: x\nb: 2\n').split('\n')).toEqual(['F:1:1: unknown field "a"', 'F:2:7: "port" expects an integer, got string "x"', 'F:3:1: unknown field "b"']);
  });

  it('does not count a key used as a variable as unknown, but an unused one', () => {
    expect(load('X = 5\nmax_payload: $X\n').warnings).toEqual([]);
    expect(loadError('X = 5\n')).toBe('F:1:1: unknown field "X"');
  });

  it('warns about nats-server keys nats-edge does not implement', () => {
    const r = load('port: 1\ncluster {\n  port: 6222\n}\ngateway { name: x }\ntrace_verbose: true\nsyslog: true\n');
    expect(r.warnings.map((w) => w.replace(/^.*?c\d+\.conf/, 'F'))).toEqual([
      'F:2: config key "cluster" is not supported by nats-edge and is ignored',
      'F:5: config key "gateway" is not supported by nats-edge and is ignored',
      'F:6: config key "trace_verbose" is not supported by nats-edge and is ignored',
      'F:7: config key "syslog" is not supported by nats-edge and is ignored',
    ]);
  });

  it('says loudly that ignored accounts/operator leave authentication off', () => {
    const r = load('accounts { A { users: [{user: a, password: b}] } }\n');
    expect(r.warnings[0]).toMatch(/config key "accounts" is not supported by nats-edge and is ignored: the authentication it configures is NOT enforced/);
  });

  it('fails on unknown keys inside authorization, users, permissions, tls and jetstream', () => {
    expect(loadError('authorization { user: a, password: b, bogus: 1 }\n')).toBe('F:1:39: unknown field "bogus"');
    expect(loadError('authorization { users: [ {user: a, password: b, X: 1} ] }\n')).toBe('F:1:49: unknown field "X"');
    expect(loadError('authorization { users: [ {user: a, permissions: {publish: x, bogus: 1}} ] }\n')).toBe('F:1:62: Unknown field "bogus" parsing permissions');
    expect(loadError('jetstream { bogus: 1 }\n')).toBe('F:1:13: unknown field "bogus" in jetstream');
    writeFileSync(join(dir, 'cert.pem'), 'x');
    writeFileSync(join(dir, 'key.pem'), 'x');
    expect(loadError(`tls { cert_file: "${join(dir, 'cert.pem')}", key_file: "${join(dir, 'key.pem')}", bogus: 1 }\n`)).toMatch(/^F:1:\d+: unknown field "bogus" in tls$/);
  });

  it('keeps mqtt, leafnodes/leaf and websocket/ws blocks raw with where they are', () => {
    const r = load('port: 1\nmqtt {\n  port: 1883\n  ack_wait: "30s"\n}\nleaf { remotes: [ { url: "nats://h:7422" } ] }\nws { port: 8080, no_tls: true }\n');
    expect(r.options.blocks.mqtt).toMatchObject({ value: { port: 1883, ack_wait: '30s' }, where: `${r.options.configFile!}:2` });
    expect(r.options.blocks.leafnodes).toMatchObject({ value: { remotes: [{ url: 'nats://h:7422' }] } });
    expect(r.options.blocks.leafnodes!.where).toMatch(/:6$/);
    expect(r.options.blocks.websocket).toMatchObject({ value: { port: 8080, no_tls: true } });
    expect(r.options.blocks.mqtt!.node).toMatchObject({ kind: 'map' });
    expect(loadError('mqtt: 1883\n')).toMatch(/^F:1:7: "mqtt" expects a map/);
  });
});

describe('authorization', () => {
  it('reads token, user/password and the timeout in seconds', () => {
    expect(load('authorization { token: s3cr3t, timeout: 1.5 }\n').options.authorization).toEqual({ token: 's3cr3t', timeoutMs: 1500 });
    expect(load('authorization { username: a, pass: b, timeout: 3 }\n').options.authorization).toEqual({ user: 'a', password: 'b', timeoutMs: 3000 });
    expect(load('authorization { user: a, password: b, timeout: "750ms" }\n').options.authorization!.timeoutMs).toBe(750);
    expect(load('authorization { user: a, password: b }\n').options.authorization!.timeoutMs).toBe(2000);
  });

  it('keeps bcrypt hashes as given', () => {
    const r = load('authorization { user: a, password: $2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG }\n');
    expect(r.options.authorization!.password).toBe('$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG');
    const q = load('authorization { user: a, password: "$2b$10$abc" }\n');
    expect(q.options.authorization!.password).toBe('$2b$10$abc');
  });

  it('reads users with every permission form', () => {
    const r = load(`
authorization {
  default_permissions { publish: "pub.>" }
  users: [
    { user: alice, password: a }
    { user: bob, password: b, permissions: {
        publish:   { allow: ["req.>", "foo"], deny: ["foo.secret"] }
        subscribe: { allow: ["_INBOX.>", "bar.*", "grp.x q1"], deny: "bar.secret" }
        allow_responses: true
    } }
    { user: carol, password: c, permissions: { pub: "a.b", sub: ["c", "d"], publish_allow_responses: { max_msgs: 3, ttl: "5s" } } }
    { user: dave, password: d, permission: { import: x, export: y, allow_responses: { max: 2 } }, allowed_connection_types: ["standard", "MQTT"] }
    { user: erin, password: e, authorization: { allow_responses: false }, clients: websocket }
  ]
}
`);
    const a = r.options.authorization!;
    expect(a.defaultPermissions).toEqual({ publish: { allow: ['pub.>'], deny: [] } });
    expect(a.users).toEqual([
      { user: 'alice', password: 'a' },
      {
        user: 'bob',
        password: 'b',
        permissions: {
          publish: { allow: ['req.>', 'foo'], deny: ['foo.secret'] },
          subscribe: { allow: ['_INBOX.>', 'bar.*', 'grp.x q1'], deny: ['bar.secret'] },
          allowResponses: { max: 1, expiresMs: 120000 },
        },
      },
      {
        user: 'carol',
        password: 'c',
        permissions: { publish: { allow: ['a.b'], deny: [] }, subscribe: { allow: ['c', 'd'], deny: [] }, allowResponses: { max: 3, expiresMs: 5000 } },
      },
      {
        user: 'dave',
        password: 'd',
        permissions: { publish: { allow: ['x'], deny: [] }, subscribe: { allow: ['y'], deny: [] }, allowResponses: { max: 2, expiresMs: 120000 } },
        allowedConnectionTypes: ['STANDARD', 'MQTT'],
      },
      { user: 'erin', password: 'e', permissions: {}, allowedConnectionTypes: ['WEBSOCKET'] },
    ]);
  });

  it('reads the authorization-level permissions alias', () => {
    expect(load('authorization { users: [{user: a, password: b}], permissions: { subscribe: "x" } }\n').options.authorization!.defaultPermissions).toEqual({
      subscribe: { allow: ['x'], deny: [] },
    });
  });

  it('applies the mutual-exclusion rules with nats-server words', () => {
    expect(loadError('authorization { token: t, user: a, password: b }\n')).toBe('F:1:1: Cannot have a user/pass and token');
    expect(loadError('authorization { user: a, password: b, users: [{user: c, password: d}] }\n')).toBe('F:1:1: Can not have a single user/pass and a users array');
    expect(loadError('authorization { token: t, users: [{user: c, password: d}] }\n')).toBe('F:1:1: Can not have a token and a users array');
    expect(loadError('authorization { users: [{user: c, password: d}, {user: c, password: e}] }\n')).toBe('F:1:49: Duplicate user "c" detected');
  });

  it('refuses malformed users and permissions', () => {
    expect(loadError('authorization { users: [{password: d}] }\n')).toBe('F:1:25: User entry requires a user');
    expect(loadError('authorization { users: [ x ] }\n')).toBe('F:1:26: Expected user entry to be a map/struct, got x');
    expect(loadError('authorization { users: [{user: c, permissions: { publish: 1 }}] }\n')).toBe(
      'F:1:59: Expected subject permissions to be a subject, or array of subjects, got integer',
    );
    expect(loadError('authorization { users: [{user: c, permissions: { publish: { allow: x, bogus: 1 } }}] }\n')).toBe(
      `F:1:71: Unknown field name "bogus" parsing subject permissions, only 'allow' or 'deny' are permitted`,
    );
    expect(loadError('authorization { users: [{user: c, permissions: { allow_responses: { max: 3, bogus: 1 } }}] }\n')).toBe(
      'F:1:77: Unknown field "bogus" parsing allow_responses',
    );
    expect(loadError('authorization { users: [{user: c, permissions: { allow_responses: { expires: 5 } }}] }\n')).toBe(
      'F:1:78: error parsing expires, not a duration string',
    );
    expect(loadError('authorization { users: [{user: c, allowed_connection_types: [FOO] }] }\n')).toBe('F:1:61: invalid connection types ["FOO"]');
    expect(loadError('authorization { users: [{user: c, permissions: { publish: ["a..b"] }}] }\n')).toBe('F:1:59: subject "a..b" is not a valid subject');
    expect(loadError('authorization { users: [{nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4}] }\n')).toMatch(/nkey users are not supported/);
  });

  it('checks no_auth_user against the users', () => {
    expect(load('no_auth_user: a\nauthorization { users: [{user: a, password: b}] }\n').options.noAuthUser).toBe('a');
    expect(loadError('no_auth_user: x\n')).toBe('F:1:15: no_auth_user: "x" present, but users are not defined');
    expect(loadError('no_auth_user: x\nauthorization { users: [{user: y, password: y}] }\n')).toBe(
      'F:1:15: no_auth_user: "x" not present as user in authorization block',
    );
  });
});

describe('tls', () => {
  const cert = join(dir, 'tls-cert.pem');
  const key = join(dir, 'tls-key.pem');
  writeFileSync(cert, 'cert');
  writeFileSync(key, 'key');

  it('reads the block', () => {
    const r = load(`tls {\n  cert_file: "${cert}"\n  key_file: "${key}"\n  ca_file: "${cert}"\n  verify: true\n  timeout: 0.5\n  handshake_first: true\n}\n`);
    expect(r.options.tls).toEqual({ certFile: cert, keyFile: key, caFile: cert, verify: true, timeoutMs: 500, handshakeFirst: true });
    const d = load(`tls { cert_file: "${cert}", key_file: "${key}" }\n`);
    expect(d.options.tls).toEqual({ certFile: cert, keyFile: key, verify: false, timeoutMs: 2000, handshakeFirst: false });
    expect(load(`tls { cert_file: "${cert}", key_file: "${key}", first: "auto" }\n`).options.tls!.handshakeFirst).toBe(true);
  });

  it('needs both files, and they must exist', () => {
    expect(loadError(`tls { cert_file: "${cert}" }\n`)).toBe("F:1:5: missing 'key_file' in TLS configuration");
    expect(loadError(`tls { key_file: "${key}" }\n`)).toBe("F:1:5: missing 'cert_file' in TLS configuration");
    expect(loadError(`tls { cert_file: /nope.pem, key_file: "${key}" }\n`)).toBe('F:1:18: cert_file "/nope.pem": no such file');
  });

  it('warns about tuning keys it ignores and refuses security features it lacks', () => {
    expect(load(`tls { cert_file: "${cert}", key_file: "${key}", cipher_suites: [x] }\n`).warnings[0]).toMatch(/config key "cipher_suites" in tls is not supported/);
    expect(loadError(`tls { cert_file: "${cert}", key_file: "${key}", pinned_certs: [x] }\n`)).toMatch(/tls option "pinned_certs" is not supported/);
  });
});

describe('jetstream', () => {
  it('reads the flag forms', () => {
    expect(load('jetstream: enabled\n').options.jetstream!.enabled).toBe(true);
    expect(load('jetstream: true\n').options.jetstream!.enabled).toBe(true);
    expect(load('jetstream: false\n').options.jetstream!.enabled).toBe(false);
    expect(load('jetstream: "disabled"\n').options.jetstream!.enabled).toBe(false);
    expect(loadError('jetstream: foo\n')).toBe("F:1:12: Expected 'enabled' or 'disabled' for string value, got 'foo'");
    expect(loadError('jetstream: 1\n')).toBe('F:1:12: Expected map, bool or string to define JetStream, got integer');
  });

  it('reads the block with its aliases', () => {
    const js = load('jetstream {\n  store: "/data/js"\n  max_mem: 1G\n  max_file: 10GB\n  domain: edge\n  sync_interval: "2s"\n}\n').options.jetstream!;
    expect(js).toEqual({ enabled: true, storeDir: '/data/js', maxMemoryStore: 1e9, maxFileStore: 10 * 1024 ** 3, domain: 'edge', syncInterval: 2000 });
    const js2 = load('jetstream { storedir: d, max_memory_store: 1MB, max_file_store: "2G", sync_interval: always, enabled: false }\n').options.jetstream!;
    expect(js2).toMatchObject({ enabled: false, storeDir: 'd', maxMemoryStore: 1048576, maxFileStore: 2 * 1024 ** 3, syncInterval: 'always' });
  });

  it('takes a top-level store_dir', () => {
    expect(load('store_dir: /x\njetstream: enabled\n').options.jetstream).toMatchObject({ enabled: true, storeDir: '/x' });
    expect(load('store_dir: /x\n').options.jetstream).toBeUndefined();
  });

  it('refuses encryption at rest rather than storing plain text', () => {
    expect(loadError('jetstream { key: s3cret }\n')).toMatch(/encryption at rest\) is not supported/);
  });
});

describe('files', () => {
  it('loads a .json config', () => {
    const f = conf(JSON.stringify({ port: 4333, server_name: 'j', authorization: { users: [{ user: 'a', password: 'b' }] }, jetstream: { store_dir: '/d' } }), '.json');
    const r = loadOptions({ argv: ['-c', f] });
    expect(r.options).toMatchObject({ port: 4333, serverName: 'j', authorization: { users: [{ user: 'a', password: 'b' }] }, jetstream: { enabled: true, storeDir: '/d' } });
    expect(r.options.configFile).toBe(f);
  });

  it('reports a missing config file', () => {
    expect(() => loadOptions({ argv: ['-c', join(dir, 'nope.conf')] })).toThrow(/nope\.conf: no such file or directory/);
  });

  it('loads the shipped nats-edge.conf', () => {
    const r = loadOptions({ argv: ['-c', join(import.meta.dirname, '..', '..', 'nats-edge.conf')] });
    expect(r.options).toMatchObject({
      serverName: 'edge',
      host: '0.0.0.0',
      port: 4222,
      httpPort: 8222,
      jetstream: { enabled: true, storeDir: './data' },
      blocks: { mqtt: { value: { port: 1883 } } },
    });
    expect(r.options.authorization).toBeUndefined();
  });
});

describe('command line over the file', () => {
  it('lets flags win, other file settings stay', () => {
    const r = load('port: 1111\nhost: 10.0.0.1\nserver_name: file\nmax_payload: 2KB\ndebug: false\nlogtime: true\n', [
      '-p',
      '4333',
      '--name=cli',
      '-DV',
      '-T=false',
      '-m',
      '-1',
    ]);
    expect(r.options).toMatchObject({ port: 4333, host: '10.0.0.1', serverName: 'cli', maxPayload: 2048, httpPort: 0, httpHost: '10.0.0.1' });
    expect(r.options.logging).toMatchObject({ debug: true, trace: true, logtime: false });
  });

  it('applies every mapped flag', () => {
    const r = loadOptions({
      argv: ['-a', '127.0.0.1', '--port=-1', '-P', '/tmp/p', '--ports_file_dir', '/tmp', '-l', 'log.txt', '--logtime_utc', '-js', '-sd', '/js', '--user', 'u', '--pass', 'p'],
    });
    expect(r.options).toMatchObject({ host: '127.0.0.1', port: 0, pidFile: '/tmp/p', portsFileDir: '/tmp', authorization: { user: 'u', password: 'p', timeoutMs: 2000 } });
    expect(r.options.logging).toMatchObject({ logFile: 'log.txt', logtimeUtc: true });
    expect(r.options.jetstream).toMatchObject({ enabled: true, storeDir: '/js' });
    expect(loadOptions({ argv: ['--auth', 't0k'] }).options.authorization).toEqual({ token: 't0k', timeoutMs: 2000 });
  });

  it('checks auth conflicts after the flags are merged', () => {
    expect(() => load('authorization { users: [{user: a, password: b}] }\n', ['--user', 'x', '--pass', 'y'])).toThrow(/Can not have a single user\/pass and a users array/);
  });

  it('builds TLS from --tls/--tlsverify and needs the files', () => {
    const cert = join(dir, 'cli-cert.pem');
    const key = join(dir, 'cli-key.pem');
    writeFileSync(cert, 'c');
    writeFileSync(key, 'k');
    expect(loadOptions({ argv: ['--tlsverify', '--tlscert', cert, '--tlskey', key, '--tlscacert', cert] }).options.tls).toEqual({
      certFile: cert,
      keyFile: key,
      caFile: cert,
      verify: true,
      timeoutMs: 2000,
      handshakeFirst: false,
    });
    expect(() => loadOptions({ argv: ['--tls', '--tlskey', key] })).toThrow('TLS Server certificate must be present and valid');
    expect(() => loadOptions({ argv: ['--tls', '--tlscert', cert] })).toThrow('TLS Server private key must be present and valid');
    expect(loadOptions({ argv: ['--tlscert', cert] }).warnings).toEqual(['--tlscert/--tlskey/--tlscacert have no effect without --tls or --tlsverify']);
  });

  it('returns the actions without reading the config', () => {
    expect(loadOptions({ argv: ['-v', '-c', '/nope'] }).action).toBe('version');
    expect(loadOptions({ argv: ['--help'] }).action).toBe('help');
    expect(loadOptions({ argv: ['--signal', 'reload=123'] }).action).toEqual({ signal: 'reload', pid: '123' });
    expect(load('port: 1\n', ['-t']).action).toBe('test-config');
    expect(() => load('bogus: 1\n', ['-t'])).toThrow(/unknown field "bogus"/);
  });

  it('re-exports the usage text', () => {
    expect(usage()).toMatch(/^Usage: nats-edge \[options\]/);
  });
});

describe('firmware profile order: defaults < profile < file < flags', () => {
  const p = loadProfile('rpi-zero-2w');

  it('applies a profile given with --profile', () => {
    const r = loadOptions({ argv: ['--profile', 'rpi-zero-2w', '-js'] });
    expect(r.options.profile).toEqual(p);
    expect(r.options).toMatchObject({ maxConnections: p.maxConnections, maxPending: p.maxPending, maxPayload: p.maxPayload, memoryBudget: p.memoryBudget });
    expect(r.options.jetstream).toMatchObject({ maxFileStore: p.maxFileStore, syncInterval: p.syncInterval });
  });

  it('applies a profile named in the config, the file keys win over it', () => {
    const r = load('profile: rpi-zero-2w\nmax_connections: 7\njetstream { max_file_store: 1GB, sync_interval: always }\n');
    expect(r.options.profile!.name).toBe('rpi-zero-2w');
    expect(r.options).toMatchObject({ maxConnections: 7, maxPending: p.maxPending, maxPayload: p.maxPayload, memoryBudget: p.memoryBudget });
    expect(r.options.jetstream).toMatchObject({ maxFileStore: 1024 ** 3, syncInterval: 'always' });
  });

  it('lets --profile beat the profile key in the file', () => {
    expect(load('profile: rpi-zero-2w\n', ['--profile', 'rpi-4']).options.profile!.name).toBe('rpi-4');
  });

  it('checks max_payload against the profile max_pending', () => {
    expect(loadError('profile: generic-arm64-256mb\nmax_payload: 2MB\n')).toBe('F:2:14: max_payload (2097152) cannot be higher than max_pending (1048576)');
  });

  it('reports an unknown profile with the known names', () => {
    expect(loadError('profile: rpi-9\n')).toBe(
      'F:1:10: unknown firmware profile "rpi-9", known profiles: generic-arm64-256mb, rpi-3b, rpi-4, rpi-5, rpi-zero-2w',
    );
    expect(() => loadOptions({ argv: ['--profile', 'x'] })).toThrow(/unknown firmware profile "x"/);
  });
});
