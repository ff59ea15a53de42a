/**
 * Cross-checks the config loader against the real nats-server (Debian's 2.9.10):
 * `nats-server -t -c file` must accept exactly the files we accept without warnings, and a
 * running nats-server must read the same values (/varz) as our loader.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { loadOptions } from '../../src/config/load.js';

const hasNatsServer = spawnSync('nats-server', ['--version']).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'nats-edge-xcheck-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ENV = { ADMINPASS: 'pw1', NUM: '2KB' };
let n = 0;

function write(text: string, ext = '.conf'): string {
  const f = join(dir, `x${n++}${ext}`);
  writeFileSync(f, text);
  return f;
}

function natsValid(file: string): { ok: boolean; out: string } {
  const r = spawnSync('nats-server', ['-t', '-c', file], { env: { ...process.env, ...ENV }, encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
}

/** Valid in `-t` terms: loads, and no warnings (nats-server -t fails on its warnings too). */
function oursValid(file: string): { ok: boolean; out: string } {
  try {
    const r = loadOptions({ argv: ['-c', file], env: ENV });
    return { ok: r.warnings.length === 0, out: r.warnings.join('\n') };
  } catch (e) {
    if (e instanceof ConfigError) return { ok: false, out: e.message };
    throw e;
  }
}

writeFileSync(join(dir, 'inc.conf'), 'max_control_line: 2KB\n');
writeFileSync(join(dir, 'users.conf'), 'users: [ { user: a, password: b } ]\n');

const bothValid: [string, string][] = [
  [
    'spec example',
    '# comment\n// also a comment\nPAYLOAD = 2MB\nlisten: "127.0.0.1:14228"\nhttp = 18228\nserver_name edge-syn\nmax_payload: $PAYLOAD\nmax_pending: 64MB; max_control_line: 2KB\nping_interval: "30s"\nping_max = 3\nauthorization {\n  user: admin\n  password: $ADMINPASS\n  timeout: 1.5\n}\ninclude ./inc.conf\nlame_duck_duration: "45s"\ndebug: false, trace: off, logtime: yes\n',
  ],
  ['wrapped in braces', '{\n  port: 4222\n  server_name: x\n}\n'],
  ['wrapped on one line', '{port: 4222}'],
  ['whitespace separator and comments', 'port 4222 # c\n// x\nmax_payload 1K\n'],
  ['env variable parsed as a size', 'max_control_line: $NUM\n'],
  ['variable used only as a variable', 'X = 5\nmax_payload: $X\n'],
  ['bcrypt $2a$ unquoted', 'authorization { user: a, password: $2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG }\n'],
  ['quoted $ is literal', 'server_name: "$HOME"\n'],
  ['escapes', 'server_name: "a\\x41\\tb"\n'],
  ['include inside a block', 'authorization {\n  include users.conf\n  timeout: 2\n}\n'],
  ['listen v6 and http host:port', 'listen: "[::1]:4222"\nhttp: "127.0.0.1:8222"\n'],
  ['lame duck', 'lame_duck_duration: "45s"\nlame_duck_grace_period: "5s"\n'],
  ['token', 'authorization { token: s3cr3t, timeout: 3 }\n'],
  ['no_auth_user', 'no_auth_user: a\nauthorization { users: [ {user: a, password: b} ] }\n'],
  ['tags and limits', 'server_tags: [a, "b:c"]\nmax_connections: 10\nmax_subs: 5\nmax_sub_tokens: 16\nno_header_support: true\n'],
  ['jetstream flag', 'jetstream: disabled\n'],
  ['jetstream block', `jetstream {\n  store_dir: "${join(dir, 'js')}"\n  max_mem: 1G\n  max_file: 10GB\n  domain: edge\n}\n`],
  ['mqtt with its needs', `server_name: e\njetstream { store_dir: "${join(dir, 'js2')}" }\nmqtt { port: 1883 }\n`],
  [
    'permissions of spec 2.3',
    `authorization {
  timeout: 2
  permissions { publish: "x.>" }
  users: [
    { user: alice, password: "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG" }
    { user: bob, password: pw2, permissions: {
        publish:   { allow: ["req.>", "foo"], deny: ["foo.secret"] }
        subscribe: { allow: ["_INBOX.>", "bar.*", "grp.x q1"], deny: "bar.secret" }
        allow_responses: true
    } }
    { user: carol, password: pw3, permissions: { pub: a, sub: [b, c], allow_responses: { max: 2, expires: "1m" } }, allowed_connection_types: ["STANDARD", "MQTT"] }
  ]
}
`,
  ],
  ['block string', 'http_base_path: (\n/x\n)\n'],
];

const bothInvalid: [string, string][] = [
  ['unknown field', 'port: 4222\nbogus_key: 1\n'],
  ['unused variable', 'X = 5\n'],
  ['unknown variable', 'port: 1\nmax_payload: $NOPE\n'],
  ['two unquoted words', 'server_name: foo bar\n'],
  ['unterminated map', 'max_payload: {\n'],
  ['int seconds (warning)', 'ping_interval: 120\n'],
  ['unquoted 2m duration', 'ping_interval: 2m\n'],
  ['lame duck too short', 'lame_duck_duration: "5s"\n'],
  ['lame duck as int', 'lame_duck_duration: 45\n'],
  ['quoted size', 'max_payload: "1MB"\n'],
  ['float with letters', 'max_payload: 1.5x\n'],
  ['empty array element', 'server_tags: [a,,b]\n'],
  ['bad escape', 'server_name: "a\\qb"\n'],
  ['bad escape unquoted', 'server_name: a\\qb\n'],
  ['token and user', 'authorization { token: t, user: a, password: b }\n'],
  ['user and users', 'authorization { user: a, password: b, users: [{user: c, password: d}] }\n'],
  ['token and users', 'authorization { token: t, users: [{user: c, password: d}] }\n'],
  ['duplicate user', 'authorization { users: [{user: c, password: d}, {user: c, password: e}] }\n'],
  ['user without name', 'authorization { users: [{password: d}] }\n'],
  ['unknown key in authorization', 'authorization { user: a, password: b, bogus: 1 }\n'],
  ['unknown key in permissions', 'authorization { users: [{user: c, password: d, permissions: {publish: x, bogus: 1}}] }\n'],
  ['unknown key in subject permission', 'authorization { users: [{user: c, password: d, permissions: { publish: { allow: x, bogus: 1 } }}] }\n'],
  ['bad subject', 'authorization { users: [{user: c, password: d, permissions: { publish: ["a..b"] }}] }\n'],
  ['bad connection type', 'authorization { users: [{user: c, password: d, allowed_connection_types: [FOO] }] }\n'],
  ['listen without port', 'listen: 127.0.0.1\n'],
  ['listen bad port', 'listen: "127.0.0.1:x"\n'],
  ['max_sub_tokens too big', 'max_sub_tokens: 300\n'],
  ['max_payload too big', 'max_payload: 1T\n'],
  ['jetstream bad word', 'jetstream: foo\n'],
  ['jetstream int', 'jetstream: 1\n'],
  ['unknown key in jetstream', 'jetstream { bogus: 1 }\n'],
  ['tls missing files', 'tls { cert_file: /nope.pem, key_file: /nope.key }\n'],
  ['tls missing key_file', 'tls { cert_file: /nope.pem }\n'],
  ['missing include', 'port: 4222\ninclude nope.conf\n'],
  ['unquoted $2b$ hash', 'authorization { user: a, password: $2b$10$abc }\n'],
];

/** Where nats-edge differs on purpose; each side's verdict is pinned so a change shows up. */
const deviations: { name: string; text: string; nats: boolean; ours: boolean; why: string }[] = [
  { name: 'max_payload > max_pending', text: 'max_payload: 2MB\nmax_pending: 1MB\n', nats: true, ours: false, why: 'nats-server checks this at start, not with -t' },
  { name: 'no_auth_user without users', text: 'no_auth_user: x\n', nats: true, ours: false, why: 'nats-server checks this at start, not with -t' },
  { name: 'port out of range', text: 'port: 70000\n', nats: true, ours: false, why: 'nats-server fails at listen time' },
  { name: 'odd size suffix', text: 'max_payload: 1kbb\n', nats: true, ours: false, why: 'nats-server silently ignores the value' },
  { name: 'cluster block', text: 'cluster { port: 6222 }\n', nats: true, ours: false, why: 'ignored with a warning, which fails -t' },
  { name: 'encryption at rest', text: `jetstream { key: abc, store_dir: "${join(dir, 'js3')}" }\n`, nats: true, ours: false, why: 'refused rather than stored in plain text' },
  { name: 'max_closed_clients', text: 'max_closed_clients: 3\n', nats: false, ours: true, why: 'an option 2.9 does not read from files' },
  { name: 'logtime_utc (2.10+)', text: 'logtime_utc: true\n', nats: false, ours: true, why: '2.10 key, unknown to 2.9' },
  { name: 'sync_interval (2.10+)', text: `jetstream { store_dir: "${join(dir, 'js4')}", sync_interval: "1s" }\n`, nats: false, ours: true, why: '2.10/2.11 key, unknown to 2.9' },
];

describe.skipIf(!hasNatsServer)('agreement with nats-server -t', () => {
  it.each(bothValid)('both accept: %s', (_name, text) => {
    const f = write(text);
    expect(natsValid(f)).toMatchObject({ ok: true });
    expect(oursValid(f)).toEqual({ ok: true, out: '' });
  });

  it.each(bothInvalid)('both refuse: %s', (_name, text) => {
    const f = write(text);
    expect(natsValid(f).ok).toBe(false);
    expect(oursValid(f).ok).toBe(false);
  });

  it.each(deviations.map((d) => [d.name, d] as const))('known deviation: %s', (_name, d) => {
    const f = write(d.text);
    expect(natsValid(f).ok).toBe(d.nats);
    expect(oursValid(f).ok).toBe(d.ours);
  });

  it('both accept a JSON config', () => {
    const f = write(JSON.stringify({ port: 4222, server_name: 'json', max_payload: 2048, authorization: { users: [{ user: 'a', password: 'b' }] } }), '.json');
    expect(natsValid(f)).toMatchObject({ ok: true });
    expect(oursValid(f)).toEqual({ ok: true, out: '' });
  });

  it('reports the unknown field at the same line as nats-server', () => {
    const f = write('port: 4222\n  bogus_key: 1\n');
    expect(natsValid(f).out).toContain(`${f}:2:3: unknown field "bogus_key"`);
    expect(oursValid(f).out).toBe(`${f}:2:3: unknown field "bogus_key"`);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Starts nats-server on the file, waits for "Server is ready", returns its /varz. */
async function natsVarz(file: string, httpPort: number): Promise<Record<string, unknown>> {
  const child = spawn('nats-server', ['-c', file], { env: { ...process.env, ...ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let log = '';
      const onData = (b: Buffer): void => {
        log += b.toString();
        if (log.includes('Server is ready')) resolve();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => reject(new Error(`nats-server exited ${code}: ${log}`)));
    });
    const res = await fetch(`http://127.0.0.1:${httpPort}/varz`);
    return (await res.json()) as Record<string, unknown>;
  } finally {
    child.kill('SIGKILL');
  }
}

describe.skipIf(!hasNatsServer)('same values as a running nats-server', () => {
  it('reads names, sizes, durations, auth timeout and tags alike', async () => {
    const httpPort = await freePort();
    const f = write(
      [
        'port: -1',
        `http: "127.0.0.1:${httpPort}"`,
        'PAYLOAD = 2MB',
        'server_name: "edge\\x41-\\x42"',
        'max_payload: $PAYLOAD',
        'max_pending: 64MiB; max_control_line: $NUM',
        'max_connections: 1K',
        'ping_interval: "1m30s"',
        'ping_max = 5',
        'write_deadline: "1500ms"',
        'authorization {',
        '  user: admin',
        '  password: $ADMINPASS',
        '  timeout: 1.5',
        '}',
        'server_tags: [ "region:eu", edge ]',
        'include inc.conf',
        '',
      ].join('\n'),
    );
    const varz = await natsVarz(f, httpPort);
    const o = loadOptions({ argv: ['-c', f], env: ENV }).options;
    expect(o.serverName).toBe(varz['server_name']);
    expect(o.serverName).toBe('edgeA-B');
    expect(o.maxPayload).toBe(varz['max_payload']);
    expect(o.maxPending).toBe(varz['max_pending']);
    expect(o.maxControlLine).toBe(varz['max_control_line']);
    expect(o.maxConnections).toBe(varz['max_connections']);
    expect(o.pingIntervalMs * 1e6).toBe(varz['ping_interval']);
    expect(o.pingMax).toBe(varz['ping_max']);
    expect(o.writeDeadlineMs * 1e6).toBe(varz['write_deadline']);
    expect(o.authorization!.timeoutMs / 1000).toBe(varz['auth_timeout']);
    expect(o.serverTags).toEqual(varz['tags']);
    expect(o.httpHost).toBe(varz['http_host']);
    expect(o.httpPort).toBe(varz['http_port']);
  });
});
