// Lays out an unpacked release folder and turns it into the tarball: the launcher, the bundle
// with better-sqlite3 (JS, addon, runtime dependencies) beside it, the Node runtime, the
// profiles and deploy files, the VERSIONS / README texts and SHA256SUMS.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { LAYOUT } from './targets.mjs';

/** Dependencies better-sqlite3 lists that only its npm install step uses (prebuilt download). */
const INSTALL_ONLY = new Set(['prebuild-install']);

/**
 * The launcher: runs the bundle with the runtime shipped beside it, whatever Node the system
 * has (or none). readlink -f so that a symlink to it (/usr/local/bin/nats-edge) still finds
 * the release. Arguments go to the broker; Node's own flags (the profile's heap limits) come
 * from NODE_OPTIONS, which the systemd unit sets. Under systemd (CacheDirectory=) it points
 * Node's compile cache there: parsing and compiling the bundle is about a third of a cold start,
 * and Node >= 22.1 then reuses the compiled code; older runtimes ignore the variable.
 */
export const LAUNCHER = `#!/bin/sh
# nats-edge launcher: runs the broker with the Node runtime of this release.
# Broker flags are nats-server's (nats-edge -h); Node flags go in NODE_OPTIONS.
set -e
# Compiled code of the bundle kept between starts (Node >= 22.1; NODE_COMPILE_CACHE set by hand wins).
if [ -z "\${NODE_COMPILE_CACHE:-}" ] && [ -n "\${CACHE_DIRECTORY:-}" ]; then
  NODE_COMPILE_CACHE="\${CACHE_DIRECTORY%%:*}/compile-cache"
  export NODE_COMPILE_CACHE
fi
self=$(readlink -f "$0")
root=$(dirname "$(dirname "$self")")
exec "$root/${LAYOUT.node}" "$root/${LAYOUT.bundle}" "$@"
`;

function packageDir(fromDir, name) {
  return dirname(createRequire(join(fromDir, 'package.json')).resolve(`${name}/package.json`));
}

/** A package's runtime files: everything but tests, docs sources and build leftovers. */
function copyPackage(src, dest) {
  cpSync(src, dest, {
    recursive: true,
    filter: (p) => {
      const rel = relative(src, p);
      // Dotfiles (.npmignore, .travis.yml) and build inputs are of no use on the device.
      return !/^(test|tests|node_modules|build|deps|src|docs)(\/|$)/.test(rel) && !/(^|\/)\./.test(rel) && !rel.endsWith('.gyp');
    },
  });
}

/** better-sqlite3 as the bundle requires it: lib/, package.json, the addon, its runtime dependencies. */
function stageBetterSqlite3(repoRoot, nodeModules, addonFile) {
  const src = join(repoRoot, 'node_modules', 'better-sqlite3');
  const dest = join(nodeModules, 'better-sqlite3');
  copyPackage(src, dest);
  mkdirSync(join(dest, 'build', 'Release'), { recursive: true });
  copyFileSync(addonFile, join(dest, 'build', 'Release', 'better_sqlite3.node'));
  chmodSync(join(dest, 'build', 'Release', 'better_sqlite3.node'), 0o755);
  // bindings (which finds the addon) and what it needs, resolved as Node would resolve them.
  const queue = [src];
  const staged = new Set(['better-sqlite3']);
  while (queue.length > 0) {
    const dir = queue.shift();
    const deps = Object.keys(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).dependencies ?? {});
    for (const name of deps) {
      if (INSTALL_ONLY.has(name) || staged.has(name)) continue;
      staged.add(name);
      const depDir = packageDir(dir, name);
      copyPackage(depDir, join(nodeModules, name));
      queue.push(depDir);
    }
  }
  return [...staged].sort();
}

/** Every file under dir, relative, sorted (the order SHA256SUMS and tar use). */
export function listFiles(dir, base = dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p, base));
    else out.push(relative(base, p));
  }
  return out.sort();
}

export function sha256File(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** SHA256SUMS text for the files under dir, as `sha256sum -c` reads it. */
export function sha256sums(dir, files) {
  return files.map((f) => `${sha256File(join(dir, f))}  ${f}\n`).join('');
}

/**
 * Fills stageDir (which must not exist) with the release. Returns the list of optional files
 * that were missing and the better-sqlite3 packages staged.
 */
export function stageRelease({ repoRoot, version, stageDir, runtime, addonFile, optionalFiles, versionsText, readmeText }) {
  mkdirSync(stageDir, { recursive: true });
  const at = (rel) => join(stageDir, rel);

  mkdirSync(dirname(at(LAYOUT.launcher)), { recursive: true });
  writeFileSync(at(LAYOUT.launcher), LAUNCHER, { mode: 0o755 });
  chmodSync(at(LAYOUT.launcher), 0o755);

  mkdirSync(dirname(at(LAYOUT.bundle)), { recursive: true });
  copyFileSync(join(repoRoot, 'build', 'nats-edge.js'), at(LAYOUT.bundle));
  // The bundle is ESM in a .js file: without "type": "module" in scope Node 20 loads it as
  // CommonJS and fails, and Node 22+ parses it twice to find out (module syntax detection).
  writeFileSync(join(dirname(at(LAYOUT.bundle)), 'package.json'), `${JSON.stringify({ name: 'nats-edge', version, private: true, type: 'module' }, null, 2)}\n`);
  // The map costs nothing at run time; NODE_OPTIONS=--enable-source-maps gives TypeScript stack traces.
  if (existsSync(join(repoRoot, 'build', 'nats-edge.js.map'))) copyFileSync(join(repoRoot, 'build', 'nats-edge.js.map'), at(`${LAYOUT.bundle}.map`));
  const modules = stageBetterSqlite3(repoRoot, at(LAYOUT.nodeModules), addonFile);

  // Only the binary and its licence: headers, man page and docs stay out.
  mkdirSync(dirname(at(LAYOUT.node)), { recursive: true });
  copyFileSync(join(runtime.dir, 'bin', 'node'), at(LAYOUT.node));
  chmodSync(at(LAYOUT.node), 0o755);
  copyFileSync(join(runtime.dir, 'LICENSE'), join(dirname(dirname(at(LAYOUT.node))), 'LICENSE'));

  mkdirSync(at(LAYOUT.profiles), { recursive: true });
  for (const f of readdirSync(join(repoRoot, 'firmware-profiles')).filter((n) => n.endsWith('.json')).sort()) {
    copyFileSync(join(repoRoot, 'firmware-profiles', f), join(at(LAYOUT.profiles), f));
  }
  copyFileSync(join(repoRoot, 'nats-edge.conf'), at(LAYOUT.config));

  const missing = [];
  for (const { path, mode } of optionalFiles) {
    const src = join(repoRoot, path);
    if (!existsSync(src)) {
      missing.push(path);
      continue;
    }
    mkdirSync(dirname(at(path)), { recursive: true });
    copyFileSync(src, at(path));
    chmodSync(at(path), mode);
  }

  writeFileSync(at(LAYOUT.versions), versionsText);
  writeFileSync(at(LAYOUT.readme), readmeText);
  const files = listFiles(stageDir).filter((f) => f !== LAYOUT.sums);
  writeFileSync(at(LAYOUT.sums), sha256sums(stageDir, files));
  return { missing, modules };
}

/**
 * tar.gz of stageDir (its folder name becomes the top folder), with owners, times and order
 * fixed so the same inputs give the same bytes. Written beside `out` first, then renamed.
 */
export function tarball(stageDir, out, epochSeconds) {
  const tmp = `${out}.partial`;
  rmSync(tmp, { force: true });
  execFileSync(
    'tar',
    [
      '--sort=name',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      `--mtime=@${epochSeconds}`,
      '--mode=u+rw,go+r,go-w',
      '--format=gnu',
      '--use-compress-program=gzip -n -6',
      '-cf',
      tmp,
      '-C',
      dirname(stageDir),
      relative(dirname(stageDir), stageDir),
    ],
    { stdio: 'inherit' },
  );
  renameSync(tmp, out);
  const sum = sha256File(out);
  writeFileSync(`${out}.sha256`, `${sum}  ${relative(dirname(out), out)}\n`);
  return { sha256: sum, bytes: statSync(out).size };
}
