#!/usr/bin/env node
// Renders deploy/nats-edge.service for one firmware profile: MemoryMax/MemoryHigh, LimitNOFILE
// and Node's heap flags from the profile, paths from the install prefix. The release build and
// the tests use this; scripts/install.sh renders the same unit in bash on the device (no Node
// needed there before install), and test/unit/systemd-unit.test.ts holds the two together.
//
//   node scripts/render-unit.mjs --profile NAME|FILE.json [--prefix /opt/nats-edge]
//        [--config-dir /etc/nats-edge] [--user nats-edge] [--template FILE] [-o FILE]
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** Release layout relative to the install prefix; keep in step with scripts/install.sh (REL_*). */
export const UNIT_LAYOUT = Object.freeze({
  launcher: 'bin/nats-edge',
  readyScript: 'deploy/wait-ready.sh',
  profiles: 'firmware-profiles',
  template: 'deploy/nats-edge.service',
});

export const UNIT_DEFAULTS = Object.freeze({
  prefix: '/opt/nats-edge',
  configDir: '/etc/nats-edge',
  user: 'nats-edge',
  readyTimeoutSec: 85,
  startTimeoutSec: '90s',
});

/** A size as systemd reads it: whole GiB or MiB with a suffix (base 1024), else bytes. */
export function systemdBytes(n) {
  if (n % GIB === 0) return `${n / GIB}G`;
  if (n % MIB === 0) return `${n / MIB}M`;
  return String(n);
}

/**
 * File descriptors: at least maxConnections + 64 (SQLite files, listeners, monitoring, uplink),
 * doubled because MQTT clients are not counted in max_connections; never below Debian's 1024.
 */
export function limitNofile(maxConnections) {
  return Math.max(1024, 2 * maxConnections + 64);
}

function positiveInt(profile, key) {
  const v = profile[key];
  if (!Number.isInteger(v) || v <= 0) throw new Error(`firmware profile ${profile.name}: "${key}" must be a positive integer`);
  return v;
}

/** The @NAME@ values of the template for a profile (parsed JSON) and install paths. */
export function unitValues(profile, opts = {}) {
  const o = { ...UNIT_DEFAULTS, ...opts };
  if (!/^[A-Za-z0-9/._+-]+$/.test(o.prefix) || !o.prefix.startsWith('/')) {
    throw new Error(`prefix must be an absolute path of letters, digits and / . _ + -: ${o.prefix}`);
  }
  const rssCeiling = positiveInt(profile, 'rssCeiling');
  const maxOld = positiveInt(profile, 'maxOldSpaceMb');
  const maxSemi = positiveInt(profile, 'maxSemiSpaceMb');
  const maxConnections = positiveInt(profile, 'maxConnections');
  // 85 % of MemoryMax in whole MiB when the profile has no memoryHigh (spec/boards.md 4.3).
  const memoryHigh = profile.memoryHigh === undefined ? Math.floor((rssCeiling * 85) / (100 * MIB)) * MIB : positiveInt(profile, 'memoryHigh');
  if (memoryHigh >= rssCeiling) throw new Error(`firmware profile ${profile.name}: memoryHigh must be below rssCeiling`);
  // V8's heap limit is old space + 3 x semi-space (spec/boards.md 5.2).
  if (maxOld + 3 * maxSemi >= Math.floor(rssCeiling / MIB)) {
    throw new Error(`firmware profile ${profile.name}: the V8 heap (maxOldSpaceMb + 3 x maxSemiSpaceMb) does not fit under rssCeiling`);
  }
  return {
    PROFILE: profile.name,
    LAUNCHER: `${o.prefix}/${UNIT_LAYOUT.launcher}`,
    READY_SCRIPT: `${o.prefix}/${UNIT_LAYOUT.readyScript}`,
    READY_TIMEOUT_SEC: String(o.readyTimeoutSec),
    START_TIMEOUT_SEC: String(o.startTimeoutSec),
    CONFIG_DIR: o.configDir,
    CONFIG_FILE: `${o.configDir}/nats-edge.conf`,
    SERVICE_USER: o.user,
    MEMORY_MAX: systemdBytes(rssCeiling),
    MEMORY_HIGH: systemdBytes(memoryHigh),
    LIMIT_NOFILE: String(limitNofile(maxConnections)),
    MAX_OLD_SPACE_MB: String(maxOld),
    MAX_SEMI_SPACE_MB: String(maxSemi),
  };
}

/** The unit text: every @NAME@ of the template replaced; ends with one newline. */
export function renderUnit(template, profile, opts = {}) {
  const values = unitValues(profile, opts);
  const text = template.replace(/@([A-Z_]+)@/g, (whole, key) => {
    const v = values[key];
    if (v === undefined) throw new Error(`unit template: no value for ${whole}`);
    return v;
  });
  return `${text.replace(/\n+$/, '')}\n`;
}

/** A profile by name (firmware-profiles/NAME.json of this checkout) or by JSON file path. */
export function readProfile(nameOrFile, profilesDir = join(ROOT, UNIT_LAYOUT.profiles)) {
  const file = nameOrFile.endsWith('.json') ? nameOrFile : join(profilesDir, `${nameOrFile}.json`);
  return JSON.parse(readFileSync(file, 'utf8'));
}

function main(argv) {
  const opts = {};
  let profile;
  let template = join(ROOT, UNIT_LAYOUT.template);
  let out;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--profile') profile = value();
    else if (arg === '--prefix') opts.prefix = value();
    else if (arg === '--config-dir') opts.configDir = value();
    else if (arg === '--user') opts.user = value();
    else if (arg === '--template') template = value();
    else if (arg === '-o' || arg === '--out') out = value();
    else throw new Error(`unknown argument ${arg}`);
  }
  if (profile === undefined) throw new Error('--profile NAME|FILE is required');
  const unit = renderUnit(readFileSync(template, 'utf8'), readProfile(profile), opts);
  if (out === undefined) process.stdout.write(unit);
  else writeFileSync(out, unit);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`render-unit: ${err.message}\n`);
    process.exit(1);
  }
}
