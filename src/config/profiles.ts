/**
 * Firmware profiles: per-board memory, connection, storage and sync limits
 * (firmware-profiles/*.json, numbers from spec/boards.md §6). Imported statically so that the
 * single-file bundle carries them.
 */
import generic256 from '../../firmware-profiles/generic-arm64-256mb.json' with { type: 'json' };
import rpi3b from '../../firmware-profiles/rpi-3b.json' with { type: 'json' };
import rpi4 from '../../firmware-profiles/rpi-4.json' with { type: 'json' };
import rpi5 from '../../firmware-profiles/rpi-5.json' with { type: 'json' };
import rpiZero2w from '../../firmware-profiles/rpi-zero-2w.json' with { type: 'json' };
import { ConfigError } from './errors.js';
import type { ProfileLimits } from './options.js';

const RAW: readonly unknown[] = [generic256, rpiZero2w, rpi3b, rpi4, rpi5];

const NUMBER_FIELDS = [
  'memoryBudget',
  'rssCeiling',
  'maxOldSpaceMb',
  'maxSemiSpaceMb',
  'maxConnections',
  'maxPending',
  'maxPayload',
  'maxFileStore',
  'sqliteCacheSize',
  'walMaxBytes',
] as const;
const OPTIONAL_NUMBER_FIELDS = ['memoryHigh', 'maxPendingTotal', 'commitLingerMs'] as const;

/** Checks a profile document field by field, so a bad file fails loudly rather than at run time. */
export function validateProfile(raw: unknown, source: string): ProfileLimits {
  const bad = (why: string): never => {
    throw new ConfigError(`firmware profile ${source}: ${why}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('not a JSON object');
  const o = raw as Record<string, unknown>;
  const str = (k: string): string => {
    const v = o[k];
    return typeof v === 'string' && v !== '' ? v : bad(`"${k}" must be a non-empty string`);
  };
  const num = (k: string): number => {
    const v = o[k];
    return typeof v === 'number' && Number.isFinite(v) && Number.isInteger(v) ? v : bad(`"${k}" must be an integer`);
  };
  const p: ProfileLimits = {
    name: str('name'),
    description: str('description'),
    memoryBudget: 0,
    rssCeiling: 0,
    maxOldSpaceMb: 0,
    maxSemiSpaceMb: 0,
    maxConnections: 0,
    maxPending: 0,
    maxPayload: 0,
    maxFileStore: 0,
    sqliteCacheSize: 0,
    syncInterval: 'always',
    walMaxBytes: 0,
  };
  for (const k of NUMBER_FIELDS) p[k] = num(k);
  for (const k of OPTIONAL_NUMBER_FIELDS) if (o[k] !== undefined) p[k] = num(k);
  const sync = o['syncInterval'];
  if (sync === 'always') p.syncInterval = 'always';
  else if (typeof sync === 'number' && Number.isInteger(sync) && sync > 0) p.syncInterval = sync;
  else bad('"syncInterval" must be "always" or a positive number of milliseconds');
  for (const k of NUMBER_FIELDS) if (k !== 'sqliteCacheSize' && p[k] <= 0) bad(`"${k}" must be positive`);
  if (p.maxPayload > p.maxPending) bad('maxPayload must not exceed maxPending');
  const known = new Set<string>(['name', 'description', 'syncInterval', ...NUMBER_FIELDS, ...OPTIONAL_NUMBER_FIELDS]);
  for (const k of Object.keys(o)) if (!known.has(k)) bad(`unknown field "${k}"`);
  return p;
}

let registry: Map<string, ProfileLimits> | undefined;

function profiles(): Map<string, ProfileLimits> {
  if (registry === undefined) {
    registry = new Map();
    for (const raw of RAW) {
      const name = (raw as { name?: unknown }).name;
      const p = validateProfile(raw, `firmware-profiles/${String(name)}.json`);
      registry.set(p.name, p);
    }
  }
  return registry;
}

/** Names of the built-in profiles, sorted. */
export function profileNames(): string[] {
  return [...profiles().keys()].sort();
}

/** A fresh copy of the named profile; ConfigError listing the known names if there is none. */
export function loadProfile(name: string): ProfileLimits {
  const p = profiles().get(name);
  if (p === undefined) {
    throw new ConfigError(`unknown firmware profile "${name}", known profiles: ${profileNames().join(', ')}`);
  }
  return { ...p };
}
