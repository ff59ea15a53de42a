/**
 * A root file system for qemu-user: Debian's glibc, libstdc++ and libgcc for the release's
 * architecture, taken from Debian's own packages (apt-get download) and unpacked into a folder
 * of the test's (dpkg-deb -x); nothing is installed on this machine. qemu's -L points at it,
 * so the emulated program's loader and libraries come from there.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ReleaseTarget } from '../../scripts/release/targets.mjs';

export interface Sysroot {
  /** The folder to give qemu as -L. */
  root: string;
  /** package=version of each unpacked package. */
  packages: string[];
}

function run(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Downloads and unpacks target.sysrootPackages under cacheDir once; later calls reuse them. */
export function prepareSysroot(target: ReleaseTarget, cacheDir: string): Sysroot {
  const dir = join(cacheDir, `sysroot-${target.arch}`);
  const stampFile = join(dir, 'packages.txt');
  // The cross packages install their files under /usr/<triple>: that folder is the root the
  // emulated loader sees (lib/ld-linux-*.so, lib/libc.so.6, lib/libstdc++.so.6).
  const root = join(dir, 'root', 'usr', target.triple);
  if (existsSync(stampFile)) {
    const packages = readFileSync(stampFile, 'utf8').trim().split('\n');
    if (target.sysrootPackages.every((p) => packages.some((line) => line.startsWith(`${p}=`)))) return { root, packages };
  }
  rmSync(dir, { recursive: true, force: true });
  const debs = join(dir, 'debs');
  mkdirSync(debs, { recursive: true });
  try {
    run('apt-get', ['download', ...target.sysrootPackages], debs);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err);
    throw new Error(`apt-get download ${target.sysrootPackages.join(' ')} failed (run apt-get update first?):\n${stderr}`);
  }
  const packages: string[] = [];
  for (const deb of readdirSync(debs).filter((f) => f.endsWith('.deb')).sort()) {
    const file = join(debs, deb);
    run('dpkg-deb', ['-x', file, join(dir, 'root')]);
    packages.push(`${run('dpkg-deb', ['-f', file, 'Package']).trim()}=${run('dpkg-deb', ['-f', file, 'Version']).trim()}`);
  }
  const loader = readdirSync(join(root, 'lib')).find((f) => f.startsWith('ld-linux'));
  if (loader === undefined) throw new Error(`no ld-linux loader in ${root}/lib after unpacking ${packages.join(', ')}`);
  writeFileSync(stampFile, `${packages.join('\n')}\n`);
  return { root, packages };
}
