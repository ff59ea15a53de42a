// The Node runtime a release carries: the npm registry's node-linux-<arch> package (the binary
// and Node's C++ headers, which better-sqlite3's addon is compiled against), fetched with the
// ordinary npm client into a cache folder and checked against the registry's integrity.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compareVersions } from './elf.mjs';

const EXACT = /^\d+\.\d+\.\d+$/;

function npm(args, cwd) {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

/** An exact version as is; a range ('24', '24.x') becomes the newest the registry has for it. */
export function resolveNodeVersion(npmPackage, spec, cwd) {
  if (EXACT.test(spec)) return spec;
  const out = npm(['view', `${npmPackage}@${spec}`, 'version', '--json'], cwd).trim();
  if (out === '') throw new Error(`the npm registry has no ${npmPackage} matching ${spec}`);
  const found = JSON.parse(out);
  const list = (Array.isArray(found) ? found : [found]).filter((v) => EXACT.test(v));
  if (list.length === 0) throw new Error(`the npm registry has no ${npmPackage} matching ${spec}`);
  return list.sort(compareVersions).at(-1);
}

function sri512(file) {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/** NODE_{MAJOR,MINOR,PATCH}_VERSION and NODE_MODULE_VERSION from a runtime's node_version.h. */
export function readNodeVersionHeader(text) {
  const num = (name) => {
    const m = new RegExp(`#define\\s+${name}\\s+(\\d+)`).exec(text);
    if (m === null) throw new Error(`node_version.h has no ${name}`);
    return Number(m[1]);
  };
  return {
    version: `${num('NODE_MAJOR_VERSION')}.${num('NODE_MINOR_VERSION')}.${num('NODE_PATCH_VERSION')}`,
    moduleVersion: num('NODE_MODULE_VERSION'),
  };
}

/**
 * npmPackage@version's tarball in cacheDir: fetched with `npm pack` unless a copy that still
 * matches its recorded integrity is there. Returns the tarball's path and integrity.
 */
export function packFromRegistry(npmPackage, version, cacheDir, log) {
  mkdirSync(cacheDir, { recursive: true });
  const base = `${npmPackage}-${version}`;
  const tarball = join(cacheDir, `${base}.tgz`);
  const meta = join(cacheDir, `${base}.json`);
  if (existsSync(tarball) && existsSync(meta)) {
    const { integrity } = JSON.parse(readFileSync(meta, 'utf8'));
    if (sri512(tarball) === integrity) return { tarball, integrity };
    log(`cached ${base}.tgz does not match its integrity: fetching again`);
  }
  rmSync(tarball, { force: true });
  log(`npm pack ${npmPackage}@${version} (about 40-55 MB)`);
  // npm checks the download against the registry's integrity before it writes the file.
  const packed = JSON.parse(npm(['pack', `${npmPackage}@${version}`, '--pack-destination', cacheDir, '--json'], cacheDir));
  const entry = packed[0];
  if (entry === undefined || entry.version !== version) throw new Error(`npm pack ${npmPackage}@${version}: unexpected answer`);
  const got = join(cacheDir, entry.filename);
  if (got !== tarball) renameSync(got, tarball);
  const integrity = entry.integrity;
  if (sri512(tarball) !== integrity) throw new Error(`${tarball} does not match the integrity npm reported`);
  writeFileSync(meta, JSON.stringify({ package: npmPackage, version, integrity }, null, 2) + '\n');
  return { tarball, integrity };
}

/** One file of a registry tarball (path inside it without the leading package/), as text. */
export function fileFromPackage(npmPackage, version, path, cacheDir, log) {
  const { tarball, integrity } = packFromRegistry(npmPackage, version, cacheDir, log);
  const text = execFileSync('tar', ['-xzOf', tarball, `package/${path}`], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { text, integrity };
}

/**
 * Fetches (or finds in cacheDir) npmPackage@version and unpacks it. Returns the unpacked folder
 * (bin/node, include/node/...), the package's integrity and the module version of its headers.
 */
export function fetchRuntime(npmPackage, version, cacheDir, log) {
  const { tarball, integrity } = packFromRegistry(npmPackage, version, cacheDir, log);
  const dir = join(cacheDir, `${npmPackage}-${version}`);
  const stamp = join(dir, '.unpacked-from');
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== integrity) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    execFileSync('tar', ['-xzf', tarball, '-C', dir, '--strip-components=1', '--no-same-owner'], { stdio: 'inherit' });
    writeFileSync(stamp, integrity);
  }
  const header = readNodeVersionHeader(readFileSync(join(dir, 'include', 'node', 'node_version.h'), 'utf8'));
  if (header.version !== version) throw new Error(`${npmPackage}@${version} holds the headers of Node ${header.version}`);
  if (!existsSync(join(dir, 'bin', 'node'))) throw new Error(`${npmPackage}@${version} has no bin/node`);
  return { dir, version, integrity, moduleVersion: header.moduleVersion };
}
