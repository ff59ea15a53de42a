// What a release's ELF files (the Node runtime, better-sqlite3's addon) need from the device:
// the CPU they are built for and the newest glibc / libstdc++ symbol versions they bind to.
// Pure functions over bytes and objdump text, so the tests can check them on real files.
import { openSync, readSync, closeSync } from 'node:fs';

/** e_machine values of the architectures a release is built for. */
export const EM_ARM = 40;
export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;

/**
 * The class (32/64) and e_machine of an ELF file's header, or null when the bytes are not ELF.
 * Only little-endian files are expected here (arm, aarch64, x86-64 on Linux).
 */
export function elfHeader(bytes) {
  if (bytes.length < 20 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) return null;
  const elfClass = bytes[4] === 1 ? 32 : bytes[4] === 2 ? 64 : 0;
  if (elfClass === 0 || bytes[5] !== 1) return null;
  return { elfClass, machine: bytes[18] | (bytes[19] << 8) };
}

/** elfHeader() of a file on disk (reads its first 20 bytes only). */
export function readElfHeader(path) {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(20);
    const n = readSync(fd, head, 0, 20, 0);
    return elfHeader(head.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

/** Orders dotted version strings numerically ('2.9' < '2.34'); negative, zero or positive. */
export function compareVersions(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * The newest GLIBC_ and GLIBCXX_ versions in the "Version References" part of `objdump -p`
 * (the versions the file requires, not those it defines). A version a file requires is one
 * the device's libc.so.6 / libstdc++.so.6 must export, or the loader refuses the file.
 * null where the file requires none of that family (e.g. libstdc++ linked statically).
 */
export function requiredSymbolVersions(objdumpPrivateHeaders) {
  const start = objdumpPrivateHeaders.indexOf('Version References:');
  let glibc = null;
  let glibcxx = null;
  if (start < 0) return { glibc, glibcxx };
  const lines = objdumpPrivateHeaders.slice(start).split('\n').slice(1);
  for (const line of lines) {
    // The section is indented; the first line at column 0 ends it.
    if (line.length > 0 && !/^\s/.test(line)) break;
    const m = /\b(GLIBCXX|GLIBC)_(\d+(?:\.\d+)*)\s*$/.exec(line);
    if (m === null) continue;
    if (m[1] === 'GLIBC') {
      if (glibc === null || compareVersions(m[2], glibc) > 0) glibc = m[2];
    } else if (glibcxx === null || compareVersions(m[2], glibcxx) > 0) {
      glibcxx = m[2];
    }
  }
  return { glibc, glibcxx };
}

/** The shared libraries (DT_NEEDED) in `objdump -p` output, in the file's order. */
export function neededLibraries(objdumpPrivateHeaders) {
  return [...objdumpPrivateHeaders.matchAll(/^\s*NEEDED\s+(\S+)\s*$/gm)].map((m) => m[1]);
}

/** The Debian package that provides each shared library a release loads from the system. */
const DEBIAN_PACKAGE_OF = Object.freeze({
  'libc.so.6': 'libc6',
  'libm.so.6': 'libc6',
  'libdl.so.2': 'libc6',
  'libpthread.so.0': 'libc6',
  'ld-linux-aarch64.so.1': 'libc6',
  'ld-linux-armhf.so.3': 'libc6',
  'ld-linux-x86-64.so.2': 'libc6',
  'libstdc++.so.6': 'libstdc++6',
  'libgcc_s.so.1': 'libgcc-s1',
  'libatomic.so.1': 'libatomic1',
});

/** Debian packages for a list of sonames, sorted, once each (an unknown soname stands for itself). */
export function debianPackagesFor(libraries) {
  return [...new Set(libraries.map((l) => DEBIAN_PACKAGE_OF[l] ?? l))].sort();
}

/** The newer of two requirement sets, family by family. */
export function newerRequirements(a, b) {
  const pick = (x, y) => (x === null ? y : y === null ? x : compareVersions(x, y) >= 0 ? x : y);
  return { glibc: pick(a.glibc, b.glibc), glibcxx: pick(a.glibcxx, b.glibcxx) };
}

/**
 * Debian-based images a device may run, with their glibc and the libstdc++ (GCC) they ship.
 * Raspberry Pi OS releases follow Debian's: spec/boards.md section 3.
 */
export const KNOWN_SYSTEMS = Object.freeze([
  { name: 'Raspberry Pi OS / Debian 11 bullseye', glibc: '2.31', glibcxx: '3.4.28' },
  { name: 'Raspberry Pi OS / Debian 12 bookworm', glibc: '2.36', glibcxx: '3.4.30' },
  { name: 'Raspberry Pi OS / Debian 13 trixie', glibc: '2.41', glibcxx: '3.4.33' },
]);

/** For each known system: whether it satisfies the requirements, and if not, why. */
export function systemsVerdict(required) {
  return KNOWN_SYSTEMS.map((s) => {
    const missing = [];
    if (required.glibc !== null && compareVersions(s.glibc, required.glibc) < 0) missing.push(`glibc ${s.glibc} < ${required.glibc}`);
    if (required.glibcxx !== null && compareVersions(s.glibcxx, required.glibcxx) < 0) {
      missing.push(`GLIBCXX ${s.glibcxx} < ${required.glibcxx}`);
    }
    return { name: s.name, ok: missing.length === 0, missing };
  });
}
