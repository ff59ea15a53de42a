#!/usr/bin/env node
// Builds a release for one device architecture:
//
//   npm run release -- --arch arm64|armv7|x64 [--node VERSION|RANGE] [--rebuild-addon]
//
// writes build/nats-edge-VERSION-linux-ARCH.tar.gz (and .sha256): the bundle, better-sqlite3
// with its addon cross-compiled for ARCH against the Node runtime the release carries, that
// runtime (npm registry package node-linux-ARCH), the firmware profiles, the systemd unit and
// install script, a launcher, VERSIONS (runtime, glibc floor) and SHA256SUMS.
// Downloads and addon builds are cached in build/release-cache. docs/release.md has the details.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddon, checkNoObjectWrapHooks, tool } from './release/addon.mjs';
import { debianPackagesFor, neededLibraries, newerRequirements, readElfHeader, requiredSymbolVersions, systemsVerdict } from './release/elf.mjs';
import { stageRelease, tarball } from './release/pack.mjs';
import { fetchRuntime, resolveNodeVersion } from './release/runtime.mjs';
import { LAYOUT, OPTIONAL_FILES, TARGETS, nativeTarget, releaseName } from './release/targets.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BUILD = join(ROOT, 'build');
const CACHE = join(BUILD, 'release-cache');
const WORK = join(BUILD, 'release-work');

const USAGE = `Usage: npm run release -- --arch ${Object.keys(TARGETS).join('|')} [--node VERSION|RANGE] [--rebuild-addon]

  --arch ARCH        device architecture (required)
  --node SPEC        Node runtime: an exact version, or a range such as 24 for the newest 24.x
                     on the npm registry (default: ${Object.values(TARGETS).map((t) => `${t.arch} ${t.node}`).join(', ')})
  --rebuild-addon    compile better-sqlite3 again even when the cached addon matches
`;

function parseArgs(argv) {
  const opts = { arch: null, node: null, rebuildAddon: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--arch' || a.startsWith('--arch=')) opts.arch = value();
    else if (a === '--node' || a.startsWith('--node=')) opts.node = value();
    else if (a === '--rebuild-addon') opts.rebuildAddon = true;
    else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  if (opts.arch === null) throw new Error('--arch is required');
  if (!Object.hasOwn(TARGETS, opts.arch)) throw new Error(`unknown --arch ${opts.arch}`);
  return opts;
}

const log = (msg) => console.log(`release: ${msg}`);

function git(args) {
  try {
    return execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

/** The commit and its time (SOURCE_DATE_EPOCH wins), so the tarball's timestamps follow the source. */
function sourceInfo() {
  const commit = git(['rev-parse', '--short=12', 'HEAD']) || 'unknown';
  const dirty = git(['status', '--porcelain', '--untracked-files=no']) !== '';
  const envEpoch = Number(process.env.SOURCE_DATE_EPOCH);
  const commitEpoch = Number(git(['log', '-1', '--format=%ct']));
  const epoch = Number.isInteger(envEpoch) && envEpoch > 0 ? envEpoch : commitEpoch > 0 ? commitEpoch : Math.floor(Date.now() / 1000);
  return { commit: dirty ? `${commit}+local-changes` : commit, epoch };
}

/** What an ELF file needs from the device: symbol versions and shared libraries. */
function inspect(target, file) {
  const text = execFileSync(tool(target.triple, 'objdump'), ['-p', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { ...requiredSymbolVersions(text), libraries: neededLibraries(text) };
}

function checkMachine(target, file, what) {
  const h = readElfHeader(file);
  if (h === null || h.machine !== target.elfMachine || h.elfClass !== target.elfClass) {
    throw new Error(`${what} (${file}) is not a ${target.elfClass}-bit ELF for ${target.arch}: ${JSON.stringify(h)}`);
  }
}

const orNone = (v) => v ?? 'none';

/** Words of `text` in lines of at most `width` characters. */
function wrap(text, width) {
  const out = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') out.push(line);
  return out;
}

function versionsText({ version, target, runtime, addon, nodeReq, addonReq, source }) {
  const release = newerRequirements(nodeReq, addonReq);
  const verdict = systemsVerdict(release);
  const libraries = [...new Set([...nodeReq.libraries, ...addonReq.libraries])].sort();
  const packages = debianPackagesFor(libraries);
  const lines = [
    `nats-edge ${version} for linux-${target.arch}`,
    `commit: ${source.commit} (${new Date(source.epoch * 1000).toISOString()})`,
    `node: ${runtime.version}`,
    `node-package: ${target.npmPackage}@${runtime.version} from the npm registry (${runtime.integrity})`,
    `node-module-version: ${runtime.moduleVersion}`,
    `node-glibc-floor: ${orNone(nodeReq.glibc)}`,
    `node-glibcxx-floor: ${orNone(nodeReq.glibcxx)}`,
    `better-sqlite3: ${addon.betterSqlite3} (SQLite ${addon.sqlite})`,
    `addon-built-with: ${addon.compiler}, node-gyp ${addon.nodeGyp}, against the headers of Node ${runtime.version}`,
    ...(addon.objectWrapHeader === null
      ? []
      : [`addon-object-wrap-header: ${addon.objectWrapHeader} (without Node 24.19+'s ObjectWrap cleanup hooks; docs/release.md)`]),
    `addon-glibc-floor: ${orNone(addonReq.glibc)}`,
    `addon-glibcxx-floor: ${orNone(addonReq.glibcxx)}`,
    `release-glibc-floor: ${orNone(release.glibc)}`,
    `release-glibcxx-floor: ${orNone(release.glibcxx)}`,
    `system-libraries: ${libraries.join(' ')}`,
    `system-packages: ${packages.join(' ')}`,
    '',
    'The device needs no Node.js of its own: bin/nats-edge runs the broker with node/bin/node. It needs a',
    `glibc of at least ${orNone(release.glibc)} and a libstdc++ with GLIBCXX_${orNone(release.glibcxx)} (the floors are the newest`,
    'symbol versions node/bin/node and better_sqlite3.node require, read with objdump -p):',
    ...verdict.map((v) => `  ${v.ok ? 'yes' : 'no '}  ${v.name}${v.ok ? '' : ` (${v.missing.join(', ')})`}`),
    `The shared libraries they load come from the Debian packages ${packages.join(', ')}.`,
  ];
  if (packages.includes('libatomic1')) {
    lines.push('libatomic1 is not part of every minimal image: apt-get install libatomic1 where node fails to find libatomic.so.1.');
  }
  if (target.note !== '') lines.push('', ...wrap(`Note: ${target.note}`, 96));
  return `${lines.join('\n')}\n`;
}

function readmeText({ version, target, runtime, release, missing }) {
  const has = (p) => !missing.includes(p);
  const lines = [
    `nats-edge ${version} for linux-${target.arch}, with Node ${runtime.version}`,
    '',
    'Check the files:        sha256sum -c SHA256SUMS',
    ...(has('scripts/install.sh')
      ? ['Install as a service:   sudo ./scripts/install.sh               (Debian / Raspberry Pi OS with systemd)']
      : []),
    `Run by hand:            ./${LAYOUT.launcher} -c ${LAYOUT.config}        (NATS 4222, MQTT 1883, monitoring 8222)`,
    `                        ./${LAYOUT.launcher} --profile rpi-4 -js     (limits of a firmware profile)`,
    '',
    `Needs glibc >= ${orNone(release.glibc)}: see VERSIONS for the runtime, the addon and the systems it runs on.`,
    '',
    'Layout:',
    `  ${LAYOUT.launcher.padEnd(28)} launcher (sh): runs the bundle with the runtime below`,
    `  ${LAYOUT.bundle.padEnd(28)} the broker, one bundled file (+ .map)`,
    `  ${LAYOUT.nodeModules.padEnd(28)} better-sqlite3 with its native addon`,
    `  ${LAYOUT.node.padEnd(28)} Node.js ${runtime.version} (${target.npmPackage}; node/LICENSE)`,
    `  ${(LAYOUT.profiles + '/').padEnd(28)} firmware profiles (--profile NAME)`,
    `  ${LAYOUT.config.padEnd(28)} the shipped edge configuration`,
    ...(has('deploy/nats-edge.service') ? [`  ${'deploy/'.padEnd(28)} systemd unit template and readiness check`] : []),
    ...(has('scripts/install.sh') ? [`  ${'scripts/install.sh'.padEnd(28)} installer`] : []),
  ];
  return `${lines.join('\n')}\n`;
}

/** On a machine that runs the target natively: the shipped runtime loads the shipped addon. */
function smokeTest(stageDir) {
  const script = `const D = require(${JSON.stringify(join(stageDir, LAYOUT.nodeModules, 'better-sqlite3'))});
    const db = new D(':memory:'); console.log(process.version, db.prepare('select sqlite_version() v').get().v);`;
  const out = execFileSync(join(stageDir, LAYOUT.node), ['-e', script], { encoding: 'utf8' }).trim();
  const launcher = execFileSync(join(stageDir, LAYOUT.launcher), ['--version'], { encoding: 'utf8' }).trim();
  log(`smoke test: node ${out}; ${launcher}`);
}

function mib(bytes) {
  return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const target = TARGETS[opts.arch];
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const started = Date.now();

  const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--if-stale'], { stdio: 'inherit' });
  if (built.status !== 0) throw new Error('bundle build failed');

  const nodeVersion = resolveNodeVersion(target.npmPackage, opts.node ?? target.node, ROOT);
  const runtime = fetchRuntime(target.npmPackage, nodeVersion, join(CACHE, 'runtime'), log);
  checkMachine(target, join(runtime.dir, 'bin', 'node'), `${target.npmPackage}'s node`);
  log(`runtime: ${target.npmPackage}@${runtime.version} (NODE_MODULE_VERSION ${runtime.moduleVersion})`);

  const addon = buildAddon({
    target,
    runtime,
    repoRoot: ROOT,
    workDir: join(WORK, `addon-${target.arch}`),
    cacheDir: join(CACHE, 'addon'),
    runtimeCacheDir: join(CACHE, 'runtime'),
    rebuild: opts.rebuildAddon,
    log,
  });
  checkMachine(target, addon.file, 'better_sqlite3.node');
  checkNoObjectWrapHooks(target, addon.file);
  const nodeReq = inspect(target, join(runtime.dir, 'bin', 'node'));
  const addonReq = inspect(target, addon.file);
  const release = newerRequirements(nodeReq, addonReq);

  const version = pkg.version;
  const name = releaseName(version, target.arch);
  const stageDir = join(WORK, name);
  rmSync(stageDir, { recursive: true, force: true });
  const source = sourceInfo();
  const missingNow = OPTIONAL_FILES.filter((f) => {
    try {
      return !statSync(join(ROOT, f.path)).isFile();
    } catch {
      return true;
    }
  }).map((f) => f.path);
  const { missing, modules } = stageRelease({
    repoRoot: ROOT,
    version,
    stageDir,
    runtime,
    addonFile: addon.file,
    optionalFiles: OPTIONAL_FILES,
    versionsText: versionsText({ version, target, runtime, addon, nodeReq, addonReq, source }),
    readmeText: readmeText({ version, target, runtime, release, missing: missingNow }),
  });
  for (const m of missing) log(`warning: ${m} does not exist yet: the release goes without it`);
  if (nativeTarget() === target.arch) smokeTest(stageDir);

  const out = join(BUILD, `${name}.tar.gz`);
  log(`packing ${relative(ROOT, out)}`);
  const { bytes, sha256 } = tarball(stageDir, out, source.epoch);
  const size = (rel) => mib(statSync(join(stageDir, rel)).size);
  log(`better-sqlite3 runtime modules: ${modules.join(', ')}`);
  log(`node ${runtime.version} ${size(LAYOUT.node)}, addon ${size(join(LAYOUT.nodeModules, 'better-sqlite3/build/Release/better_sqlite3.node'))}, bundle ${size(LAYOUT.bundle)}`);
  log(`glibc floor: node ${orNone(nodeReq.glibc)}, addon ${orNone(addonReq.glibc)} (GLIBCXX ${orNone(release.glibcxx)})`);
  log(`wrote ${relative(ROOT, out)} (${mib(bytes)}, sha256 ${sha256}) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

try {
  main();
} catch (err) {
  console.error(`release: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
