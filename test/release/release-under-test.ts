/**
 * An unpacked release tarball and how to run what is in it: natively through its launcher when
 * this machine has the release's architecture, else its own Node runtime under qemu-user with
 * the Debian root from sysroot.ts. Also a broker process started from it, ready once its client
 * port answers INFO.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAYOUT, TARGETS, nativeTarget, releaseName, type ReleaseArch, type ReleaseTarget } from '../../scripts/release/targets.mjs';
import { freePort, probeInfo, REPO_ROOT } from '../helpers/servers.js';
import { prepareSysroot, type Sysroot } from './sysroot.js';

export const RELEASE_CACHE = join(REPO_ROOT, 'build', 'release-test');

export interface Command {
  cmd: string;
  args: string[];
}

/** The `key: value` lines at the top of a release's VERSIONS file. */
export function parseVersions(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '') break;
    const m = /^([a-z0-9-]+): (.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

export class ReleaseUnderTest {
  private constructor(
    readonly target: ReleaseTarget,
    readonly tarball: string,
    /** The release's top folder after unpacking. */
    readonly dir: string,
    private readonly tmp: string,
    /** null when the release runs natively here. */
    readonly sysroot: Sysroot | null,
    readonly versions: Record<string, string>,
  ) {}

  /** Unpacks build/nats-edge-VERSION-linux-ARCH.tar.gz into a temp folder (and prepares qemu's root). */
  static open(arch: ReleaseArch): ReleaseUnderTest {
    const target = TARGETS[arch];
    const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const name = releaseName(version, arch);
    const tarball = join(REPO_ROOT, 'build', `${name}.tar.gz`);
    if (!existsSync(tarball)) throw new Error(`${tarball} is missing: run \`npm run release -- --arch ${arch}\` first`);
    const tmp = mkdtempSync(join(tmpdir(), `nats-edge-release-${arch}-`));
    execFileSync('tar', ['-xzf', tarball, '-C', tmp]);
    const dir = join(tmp, name);
    let sysroot: Sysroot | null = null;
    if (nativeTarget() !== arch) {
      if (target.qemu === null) throw new Error(`no emulator for ${arch} on a ${process.arch} machine`);
      sysroot = prepareSysroot(target, RELEASE_CACHE);
    }
    const versions = parseVersions(readFileSync(join(dir, LAYOUT.versions), 'utf8'));
    return new ReleaseUnderTest(target, tarball, dir, tmp, sysroot, versions);
  }

  path(rel: string): string {
    return join(this.dir, rel);
  }

  /** The release's node with `args`: directly, or under qemu with the Debian root. */
  node(args: string[]): Command {
    const node = this.path(LAYOUT.node);
    if (this.sysroot === null) return { cmd: node, args };
    return { cmd: this.target.qemu ?? 'false', args: ['-L', this.sysroot.root, node, ...args] };
  }

  /**
   * The broker with `args`. Natively through bin/nats-edge; under qemu the launcher cannot be
   * used (there is no binfmt_misc here to hand its exec of an ARM binary to qemu), so the test
   * runs what the launcher would exec: the release's node on the release's bundle.
   */
  broker(args: string[]): Command {
    if (this.sysroot === null) return { cmd: this.path(LAYOUT.launcher), args };
    return this.node([this.path(LAYOUT.bundle), ...args]);
  }

  /** Runs the release's node and returns its stdout. */
  runNode(args: string[], timeoutMs: number): string {
    const c = this.node(args);
    return execFileSync(c.cmd, c.args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  dispose(): void {
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** A broker process started from a release. */
export class ReleaseBroker {
  private output = '';
  private exitCode: number | null | undefined = undefined;
  private readonly exited: Promise<number | null>;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly httpPort: number,
  ) {
    const append = (chunk: Buffer): void => {
      this.output += chunk.toString('utf8');
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    this.exited = new Promise((resolveExit) => {
      child.once('exit', (code) => {
        this.exitCode = code;
        resolveExit(code);
      });
      child.once('error', (err) => {
        append(Buffer.from(`spawn error: ${err.message}\n`));
        this.exitCode = null;
        resolveExit(null);
      });
    });
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  logs(): string {
    return this.output;
  }

  /**
   * Starts the broker on free ports with JetStream in storeDir and resolves once the client
   * port answers INFO; `startedMs` is how long that took (emulated Node starts slowly).
   */
  static async start(release: ReleaseUnderTest, storeDir: string, readyTimeoutMs: number): Promise<{ broker: ReleaseBroker; startedMs: number }> {
    const port = await freePort();
    const httpPort = await freePort();
    const c = release.broker(['-a', '127.0.0.1', '-p', String(port), '-m', String(httpPort), '-js', '-sd', storeDir]);
    const t0 = Date.now();
    const broker = new ReleaseBroker(spawn(c.cmd, c.args, { stdio: ['ignore', 'pipe', 'pipe'] }), port, httpPort);
    const deadline = t0 + readyTimeoutMs;
    let delay = 50;
    while (Date.now() < deadline) {
      if (broker.exitCode !== undefined) {
        throw new Error(`the release's broker exited before it was ready (code ${String(broker.exitCode)}):\n${broker.output}`);
      }
      if (await probeInfo(port, 2000)) return { broker, startedMs: Date.now() - t0 };
      // The probe is the event waited for; the pause only spaces out the retries.
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 500);
    }
    broker.child.kill('SIGKILL');
    throw new Error(`the release's broker was not ready within ${readyTimeoutMs} ms:\n${broker.output}`);
  }

  /** Sends `signal`, waits for the exit (SIGKILL after killAfterMs) and returns the exit code. */
  async stop(signal: NodeJS.Signals, killAfterMs: number): Promise<number | null> {
    if (this.exitCode !== undefined) return this.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), killAfterMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
