/**
 * Board detection: with no firmware profile named, pick one from the device-tree model and
 * the memory the kernel manages (spec/boards.md §1, §2, §4.3, §7).
 *
 * Two limits decide, and the smaller profile wins:
 * - the board family caps the profile, because CPU matters as much as RAM (a 512 MB Pi 3A+
 *   and a Zero 2 W are the same Cortex-A53; a 16 GB Pi 5 gets rpi-5, never more);
 * - memory: a profile fits when its rssCeiling (systemd MemoryMax) leaves at least 25 % of
 *   MemTotal, and at least 100 MB, to the OS and the page cache (boards.md §4.3, §6.1 step 2).
 *   MemTotal is below the nominal RAM (firmware and GPU reservations), so a 1 GB Pi 4 lands on
 *   rpi-3b and a 2 GB Pi 5 on rpi-4, as the profiles' own descriptions ask.
 *
 * Boards we do not recognise are chosen by memory alone (boards.md §2), capped at rpi-4: it is
 * sized for a 2 GB Cortex-A72 and safe on bigger boards whose CPU we know nothing about. A
 * machine without a device tree (x86 PCs and VMs, ACPI arm64 servers) with more than 4 GiB is
 * taken for a development machine or a server and gets no profile: nats-server's defaults, with
 * the RAM-derived memory budget of load.ts. Small VMs (up to 4 GiB) still get a profile, since
 * nats-server's 64 MB per-connection pending limit would not hold there.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import type { ProfileLimits } from './options.js';
import { loadProfile } from './profiles.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** boards.md §4.3: the OS keeps >= 25 % of MemTotal and >= 100 MB. */
const OS_SHARE = 0.25;
const OS_FLOOR = 100_000_000;
/** Above this, a machine without a device tree runs with nats-server's defaults. */
const DEV_MACHINE_MEMORY = 4 * GiB;

/** Profiles from small to big; the ladder memory is checked against. */
const LADDER = ['generic-arm64-256mb', 'rpi-zero-2w', 'rpi-3b', 'rpi-4', 'rpi-5'] as const;
type ProfileName = (typeof LADDER)[number];

/** The biggest profile for boards not listed below. */
const UNKNOWN_BOARD_CAP: ProfileName = 'rpi-4';

/**
 * Model prefixes (never the "Rev x.y" suffix, which changes without notice) and the biggest
 * profile for that family. "Raspberry Pi 4" also covers the 400, "Raspberry Pi 5" the 500.
 */
const FAMILIES: readonly { prefix: string; cap: ProfileName }[] = [
  { prefix: 'Raspberry Pi Zero 2', cap: 'rpi-zero-2w' },
  { prefix: 'Raspberry Pi 3 Model', cap: 'rpi-3b' },
  { prefix: 'Raspberry Pi Compute Module 3', cap: 'rpi-3b' },
  { prefix: 'Raspberry Pi 4', cap: 'rpi-4' },
  { prefix: 'Raspberry Pi Compute Module 4', cap: 'rpi-4' },
  { prefix: 'Raspberry Pi 5', cap: 'rpi-5' },
  { prefix: 'Raspberry Pi Compute Module 5', cap: 'rpi-5' },
];

export interface BoardChoice {
  /** A firmware profile name, or null: run with nats-server's defaults. */
  profile: string | null;
  /** One line for the log: the inputs and the reason. */
  why: string;
}

/** MemTotal needed for a profile to leave the OS its share. */
export function memoryNeeded(profile: string): number {
  const ceiling = loadProfile(profile).rssCeiling;
  return Math.max(Math.ceil(ceiling / (1 - OS_SHARE)), ceiling + OS_FLOOR);
}

function size(bytes: number): string {
  return bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${Math.round(bytes / MiB)} MiB`;
}

/** Device-tree text is firmware data: keep it to one printable line for the log. */
function cleanModel(model: string | null): string | null {
  if (model === null) return null;
  const m = model.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  return m === '' ? null : m;
}

/** The biggest profile up to `cap` that fits in `memTotal`, and the one just above it, if any. */
function fit(cap: ProfileName, memTotal: number): { profile: ProfileName; refused: ProfileName | null; fits: boolean } {
  let refused: ProfileName | null = null;
  for (let i = LADDER.indexOf(cap); i >= 0; i--) {
    const p = LADDER[i]!;
    if (memoryNeeded(p) <= memTotal) return { profile: p, refused, fits: true };
    refused = p;
  }
  return { profile: LADDER[0], refused: null, fits: false };
}

/**
 * Picks a firmware profile from the device-tree model (null when the machine has none) and
 * MemTotal in bytes (0 when unknown). Pure: readBoard() supplies the inputs.
 */
export function detectBoard(model: string | null, memTotalBytes: number): BoardChoice {
  const name = cleanModel(model);
  const mem = Number.isFinite(memTotalBytes) && memTotalBytes > 0 ? memTotalBytes : 0;
  const family = name === null ? undefined : FAMILIES.find((f) => name.startsWith(f.prefix));
  const what = name === null ? 'no device-tree model' : family !== undefined ? name : `unrecognised board "${name}"`;

  if (mem === 0) {
    if (family !== undefined) return { profile: family.cap, why: `${what}, memory size unknown: ${family.cap}` };
    return { profile: null, why: `${what}, memory size unknown: no firmware profile, nats-server defaults` };
  }
  const seen = `${what} with ${size(mem)}`;
  if (name === null && mem > DEV_MACHINE_MEMORY) {
    return { profile: null, why: `${seen}: no firmware profile (development machine or server), nats-server defaults` };
  }
  const cap = family?.cap ?? UNKNOWN_BOARD_CAP;
  const f = fit(cap, mem);
  let why = `${seen}: ${f.profile}`;
  if (!f.fits) why += ` (the smallest profile; it wants ${size(memoryNeeded(f.profile))})`;
  else if (f.refused !== null) why += ` (${f.refused} needs ${size(memoryNeeded(f.refused))})`;
  else if (family === undefined) why += ' (the biggest profile for a board not recognised)';
  return { profile: f.profile, why };
}

/** Where readBoard looks; tests point it at files of their own. */
export interface BoardFiles {
  /** NUL-terminated model strings, first readable one wins. */
  models: readonly string[];
  meminfo: string;
}

const SYSTEM_FILES: BoardFiles = {
  models: ['/proc/device-tree/model', '/sys/firmware/devicetree/base/model'],
  meminfo: '/proc/meminfo',
};

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** MemTotal from /proc/meminfo text ("MemTotal:  948304 kB"), in bytes; 0 when absent. */
export function parseMemTotal(meminfo: string): number {
  const m = /^MemTotal:\s*(\d+)\s*kB\s*$/m.exec(meminfo);
  return m === null ? 0 : Number(m[1]) * 1024;
}

/**
 * The inputs of detectBoard from this machine. Missing files are normal (x86 has no device
 * tree); without /proc/meminfo, os.totalmem() (which reads the same number on Linux).
 */
export function readBoard(files: BoardFiles = SYSTEM_FILES): { model: string | null; memTotalBytes: number } {
  let model: string | null = null;
  for (const path of files.models) {
    const text = readText(path);
    if (text === null) continue;
    const nul = text.indexOf('\0');
    model = cleanModel(nul < 0 ? text : text.slice(0, nul));
    if (model !== null) break;
  }
  const meminfo = readText(files.meminfo);
  const fromProc = meminfo === null ? 0 : parseMemTotal(meminfo);
  return { model, memTotalBytes: fromProc > 0 ? fromProc : totalmem() };
}

/**
 * V8's heap limit is old space + 3 x semi-space (boards.md §5.2). When the running limit is
 * above what the profile's flags give, node was started without them (or with other ones)
 * and the heap can grow past the profile's ceiling: the warning says which flags to pass.
 * Null when the flags are in force. `heapLimitBytes`: v8.getHeapStatistics().heap_size_limit.
 */
export function heapFlagsWarning(profile: ProfileLimits, heapLimitBytes: number): string | null {
  const want = (profile.maxOldSpaceMb + 3 * profile.maxSemiSpaceMb) * MiB;
  // A little slack: V8 rounds the spaces to its page size on some platforms.
  if (heapLimitBytes <= want + 2 * MiB) return null;
  return (
    `V8 heap limit is ${Math.round(heapLimitBytes / MiB)} MiB but firmware profile ${profile.name} allows ` +
    `${Math.round(want / MiB)} MiB: start node with --max-old-space-size=${profile.maxOldSpaceMb} ` +
    `--max-semi-space-size=${profile.maxSemiSpaceMb}`
  );
}
