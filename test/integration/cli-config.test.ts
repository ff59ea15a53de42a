/**
 * The command line and the config file as an operator meets them: bad files refused with
 * `file:line` and the reason, `-t`, `--version`, `--help`, which ports a server opens, flags
 * over the file, the shipped nats-edge.conf, firmware profiles and the pid file. Shared
 * behaviour runs against Debian's nats-server too; its messages were measured on 2.9.10.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  NATS_EDGE_BUNDLE,
  REPO_ROOT,
  freePort,
  makeTempDir,
  monitor,
  serverKinds,
  startServer,
  stopAllServers,
  within,
  type ServerKind,
} from '../helpers/servers.js';
import { RawClient } from '../helpers/raw-client.js';

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function command(kind: ServerKind): { cmd: string; pre: string[] } {
  if (kind === 'nats-server') return { cmd: process.env['NATS_SERVER_BIN'] ?? 'nats-server', pre: [] };
  return { cmd: process.execPath, pre: [NATS_EDGE_BUNDLE] };
}

/** Runs the binary to its exit; a process still running after `timeoutMs` is killed (code null). */
function run(kind: ServerKind, args: string[], cwd: string, timeoutMs = 10000): Promise<RunResult> {
  const { cmd, pre } = command(kind);
  return new Promise((resolve) => {
    const child = spawn(cmd, [...pre, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** TCP ports a process listens on, from /proc: its socket inodes matched to LISTEN rows. */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1] !== undefined) inodes.add(m[1]);
    } catch {
      // An fd closed between readdir and readlink.
    }
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // cols: sl local_address rem_address st ... inode (index 9); 0A = LISTEN.
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9] ?? '')) continue;
      const port = Number.parseInt((cols[1] ?? '').split(':')[1] ?? '', 16);
      if (Number.isFinite(port)) ports.add(port);
    }
  }
  return [...ports].sort((a, b) => a - b);
}

const UNSET_VAR = 'NATS_EDGE_TEST_SURELY_UNSET';

interface BadConfigCase {
  name: string;
  file: string;
  text: string;
  /** nats-edge: `file:line:` plus what is wrong. */
  edge: RegExp;
  /** nats-server 2.9.10's message (not always with file:line). */
  natsServer: RegExp;
}

const BAD_CONFIGS: BadConfigCase[] = [
  {
    name: 'unknown field',
    file: 'unknown.conf',
    text: 'server_name: x\nbogus_key: 1\n',
    edge: /unknown\.conf:2:1: unknown field "bogus_key"/,
    natsServer: /unknown\.conf:2:1: unknown field "bogus_key"/,
  },
  {
    name: 'syntax error (unterminated map)',
    file: 'syntax.conf',
    text: 'server_name: x\nmax_payload: {\n',
    edge: /syntax\.conf:3:\d+: .*Unexpected EOF/,
    natsServer: /Parse error on line 3: 'Unexpected EOF processing map\.'/,
  },
  {
    name: 'undefined variable',
    file: 'badvar.conf',
    text: `server_name: x\nmax_payload: $${UNSET_VAR}\n`,
    edge: new RegExp(`badvar\\.conf:2:\\d+: .*variable reference for '${UNSET_VAR}' on line 2 can not be found`),
    natsServer: new RegExp(`variable reference for '${UNSET_VAR}' on line 2 can not be found`),
  },
  {
    name: 'quoted size max_payload: "1MB"',
    file: 'quoted.conf',
    text: 'server_name: x\nmax_payload: "1MB"\n',
    edge: /quoted\.conf:2:\d+: .*max_payload.*string.*1MB/,
    natsServer: /quoted\.conf:2:1: interface conversion: interface \{\} is string, not int64/,
  },
  {
    name: 'missing include file',
    file: 'include.conf',
    text: 'server_name: x\ninclude ./nothere.conf\n',
    edge: /include\.conf:2:\d+: error parsing include file '\.\/nothere\.conf'.*(ENOENT|no such file)/,
    natsServer: /error parsing include file '\.\/nothere\.conf', open nothere\.conf: no such file or directory/,
  },
  {
    name: 'TLS certificate file missing',
    file: 'tls.conf',
    text: 'server_name: x\ntls {\n  cert_file: "./nocert.pem"\n  key_file: "./nokey.pem"\n}\n',
    edge: /tls\.conf:3:\d+: cert_file "\.\/nocert\.pem": no such file/,
    natsServer: /tls\.conf:2:1: error parsing X509 certificate\/key pair: open \.\/nocert\.pem: no such file or directory/,
  },
];

describe.each(serverKinds())('config and command line: %s', (kind) => {
  afterEach(async () => {
    await stopAllServers();
  });

  afterAll(async () => {
    await stopAllServers();
  });

  describe.each(BAD_CONFIGS)('bad config: $name', (c) => {
    const expected = kind === 'nats-server' ? c.natsServer : c.edge;

    it('refuses to start: non-zero exit, the reason on stderr', async () => {
      const dir = makeTempDir('nats-edge-cli-');
      writeFileSync(join(dir, c.file), c.text);
      const port = await freePort();
      const r = await run(kind, ['-c', c.file, '-a', '127.0.0.1', '-p', String(port)], dir);
      expect(r.code, r.stdout + r.stderr).not.toBe(0);
      expect(r.code).not.toBeNull();
      expect(r.stderr).toMatch(expected);
    });

    it('-t says so too, with a non-zero exit', async () => {
      const dir = makeTempDir('nats-edge-cli-');
      writeFileSync(join(dir, c.file), c.text);
      const r = await run(kind, ['-t', '-c', c.file], dir);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toMatch(expected);
      expect(r.stdout + r.stderr).not.toMatch(/is valid/);
    });
  });

  it('-t -c good.conf exits 0 and says the file is valid', async () => {
    const dir = makeTempDir('nats-edge-cli-');
    writeFileSync(join(dir, 'good.conf'), 'server_name: good\nmax_payload: 2KB\nping_interval: "30s"\n');
    const r = await run(kind, ['-t', '-c', 'good.conf'], dir);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // nats-server writes this line to stderr, nats-edge to stdout.
    expect(r.stdout + r.stderr).toMatch(new RegExp(`^${kind}: configuration file \\S*good\\.conf is valid\\n$`));
  });

  for (const flag of ['--version', '-v']) {
    it(`${flag} prints the version and exits 0`, async () => {
      const r = await run(kind, [flag], REPO_ROOT);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^${kind}: v\\d+\\.\\d+\\.\\d+`));
      if (kind === 'nats-edge') {
        const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
        expect(r.stdout.startsWith(`nats-edge: v${pkg.version}`)).toBe(true);
      }
    });
  }

  for (const flag of ['--help', '-h']) {
    it(`${flag} prints the usage and exits 0`, async () => {
      const r = await run(kind, [flag], REPO_ROOT);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`Usage: ${kind} \\[options\\]`));
      for (const f of ['--config', '--port', '--http_port', '--signal', '--pid']) expect(r.stdout).toContain(f);
      if (kind === 'nats-edge') expect(r.stdout).toContain('--profile');
    });
  }

  it('without a config file and without -m it listens on the client port only', async () => {
    const dir = makeTempDir('nats-edge-cli-');
    const port = await freePort();
    const { cmd, pre } = command(kind);
    const child = spawn(cmd, [...pre, '-a', '127.0.0.1', '-p', String(port)], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let logs = '';
    child.stdout.on('data', (b: Buffer) => (logs += b.toString()));
    child.stderr.on('data', (b: Buffer) => (logs += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      // Readiness has no event of its own: retry the connect with a short backoff.
      const ready = async (): Promise<RawClient> => {
        for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
          try {
            return await RawClient.connect(port, { timeoutMs: 1000 });
          } catch {
            await new Promise((r) => setTimeout(r, delay));
          }
        }
      };
      const r = await within(ready(), 10000, `${kind} answering on ${port}; logs:\n${logs}`);
      expect(r.info?.port).toBe(port);
      r.close();
      expect(listeningPorts(child.pid ?? 0)).toEqual([port]);
      expect(logs).not.toMatch(/monitor/i);
    } finally {
      child.kill('SIGINT');
      await within(exited, 5000, 'exit after SIGINT');
    }
  });

  it('-p and -m beat port and http from the config file', async () => {
    const filePort = await freePort();
    const fileHttp = await freePort();
    const srv = await startServer(kind, { config: `port: ${filePort}\nhttp: ${fileHttp}\nserver_name: from-file\n` });
    expect(listeningPorts(srv.pid)).toEqual([srv.port, srv.httpPort].sort((a, b) => a - b));
    const varz = await monitor<{ port: number; http_port: number; server_name: string }>(srv, '/varz');
    expect(varz.port).toBe(srv.port);
    expect(varz.http_port).toBe(srv.httpPort);
    // The rest of the file still applies.
    expect(varz.server_name).toBe('from-file');
  });

  it('-P writes the pid file; nats-server 2.9 leaves it after a clean exit, nats-edge removes it', async () => {
    const dir = makeTempDir('nats-edge-cli-');
    const pidFile = join(dir, 'server.pid');
    const srv = await startServer(kind, { args: ['-P', pidFile] });
    expect(readFileSync(pidFile, 'utf8').trim()).toBe(String(srv.pid));
    expect(await srv.stop('SIGINT')).toBe(0);
    expect(existsSync(pidFile)).toBe(kind === 'nats-server');
  });

  it('the shipped nats-edge.conf passes -t (it is nats-server syntax)', async () => {
    const r = await run(kind, ['-t', '-c', join(REPO_ROOT, 'nats-edge.conf')], REPO_ROOT);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/nats-edge\.conf is valid/);
  });
});

describe('nats-edge only: shipped config and firmware profiles', () => {
  const edge = serverKinds().includes('nats-edge');
  const profileNames = readdirSync(join(REPO_ROOT, 'firmware-profiles'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();

  interface EdgeVarz {
    server_name: string;
    port: number;
    http_port: number;
    max_connections: number;
    edge?: { profile: string | null };
  }

  afterEach(async () => {
    await stopAllServers();
  });

  it.skipIf(!edge)('-c nats-edge.conf (with -p/-m) starts, answers on the given ports, no fatal error', async () => {
    const srv = await startServer('nats-edge', { args: ['-c', join(REPO_ROOT, 'nats-edge.conf')] });
    const ports = listeningPorts(srv.pid);
    expect(ports).toContain(srv.port);
    expect(ports).toContain(srv.httpPort);
    expect(ports).not.toContain(4222);
    expect(ports).not.toContain(8222);
    const varz = await monitor<EdgeVarz>(srv, '/varz');
    expect(varz.server_name).toBe('edge');
    expect(varz.port).toBe(srv.port);
    expect(varz.http_port).toBe(srv.httpPort);
    const r = await RawClient.connect(srv.port);
    r.send('CONNECT {"verbose":false}\r\nSUB s 1\r\nPUB s 2\r\nok\r\n');
    expect(await r.ping()).toBe('MSG s 1 2\r\nok\r\nPONG\r\n');
    r.close();
    // The JetStream and MQTT blocks may warn, never stop the server.
    expect(srv.logs()).not.toMatch(/\[(FTL|ERR)\]/);
    expect(await srv.stop('SIGINT')).toBe(0);
  });

  it.skipIf(!edge)('--profile rpi-zero-2w shows in /varz and sets max_connections from the profile', async () => {
    const profile = JSON.parse(readFileSync(join(REPO_ROOT, 'firmware-profiles', 'rpi-zero-2w.json'), 'utf8')) as {
      maxConnections: number;
    };
    const srv = await startServer('nats-edge', { args: ['--profile', 'rpi-zero-2w'] });
    const varz = await monitor<EdgeVarz>(srv, '/varz');
    expect(varz.edge?.profile).toBe('rpi-zero-2w');
    expect(varz.max_connections).toBe(profile.maxConnections);
    expect(varz.max_connections).not.toBe(65536);
  });

  it.skipIf(!edge)('max_connections in the config file beats the profile', async () => {
    const srv = await startServer('nats-edge', { config: 'max_connections: 7\n', args: ['--profile', 'rpi-zero-2w'] });
    const varz = await monitor<EdgeVarz>(srv, '/varz');
    expect(varz.edge?.profile).toBe('rpi-zero-2w');
    expect(varz.max_connections).toBe(7);
  });

  it.skipIf(!edge)('`profile:` in the config file selects the profile too', async () => {
    const srv = await startServer('nats-edge', { config: 'profile: rpi-zero-2w\n' });
    expect((await monitor<EdgeVarz>(srv, '/varz')).edge?.profile).toBe('rpi-zero-2w');
  });

  it.skipIf(!edge)('an unknown profile exits non-zero and lists the known names', async () => {
    const port = await freePort();
    const r = await run('nats-edge', ['--profile', 'no-such-board', '-a', '127.0.0.1', '-p', String(port)], REPO_ROOT);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toContain('"no-such-board"');
    for (const name of profileNames) expect(r.stderr).toContain(name);
  });
});
