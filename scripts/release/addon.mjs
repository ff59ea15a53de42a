// better-sqlite3's native addon for a release: compiled by node-gyp from the sources npm
// installed in node_modules/better-sqlite3, with Debian's cross compiler for the target, against
// the headers of the Node runtime the release ships (an addon is tied to one NODE_MODULE_VERSION).
// The build happens in a copy, so the addon this machine's own Node loads is never touched.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { objectWrapDonor, overlayNodedir } from './object-wrap.mjs';

/** The triple-prefixed binutils/GCC tool, e.g. aarch64-linux-gnu-g++. */
export function tool(triple, name) {
  return `${triple}-${name}`;
}

function firstLine(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0].trim();
  } catch {
    return null;
  }
}

/** Fails with the apt-get line to run when the target's cross toolchain is not installed. */
export function checkToolchain(target) {
  const missing = ['gcc', 'g++', 'strip', 'objdump'].map((t) => tool(target.triple, t)).filter((t) => firstLine(t, ['--version']) === null);
  if (missing.length > 0) {
    throw new Error(
      `missing ${missing.join(', ')}: install the toolchain with\n  apt-get install -y --no-install-recommends ${target.aptToolchain.join(' ')}`,
    );
  }
  return firstLine(tool(target.triple, 'g++'), ['--version']);
}

/**
 * node-gyp's entry script: the one npm itself runs (npm sets npm_config_node_gyp for scripts),
 * else the one bundled with the npm beside this Node, else the global npm's.
 */
export function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  try {
    const root = execFileSync('npm', ['root', '-g'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    candidates.push(join(root, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  } catch {
    // no global npm: the candidates above are all there is
  }
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) throw new Error(`node-gyp not found (looked at ${candidates.join(', ')})`);
  return found;
}

/**
 * Fails when an addon calls node::RemoveEnvironmentCleanupHook: the mark of ObjectWrap's
 * cleanup hooks (object-wrap.mjs), which abort the process when a wrapped object is collected.
 */
export function checkNoObjectWrapHooks(target, file) {
  const symbols = execFileSync(tool(target.triple, 'objdump'), ['-T', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (/RemoveEnvironmentCleanupHook/.test(symbols)) {
    throw new Error(`${file} was compiled with node::ObjectWrap's cleanup hooks (it imports node::RemoveEnvironmentCleanupHook)`);
  }
}

/** SQLITE_VERSION of the amalgamation better-sqlite3 bundles. */
export function bundledSqliteVersion(betterSqlite3Dir) {
  const h = readFileSync(join(betterSqlite3Dir, 'deps', 'sqlite3', 'sqlite3.h'), 'utf8');
  const m = /#define\s+SQLITE_VERSION\s+"([^"]+)"/.exec(h);
  return m === null ? 'unknown' : m[1];
}

/**
 * Builds (or takes from cacheDir, when every input is the same) better_sqlite3.node for the
 * target and runtime; returns the stripped addon's path and what it was built with.
 */
export function buildAddon({ target, runtime, repoRoot, workDir, cacheDir, runtimeCacheDir, rebuild, log }) {
  const source = join(repoRoot, 'node_modules', 'better-sqlite3');
  const pkg = JSON.parse(readFileSync(join(source, 'package.json'), 'utf8'));
  const compiler = checkToolchain(target);
  const nodeGyp = findNodeGyp();
  const gypVersion = firstLine(process.execPath, [nodeGyp, '--version']) ?? 'unknown';
  const donor = objectWrapDonor(runtime);
  const inputs = {
    betterSqlite3: pkg.version,
    node: runtime.version,
    runtimeIntegrity: runtime.integrity,
    arch: target.arch,
    compiler,
    nodeGyp: gypVersion,
    objectWrapHeader: donor === null ? null : `${donor.npmPackage}@${donor.version}`,
  };
  const info = { ...inputs, sqlite: bundledSqliteVersion(source) };
  const cached = join(cacheDir, `better_sqlite3-${pkg.version}-node-${runtime.version}-${target.arch}.node`);
  const stamp = `${cached}.json`;
  if (!rebuild && existsSync(cached) && existsSync(stamp) && readFileSync(stamp, 'utf8') === JSON.stringify(inputs)) {
    log(`better-sqlite3 ${pkg.version} addon for ${target.arch} / Node ${runtime.version}: cached`);
    return { file: cached, ...info };
  }

  rmSync(workDir, { recursive: true, force: true });
  const build = join(workDir, 'better-sqlite3');
  mkdirSync(build, { recursive: true });
  for (const part of ['binding.gyp', 'package.json', 'src', 'deps']) cpSync(join(source, part), join(build, part), { recursive: true });
  const nodedir = donor === null ? runtime.dir : overlayNodedir(runtime, donor, workDir, runtimeCacheDir, log);

  const env = {
    ...process.env,
    CC: tool(target.triple, 'gcc'),
    CXX: tool(target.triple, 'g++'),
    LINK: tool(target.triple, 'g++'),
    AR: tool(target.triple, 'ar'),
  };
  // npm passes its own config to scripts as npm_config_*; node-gyp would take a stray one
  // (npm_config_target, _arch, _nodedir) over nothing, so only the flags below may decide.
  for (const k of Object.keys(env)) if (/^npm_config_(target|arch|nodedir|target_arch|devdir|dist_url|runtime)$/i.test(k)) delete env[k];
  const args = [
    nodeGyp,
    'rebuild',
    '--release',
    `--target=${runtime.version}`,
    `--nodedir=${nodedir}`,
    `--arch=${target.gypArch}`,
    `--jobs=${Math.max(1, availableParallelism())}`,
  ];
  const logFile = join(workDir, 'node-gyp.log');
  log(`building better-sqlite3 ${pkg.version} for ${target.arch} with ${env.CXX} against Node ${runtime.version} (a few minutes; log: ${logFile})`);
  const started = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: build, env, encoding: 'utf8', maxBuffer: 256 << 20 });
  writeFileSync(logFile, `${r.stdout ?? ''}\n${r.stderr ?? ''}`);
  if (r.status !== 0) {
    const tail = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
    throw new Error(`node-gyp failed for ${target.arch} (exit ${String(r.status)}):\n${tail}\nfull log: ${logFile}`);
  }
  const built = join(build, 'build', 'Release', 'better_sqlite3.node');
  mkdirSync(cacheDir, { recursive: true });
  copyFileSync(built, cached);
  // Symbols are for debugging on this machine; the device only needs the dynamic ones.
  execFileSync(tool(target.triple, 'strip'), ['--strip-unneeded', cached], { stdio: 'inherit' });
  checkNoObjectWrapHooks(target, cached);
  writeFileSync(stamp, JSON.stringify(inputs));
  log(`built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return { file: cached, ...info };
}
