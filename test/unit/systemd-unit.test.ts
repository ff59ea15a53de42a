/**
 * The systemd unit and the installer: the unit rendered for every firmware profile carries the
 * profile's limits and passes `systemd-analyze verify`; scripts/install.sh renders the same unit,
 * plans the right steps, picks the profile the broker itself would pick and is idempotent; the
 * readiness script waits for a real broker to accept connections.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { detectBoard } from '../../src/config/board.js';
import { freePort, makeTempDir, NATS_EDGE_BUNDLE, REPO_ROOT, stopAllServers } from '../helpers/servers.js';

afterAll(stopAllServers);

const RENDER = join(REPO_ROOT, 'scripts', 'render-unit.mjs');
const INSTALL = join(REPO_ROOT, 'scripts', 'install.sh');
const READY = join(REPO_ROOT, 'deploy', 'wait-ready.sh');
const MIB = 1024 * 1024;

interface Profile {
  name: string;
  rssCeiling: number;
  memoryHigh: number;
  maxOldSpaceMb: number;
  maxSemiSpaceMb: number;
  maxConnections: number;
}

function readProfile(file: string): Profile {
  const raw: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (typeof raw !== 'object' || raw === null) throw new Error(`${file}: not an object`);
  const o = raw as Record<string, unknown>;
  const int = (k: string): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`${file}: ${k} is not an integer`);
    return v;
  };
  if (typeof o['name'] !== 'string') throw new Error(`${file}: no name`);
  return {
    name: o['name'],
    rssCeiling: int('rssCeiling'),
    memoryHigh: int('memoryHigh'),
    maxOldSpaceMb: int('maxOldSpaceMb'),
    maxSemiSpaceMb: int('maxSemiSpaceMb'),
    maxConnections: int('maxConnections'),
  };
}

const PROFILES: Profile[] = readdirSync(join(REPO_ROOT, 'firmware-profiles'))
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => readProfile(join(REPO_ROOT, 'firmware-profiles', f)));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function has(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

const HAVE_ANALYZE = has('systemd-analyze', ['--version']);
const HAVE_SHELLCHECK = has('shellcheck', ['--version']);
const IS_ROOT = process.getuid?.() === 0;
const HAVE_DAEMON_USER = has('getent', ['passwd', 'daemon']) && has('getent', ['group', 'daemon']);

/** Section.Key -> values, in file order (comments and blank lines dropped). */
function parseUnit(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const s = /^\[(\w+)\]$/.exec(line);
    if (s !== null) {
      section = s[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`not a unit line: ${line}`);
    const key = `${section}.${line.slice(0, eq)}`;
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

function one(unit: Map<string, string[]>, key: string): string {
  const v = unit.get(key);
  if (v?.length !== 1) throw new Error(`${key}: expected one value, got ${JSON.stringify(v)}`);
  return v[0]!;
}

/** A systemd size (base-1024 suffixes) in bytes. */
function systemdSize(v: string): number {
  const m = /^(\d+)([KMGT]?)$/.exec(v);
  if (m === null) throw new Error(`not a size: ${v}`);
  const shift = { '': 0, K: 10, M: 20, G: 30, T: 40 }[m[2] as '' | 'K' | 'M' | 'G' | 'T'];
  return Number(m[1]) * 2 ** shift;
}

async function render(profile: string, args: string[] = []): Promise<string> {
  const r = await run(process.execPath, [RENDER, '--profile', profile, ...args]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

/** An unpacked release as scripts/release.mjs lays it out, with a stub for the launcher. */
function fakeRelease(): string {
  const dir = makeTempDir('nats-edge-release-');
  mkdirSync(join(dir, 'bin'));
  mkdirSync(join(dir, 'lib'));
  mkdirSync(join(dir, 'deploy'));
  mkdirSync(join(dir, 'scripts'));
  writeFileSync(join(dir, 'bin', 'nats-edge'), '#!/bin/sh\nexit 0\n');
  chmodSync(join(dir, 'bin', 'nats-edge'), 0o755);
  writeFileSync(join(dir, 'lib', 'nats-edge.js'), '// bundle\n');
  cpSync(join(REPO_ROOT, 'firmware-profiles'), join(dir, 'firmware-profiles'), { recursive: true });
  cpSync(join(REPO_ROOT, 'deploy', 'nats-edge.service'), join(dir, 'deploy', 'nats-edge.service'));
  cpSync(READY, join(dir, 'deploy', 'wait-ready.sh'));
  cpSync(join(REPO_ROOT, 'nats-edge.conf'), join(dir, 'nats-edge.conf'));
  cpSync(INSTALL, join(dir, 'scripts', 'install.sh'));
  return dir;
}

/** The file text install.sh shows for a `+ write` step. */
function writtenText(plan: string): string {
  const lines = plan.split('\n').filter((l) => l === '|' || l.startsWith('| '));
  return `${lines.map((l) => l.slice(2)).join('\n')}\n`;
}

function steps(plan: string): string[] {
  return plan.split('\n').filter((l) => l.startsWith('+ '));
}

describe('the unit rendered for each firmware profile', () => {
  for (const p of PROFILES) {
    it(`${p.name}: limits, heap flags and service settings`, async () => {
      const prefix = makeTempDir('nats-edge-prefix-');
      const unit = parseUnit(await render(p.name, ['--prefix', prefix]));

      expect(systemdSize(one(unit, 'Service.MemoryMax'))).toBe(p.rssCeiling);
      expect(systemdSize(one(unit, 'Service.MemoryHigh'))).toBe(p.memoryHigh);
      const nofile = Number(one(unit, 'Service.LimitNOFILE'));
      expect(nofile).toBeGreaterThanOrEqual(p.maxConnections + 64);
      expect(nofile).toBe(Math.max(1024, 2 * p.maxConnections + 64));
      expect(one(unit, 'Service.Environment')).toBe(
        `"NODE_OPTIONS=--max-old-space-size=${p.maxOldSpaceMb} --max-semi-space-size=${p.maxSemiSpaceMb}"`,
      );
      expect(one(unit, 'Service.ExecStart')).toBe(
        `${prefix}/bin/nats-edge -c /etc/nats-edge/nats-edge.conf --profile ${p.name} --ports_file_dir %t/nats-edge`,
      );
      expect(one(unit, 'Service.ExecStartPost')).toBe(`/bin/bash ${prefix}/deploy/wait-ready.sh %t/nats-edge 85`);

      const expected: Record<string, string> = {
        'Service.Type': 'exec',
        'Service.Restart': 'on-failure',
        'Service.ExecReload': '/bin/kill -HUP $MAINPID',
        'Service.KillSignal': 'SIGTERM',
        'Service.TimeoutStopSec': '30s',
        'Service.TimeoutStartSec': '90s',
        'Service.User': 'nats-edge',
        'Service.StateDirectory': 'nats-edge',
        'Service.WorkingDirectory': '%S/nats-edge',
        'Service.RuntimeDirectory': 'nats-edge',
        'Service.ProtectSystem': 'strict',
        'Service.ProtectHome': 'yes',
        'Service.PrivateTmp': 'yes',
        'Service.NoNewPrivileges': 'yes',
        'Service.RestrictAddressFamilies': 'AF_INET AF_INET6 AF_UNIX',
        'Service.MemorySwapMax': '0',
        'Install.WantedBy': 'multi-user.target',
      };
      for (const [k, v] of Object.entries(expected)) expect(one(unit, k), k).toBe(v);
      // V8's JIT needs W+X memory; /proc/meminfo must stay visible.
      expect(unit.has('Service.MemoryDenyWriteExecute')).toBe(false);
      expect(unit.has('Service.ProcSubset')).toBe(false);
      expect(unit.has('Service.DynamicUser')).toBe(false);
    });

    it(`${p.name}: node honours the heap flags, and the heap fits under MemoryMax`, async () => {
      const unit = parseUnit(await render(p.name));
      const env = /^"NODE_OPTIONS=(.*)"$/.exec(one(unit, 'Service.Environment'));
      expect(env).not.toBeNull();
      const r = await run(process.execPath, ['-e', 'process.stdout.write(String(require("v8").getHeapStatistics().heap_size_limit))'], {
        NODE_OPTIONS: env![1]!,
      });
      expect(r.code).toBe(0);
      const limit = Number(r.stdout);
      // V8's limit is old space + 3 x semi-space (spec/boards.md 5.2).
      expect(limit).toBe((p.maxOldSpaceMb + 3 * p.maxSemiSpaceMb) * MIB);
      expect(limit).toBeLessThan(systemdSize(one(unit, 'Service.MemoryMax')));
    });

    it.skipIf(!HAVE_ANALYZE)(`${p.name}: systemd-analyze verify accepts it`, async () => {
      const release = fakeRelease();
      const dir = makeTempDir('nats-edge-unit-');
      const file = join(dir, 'nats-edge.service');
      writeFileSync(file, await render(p.name, ['--prefix', release]));
      const r = await run('systemd-analyze', ['verify', file]);
      // verify exits 0 on unknown keys and bad values, and only warns: no output is the pass.
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('');
      expect(r.code).toBe(0);
    });
  }

  it.skipIf(!HAVE_ANALYZE)('systemd-analyze verify reports a broken unit (so the check above can fail)', async () => {
    const release = fakeRelease();
    const dir = makeTempDir('nats-edge-unit-');
    const file = join(dir, 'nats-edge.service');
    const good = await render('rpi-4', ['--prefix', release]);
    writeFileSync(file, good.replace(/^MemoryMax=.*$/m, 'MemoryMax=lots').replace('/bin/nats-edge ', '/bin/missing '));
    const r = await run('systemd-analyze', ['verify', file]);
    expect(r.stderr).toContain("Invalid memory limit 'lots'");
    expect(r.stderr).toContain('/bin/missing is not executable');
  });

  it('render-unit.mjs refuses an unknown profile and a profile whose heap does not fit', async () => {
    const unknown = await run(process.execPath, [RENDER, '--profile', 'no-such-board']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no-such-board.json');

    const dir = makeTempDir('nats-edge-profile-');
    const file = join(dir, 'tight.json');
    const p = JSON.parse(readFileSync(join(REPO_ROOT, 'firmware-profiles', 'rpi-zero-2w.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...p, name: 'tight', maxOldSpaceMb: 190 }));
    const tight = await run(process.execPath, [RENDER, '--profile', file]);
    expect(tight.code).toBe(1);
    expect(tight.stderr).toContain('does not fit under rssCeiling');
  });
});

describe('scripts/install.sh', () => {
  // Points detection at files of the test's own and keeps the plan independent of this machine.
  function boardEnv(dir: string, model: string | null, memKb: number): Record<string, string> {
    const modelFile = join(dir, 'model');
    const meminfo = join(dir, 'meminfo');
    writeFileSync(modelFile, model === null ? '' : `${model}\0`);
    writeFileSync(meminfo, `MemTotal:       ${memKb} kB\nMemFree:        1000 kB\n`);
    return { NATS_EDGE_DT_MODEL_FILE: modelFile, NATS_EDGE_MEMINFO_FILE: meminfo };
  }

  it('renders the same unit as render-unit.mjs for every profile', async () => {
    const release = fakeRelease();
    const prefix = join(makeTempDir('nats-edge-prefix-'), 'opt');
    for (const p of PROFILES) {
      const r = await run('bash', [join(release, 'scripts', 'install.sh'), '--dry-run', '--prefix', prefix, '--profile', p.name]);
      expect(r.code, r.stderr).toBe(0);
      expect(writtenText(r.stdout), p.name).toBe(await render(p.name, ['--prefix', prefix]));
    }
  });

  it('--dry-run prints the whole plan and changes nothing', async () => {
    const release = fakeRelease();
    const root = makeTempDir('nats-edge-target-');
    const prefix = join(root, 'opt', 'nats-edge');
    const etc = join(root, 'etc', 'nats-edge');
    const units = join(root, 'systemd');
    const r = await run('bash', [join(release, 'scripts', 'install.sh'), '--dry-run', '--prefix', prefix], {
      ...boardEnv(root, 'Raspberry Pi 4 Model B Rev 1.4', 3_884_000),
      CONFIG_DIR: etc,
      UNIT_DIR: units,
      SERVICE_USER: 'nats-edge-no-such-user',
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`release: ${release}\n`);
    expect(r.stdout).toContain(`prefix:  ${prefix}\n`);
    expect(r.stdout).toContain("profile: rpi-4 (detected: model 'Raspberry Pi 4 Model B Rev 1.4', MemTotal 3792 MiB)\n");
    expect(steps(r.stdout)).toEqual([
      '+ useradd --system --user-group --home-dir /var/lib/nats-edge --no-create-home --shell /usr/sbin/nologin --comment nats-edge\\ broker nats-edge-no-such-user',
      `+ mkdir -p ${prefix}`,
      `+ cp -R --remove-destination ${release}/. ${prefix}/`,
      `+ install -d -m 0750 -o root -g nats-edge-no-such-user ${etc}`,
      `+ install -m 0640 -o root -g nats-edge-no-such-user ${release}/nats-edge.conf ${etc}/nats-edge.conf`,
      `+ write ${units}/nats-edge.service (mode 0644)`,
      '+ systemctl daemon-reload',
      '+ systemctl enable nats-edge.service',
      '+ systemctl restart nats-edge.service',
    ]);
    const unit = parseUnit(writtenText(r.stdout));
    expect(one(unit, 'Service.MemoryMax')).toBe('768M');
    expect(one(unit, 'Service.User')).toBe('nats-edge-no-such-user');
    expect(one(unit, 'Service.ExecStart')).toBe(`${prefix}/bin/nats-edge -c ${etc}/nats-edge.conf --profile rpi-4 --ports_file_dir %t/nats-edge`);
    expect(existsSync(prefix)).toBe(false);
    expect(existsSync(etc)).toBe(false);
    expect(existsSync(units)).toBe(false);
  });

  it('--no-start stops after daemon-reload', async () => {
    const release = fakeRelease();
    const root = makeTempDir('nats-edge-target-');
    const r = await run('bash', [join(release, 'scripts', 'install.sh'), '--dry-run', '--no-start', '--profile', 'rpi-3b', '--prefix', join(root, 'p')], {
      CONFIG_DIR: join(root, 'etc'),
      UNIT_DIR: join(root, 'units'),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('profile: rpi-3b (given with --profile)');
    const s = steps(r.stdout);
    expect(s[s.length - 1]).toBe('+ systemctl daemon-reload');
    expect(r.stdout).toContain('not started (--no-start)');
  });

  // MemTotal values as the kernel reports them (below the nominal RAM).
  const BOARDS: [string | null, number][] = [
    ['Raspberry Pi Zero 2 W Rev 1.0', 427_000],
    ['Raspberry Pi 3 Model B Plus Rev 1.3', 906_000],
    ['Raspberry Pi 3 Model A Plus Rev 1.0', 437_000],
    ['Raspberry Pi 4 Model B Rev 1.4', 948_000],
    ['Raspberry Pi 4 Model B Rev 1.4', 1_918_000],
    ['Raspberry Pi 4 Model B Rev 1.5', 7_990_000],
    ['Raspberry Pi 400 Rev 1.0', 3_884_000],
    ['Raspberry Pi Compute Module 4 Rev 1.0', 1_918_000],
    ['Raspberry Pi 5 Model B Rev 1.0', 2_000_000],
    ['Raspberry Pi 5 Model B Rev 1.1', 8_245_000],
    ['Raspberry Pi 5 Model B Rev 1.1', 16_400_000],
    ['Radxa ROCK Pi S', 230_000],
    ['Pine64 Rock64', 3_900_000],
    [null, 480_000],
    [null, 24_000_000],
  ];
  let boardRelease: string | undefined;
  for (const [model, memKb] of BOARDS) {
    it(`detects the profile the broker would pick: ${model ?? 'no device tree'}, ${Math.round(memKb / 1024)} MiB`, async () => {
      // A dry run only reads the release: one for all of these.
      const release = (boardRelease ??= fakeRelease());
      const dir = makeTempDir('nats-edge-board-');
      const r = await run('bash', [join(release, 'scripts', 'install.sh'), '--dry-run', '--prefix', join(dir, 'p')], boardEnv(dir, model, memKb));
      expect(r.code, r.stderr).toBe(0);
      const picked = /^profile: (\S+) \(detected: /m.exec(r.stdout)?.[1];
      // Without a device tree and with lots of RAM the broker runs without a profile; the
      // unit needs limits, so install.sh treats it as an unknown board (capped at rpi-4).
      const broker = detectBoard(model, memKb * 1024).profile ?? detectBoard('unknown board', memKb * 1024).profile;
      expect(picked).toBe(broker);
    });
  }

  it('refuses without systemd, unless it is a dry run', async () => {
    const release = fakeRelease();
    const root = makeTempDir('nats-edge-target-');
    const env = { NATS_EDGE_SYSTEMD_RUN_DIR: join(root, 'no-systemd'), CONFIG_DIR: join(root, 'etc'), UNIT_DIR: join(root, 'units') };
    const real = await run('bash', [join(release, 'scripts', 'install.sh'), '--profile', 'rpi-4', '--prefix', join(root, 'p')], env);
    expect(real.code).toBe(1);
    expect(real.stderr).toContain('systemd is not running here');
    expect(real.stdout).toBe('');
    expect(existsSync(join(root, 'p'))).toBe(false);
    const dry = await run('bash', [join(release, 'scripts', 'install.sh'), '--dry-run', '--profile', 'rpi-4', '--prefix', join(root, 'p')], env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('(dry run: carrying on)');
  });

  it('refuses an unknown profile, naming the known ones, and a directory that is not a release', async () => {
    const release = fakeRelease();
    const bad = await run('bash', [join(release, 'scripts', 'install.sh'), '--dry-run', '--profile', 'pi-9']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('no firmware profile "pi-9"');
    expect(bad.stderr).toContain(`known: ${PROFILES.map((p) => p.name).join(' ')}`);

    const notRelease = await run('bash', [INSTALL, '--dry-run', '--profile', 'rpi-4']);
    expect(notRelease.code).toBe(1);
    expect(notRelease.stderr).toContain('no bin/nats-edge beside');
  });

  it('checks the release against its SHA256SUMS before anything else', async () => {
    const release = fakeRelease();
    const files = ['bin/nats-edge', 'lib/nats-edge.js', 'nats-edge.conf', 'deploy/nats-edge.service'];
    const sums = files.map((f) => `${createHash('sha256').update(readFileSync(join(release, f))).digest('hex')}  ${f}\n`).join('');
    writeFileSync(join(release, 'SHA256SUMS'), sums);
    const args = [join(release, 'scripts', 'install.sh'), '--dry-run', '--profile', 'rpi-4', '--prefix', join(release, 'p')];
    const good = await run('bash', args);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toContain('checked: every file matches SHA256SUMS');

    writeFileSync(join(release, 'lib', 'nats-edge.js'), '// truncated');
    const bad = await run('bash', args);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('does not match its SHA256SUMS');
    expect(bad.stderr).toContain('lib/nats-edge.js: FAILED');
    expect(steps(bad.stdout)).toEqual([]);
  });

  it.skipIf(!IS_ROOT || !HAVE_DAEMON_USER)('installs for real against a stand-in systemctl, and a second run changes nothing', async () => {
    const release = fakeRelease();
    const root = makeTempDir('nats-edge-target-');
    const prefix = join(root, 'opt', 'nats-edge');
    const etc = join(root, 'etc', 'nats-edge');
    const units = join(root, 'units');
    const fakeBin = join(root, 'fakebin');
    const log = join(root, 'systemctl.log');
    mkdirSync(units);
    mkdirSync(fakeBin);
    mkdirSync(join(root, 'run-systemd'));
    writeFileSync(join(fakeBin, 'systemctl'), `#!/bin/sh\necho "$*" >> '${log}'\n`);
    chmodSync(join(fakeBin, 'systemctl'), 0o755);
    const env = {
      PATH: `${fakeBin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`,
      NATS_EDGE_SYSTEMD_RUN_DIR: join(root, 'run-systemd'),
      CONFIG_DIR: etc,
      UNIT_DIR: units,
      SERVICE_USER: 'daemon',
    };
    const install = (profile: string): Promise<Result> =>
      run('bash', [join(release, 'scripts', 'install.sh'), '--profile', profile, '--prefix', prefix], env);
    const calls = (): string[] => readFileSync(log, 'utf8').trim().split('\n');
    const unitFile = join(units, 'nats-edge.service');
    const daemonGid = Number(spawnSync('getent', ['group', 'daemon'], { encoding: 'utf8' }).stdout.split(':')[2]);

    const first = await install('rpi-zero-2w');
    expect(first.code, first.stderr).toBe(0);
    expect(statSync(join(prefix, 'bin', 'nats-edge')).mode & 0o111).not.toBe(0);
    expect(readFileSync(join(prefix, 'firmware-profiles', 'rpi-4.json'), 'utf8')).toBe(readFileSync(join(release, 'firmware-profiles', 'rpi-4.json'), 'utf8'));
    const conf = statSync(join(etc, 'nats-edge.conf'));
    expect(conf.mode & 0o777).toBe(0o640);
    expect(conf.gid).toBe(daemonGid);
    expect(readFileSync(unitFile, 'utf8')).toBe(await render('rpi-zero-2w', ['--prefix', prefix, '--config-dir', etc, '--user', 'daemon']));
    expect(statSync(unitFile).mode & 0o777).toBe(0o644);
    expect(calls()).toEqual(['daemon-reload', 'enable nats-edge.service', 'restart nats-edge.service']);

    // The operator edits the config; a re-run keeps it and touches nothing else.
    writeFileSync(join(etc, 'nats-edge.conf'), 'port: 4333\n');
    writeFileSync(log, '');
    const second = await install('rpi-zero-2w');
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain(`release files in ${prefix} are up to date`);
    expect(second.stdout).toContain(`keeping the existing ${etc}/nats-edge.conf`);
    expect(second.stdout).toContain(`${unitFile} is up to date`);
    expect(steps(second.stdout).some((s) => s.startsWith('+ cp ') || s.startsWith('+ write '))).toBe(false);
    expect(readFileSync(join(etc, 'nats-edge.conf'), 'utf8')).toBe('port: 4333\n');
    expect(calls()).toEqual(['daemon-reload', 'enable --now nats-edge.service']);

    // Another profile rewrites the unit and restarts the service.
    writeFileSync(log, '');
    const third = await install('rpi-3b');
    expect(third.code, third.stderr).toBe(0);
    expect(readFileSync(unitFile, 'utf8')).toContain('\nMemoryMax=384M\n');
    expect(calls()).toEqual(['daemon-reload', 'enable nats-edge.service', 'restart nats-edge.service']);
  });

  it.skipIf(!HAVE_SHELLCHECK)('is shellcheck-clean, as is the readiness script (skipped without shellcheck: apt-get install shellcheck)', async () => {
    const r = await run('shellcheck', [INSTALL, READY]);
    expect(r.stdout).toBe('');
    expect(r.code).toBe(0);
  });
});

describe("the unit's commands with the shipped config", () => {
  it('ExecStart runs the broker with the profile, ExecStartPost waits for it, ExecReload reloads, SIGTERM stops it cleanly', async () => {
    const root = makeTempDir('nats-edge-service-');
    // The release's launcher, pointed at this checkout's bundle and Node.
    const prefix = join(root, 'opt');
    mkdirSync(join(prefix, 'bin'), { recursive: true });
    mkdirSync(join(prefix, 'deploy'));
    writeFileSync(join(prefix, 'bin', 'nats-edge'), `#!/bin/sh\nexec '${process.execPath}' '${NATS_EDGE_BUNDLE}' "$@"\n`);
    chmodSync(join(prefix, 'bin', 'nats-edge'), 0o755);
    cpSync(READY, join(prefix, 'deploy', 'wait-ready.sh'));
    // The shipped config with free ports instead of 4222 / 8222 / 1883 (other tests run beside).
    const etc = join(root, 'etc');
    mkdirSync(etc);
    const [client, http, mqtt] = [await freePort(), await freePort(), await freePort()];
    const shipped = readFileSync(join(REPO_ROOT, 'nats-edge.conf'), 'utf8');
    const conf = shipped
      .replace(/^listen: 0\.0\.0\.0:4222$/m, `listen: 127.0.0.1:${client}`)
      .replace(/^http: 8222$/m, `http: ${http}`)
      .replace(/^( {2}port:) 1883$/m, `$1 ${mqtt}`);
    expect(conf.split('\n').filter((l, i) => l !== shipped.split('\n')[i])).toHaveLength(3);
    writeFileSync(join(etc, 'nats-edge.conf'), conf);

    const unit = parseUnit(await render('generic-arm64-256mb', ['--prefix', prefix, '--config-dir', etc]));
    const state = join(root, 'var-lib-nats-edge'); // WorkingDirectory=%S/nats-edge
    const runtime = join(root, 'run-nats-edge'); // %t/nats-edge
    mkdirSync(state);
    mkdirSync(runtime);
    const argv = (line: string): string[] => line.replaceAll('%t/nats-edge', runtime).split(' ');
    const [cmd, ...args] = argv(one(unit, 'Service.ExecStart'));
    const nodeOptions = /^"NODE_OPTIONS=(.*)"$/.exec(one(unit, 'Service.Environment'))![1]!;

    const [postCmd, ...postArgs] = argv(one(unit, 'Service.ExecStartPost'));
    const ready = run(postCmd!, postArgs);
    const broker = spawn(cmd!, args, { cwd: state, env: { ...process.env, NODE_OPTIONS: nodeOptions }, stdio: ['ignore', 'pipe', 'pipe'] });
    let logs = '';
    const logged = (text: string): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => {
          if (!logs.includes(text)) return;
          broker.stderr.off('data', check);
          resolve();
        };
        broker.stderr.on('data', check);
        check();
      });
    broker.stderr.on('data', (c: Buffer) => (logs += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => broker.once('exit', resolve));
    try {
      const r = await ready;
      expect(r.stdout).toBe(`nats-edge is accepting connections on 127.0.0.1:${client}\n`);
      expect(r.code).toBe(0);
      expect(logs).toContain('Firmware profile: generic-arm64-256mb');
      // The relative store_dir of the shipped config lands in the state directory.
      expect(existsSync(join(state, 'data'))).toBe(true);

      // ExecReload=/bin/kill -HUP $MAINPID: the launcher exec'd, so its pid is the broker's.
      const reloaded = logged('Reloaded server configuration');
      const reload = one(unit, 'Service.ExecReload').replace('$MAINPID', String(broker.pid)).split(' ');
      expect((await run(reload[0]!, reload.slice(1))).code).toBe(0);
      await reloaded;
      expect(broker.exitCode).toBeNull();
    } finally {
      broker.kill(one(unit, 'Service.KillSignal') as NodeJS.Signals);
    }
    expect(await exited).toBe(0);
    expect(logs).toContain('Server Exiting..');
  });
});

describe('deploy/wait-ready.sh', () => {
  it('waits until the broker started with --ports_file_dir accepts connections', async () => {
    const dir = makeTempDir('nats-edge-run-');
    const port = await freePort();
    // The waiter starts first and must still be waiting when the broker comes up.
    const waiter = run('bash', [READY, dir, '20']);
    const broker = spawn(process.execPath, [NATS_EDGE_BUNDLE, '-p', String(port), '--ports_file_dir', dir], { stdio: 'ignore' });
    const brokerExit = new Promise<number | null>((resolve) => broker.once('exit', resolve));
    try {
      const r = await waiter;
      expect(r.stderr).toBe('');
      // The broker listens on 0.0.0.0 (its ports file says so): reached over loopback.
      expect(r.stdout).toBe(`nats-edge is accepting connections on 127.0.0.1:${port}\n`);
      expect(r.code).toBe(0);
      expect(broker.exitCode).toBeNull();
    } finally {
      broker.kill('SIGTERM');
      await brokerExit;
    }
  });

  it('fails after its timeout when nothing answers on the port of the ports file', async () => {
    const dir = makeTempDir('nats-edge-run-');
    const port = await freePort();
    writeFileSync(join(dir, 'nats-edge_12345.ports'), JSON.stringify({ nats: [`nats://127.0.0.1:${port}`] }));
    const r = await run('bash', [READY, dir, '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`nats-edge: not accepting connections on 127.0.0.1:${port} after 1s\n`);
  });

  it('fails after its timeout when no ports file appears', async () => {
    const dir = makeTempDir('nats-edge-run-');
    const r = await run('bash', [READY, dir, '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no ports file in ${dir} after 1s`);
  });
});
