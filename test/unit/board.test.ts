import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { detectBoard, heapFlagsWarning, memoryNeeded, parseMemTotal, readBoard } from '../../src/config/board.js';
import { loadProfile } from '../../src/config/profiles.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

describe('memoryNeeded', () => {
  it('leaves 25 % of MemTotal and at least 100 MB to the OS (boards.md §4.3)', () => {
    // 128 MiB + 100 MB beats 128 MiB / 0.75 on the smallest boards.
    expect(memoryNeeded('generic-arm64-256mb')).toBe(128 * MiB + 100_000_000);
    expect(memoryNeeded('rpi-zero-2w')).toBe(192 * MiB + 100_000_000);
    // From 384 MiB up, the 25 % share is the larger.
    expect(memoryNeeded('rpi-3b')).toBe(512 * MiB);
    expect(memoryNeeded('rpi-4')).toBe(1 * GiB);
    expect(memoryNeeded('rpi-5')).toBe(2 * GiB);
    for (const p of ['generic-arm64-256mb', 'rpi-zero-2w', 'rpi-3b', 'rpi-4', 'rpi-5']) {
      const need = memoryNeeded(p);
      const ceiling = loadProfile(p).rssCeiling;
      expect(need - ceiling).toBeGreaterThanOrEqual(need * 0.25);
      expect(need - ceiling).toBeGreaterThanOrEqual(100_000_000);
    }
  });
});

describe('detectBoard: Raspberry Pi boards', () => {
  // MemTotal values are typical of each board (RAM less firmware/GPU reservations); what
  // matters is which side of the profile's need they fall on.
  const cases: [model: string, memKiB: number, profile: string][] = [
    ['Raspberry Pi Zero 2 W Rev 1.0', 439_532, 'rpi-zero-2w'],
    ['Raspberry Pi 3 Model B Rev 1.2', 948_304, 'rpi-3b'],
    ['Raspberry Pi 3 Model B Plus Rev 1.3', 948_304, 'rpi-3b'],
    // 3A+ has 512 MB: the same SoC and memory as a Zero 2 W.
    ['Raspberry Pi 3 Model A Plus Rev 1.0', 439_532, 'rpi-zero-2w'],
    ['Raspberry Pi Compute Module 3 Plus Rev 1.0', 948_304, 'rpi-3b'],
    // A 1 GB Pi 4 gets rpi-3b, as boards.md and rpi-4.json say.
    ['Raspberry Pi 4 Model B Rev 1.1', 925_000, 'rpi-3b'],
    ['Raspberry Pi 4 Model B Rev 1.2', 1_894_000, 'rpi-4'],
    ['Raspberry Pi 4 Model B Rev 1.4', 3_882_816, 'rpi-4'],
    ['Raspberry Pi 4 Model B Rev 1.5', 7_998_000, 'rpi-4'],
    ['Raspberry Pi 400 Rev 1.0', 3_882_816, 'rpi-4'],
    ['Raspberry Pi Compute Module 4 Rev 1.0', 925_000, 'rpi-3b'],
    ['Raspberry Pi Compute Module 4 Rev 1.0', 3_882_816, 'rpi-4'],
    // A 2 GB Pi 5 gets rpi-4, as rpi-5.json says.
    ['Raspberry Pi 5 Model B Rev 1.0', 2_038_000, 'rpi-4'],
    ['Raspberry Pi 5 Model B Rev 1.0', 4_040_000, 'rpi-5'],
    ['Raspberry Pi 5 Model B Rev 1.1', 8_245_000, 'rpi-5'],
    ['Raspberry Pi 5 Model B Rev 1.1', 16_450_000, 'rpi-5'],
    ['Raspberry Pi 500 Rev 1.0', 8_245_000, 'rpi-5'],
    ['Raspberry Pi Compute Module 5 Rev 1.0', 4_040_000, 'rpi-5'],
  ];
  for (const [model, kib, profile] of cases) {
    it(`${model}, ${kib} kB -> ${profile}`, () => {
      expect(detectBoard(model, kib * KiB).profile).toBe(profile);
    });
  }

  it('explains its choice in one line', () => {
    expect(detectBoard('Raspberry Pi 4 Model B Rev 1.4', 3_882_816 * KiB)).toEqual({
      profile: 'rpi-4',
      why: 'Raspberry Pi 4 Model B Rev 1.4 with 3.7 GiB: rpi-4',
    });
    expect(detectBoard('Raspberry Pi 4 Model B Rev 1.1', 925_000 * KiB)).toEqual({
      profile: 'rpi-3b',
      why: 'Raspberry Pi 4 Model B Rev 1.1 with 903 MiB: rpi-3b (rpi-4 needs 1.0 GiB)',
    });
    expect(detectBoard('Raspberry Pi Zero 2 W Rev 1.0', 439_532 * KiB).why).toBe(
      'Raspberry Pi Zero 2 W Rev 1.0 with 429 MiB: rpi-zero-2w',
    );
  });

  it('matches the model prefix, not the revision, and ignores NULs and line breaks', () => {
    expect(detectBoard('Raspberry Pi 5 Model B Rev 9.9\0', 8 * GiB - 100 * MiB)).toEqual({
      profile: 'rpi-5',
      why: 'Raspberry Pi 5 Model B Rev 9.9 with 7.9 GiB: rpi-5',
    });
    expect(detectBoard('Raspberry Pi 4 Model B\nRev 1.4', 3 * GiB).why).toBe('Raspberry Pi 4 Model B Rev 1.4 with 3.0 GiB: rpi-4');
  });

  it('does not take the original Zero W for a Zero 2 W', () => {
    const c = detectBoard('Raspberry Pi Zero W Rev 1.1', 439_532 * KiB);
    expect(c.why).toBe('unrecognised board "Raspberry Pi Zero W Rev 1.1" with 429 MiB: rpi-zero-2w (rpi-3b needs 512 MiB)');
  });
});

describe('detectBoard: other machines', () => {
  it('chooses other device-tree boards by memory, up to rpi-4', () => {
    const board = 'Radxa ROCK 3 Model A';
    expect(detectBoard(board, 180 * MiB)).toEqual({
      profile: 'generic-arm64-256mb',
      why: 'unrecognised board "Radxa ROCK 3 Model A" with 180 MiB: generic-arm64-256mb (the smallest profile; it wants 223 MiB)',
    });
    expect(detectBoard(board, 230 * MiB).profile).toBe('generic-arm64-256mb');
    expect(detectBoard(board, 287 * MiB).profile).toBe('generic-arm64-256mb');
    expect(detectBoard(board, 288 * MiB).profile).toBe('rpi-zero-2w');
    expect(detectBoard(board, 512 * MiB - 1).profile).toBe('rpi-zero-2w');
    expect(detectBoard(board, 512 * MiB).profile).toBe('rpi-3b');
    expect(detectBoard(board, 1 * GiB).profile).toBe('rpi-4');
    expect(detectBoard(board, 16 * GiB)).toEqual({
      profile: 'rpi-4',
      why: 'unrecognised board "Radxa ROCK 3 Model A" with 16.0 GiB: rpi-4 (the biggest profile for a board not recognised)',
    });
  });

  it('gives development machines and servers without a device tree no profile', () => {
    expect(detectBoard(null, 24 * GiB - 300 * MiB)).toEqual({
      profile: null,
      why: 'no device-tree model with 23.7 GiB: no firmware profile (development machine or server), nats-server defaults',
    });
    expect(detectBoard(null, 4 * GiB + 1).profile).toBeNull();
    expect(detectBoard('', 8 * GiB).profile).toBeNull();
  });

  it('still sizes small machines without a device tree (VMs, x86 gateways)', () => {
    expect(detectBoard(null, 4 * GiB).profile).toBe('rpi-4');
    expect(detectBoard(null, 1900 * MiB)).toEqual({
      profile: 'rpi-4',
      why: 'no device-tree model with 1.9 GiB: rpi-4 (the biggest profile for a board not recognised)',
    });
    expect(detectBoard(null, 900 * MiB).profile).toBe('rpi-3b');
    expect(detectBoard(null, 200 * MiB).profile).toBe('generic-arm64-256mb');
  });

  it('without a memory size, trusts a known board and gives up on others', () => {
    expect(detectBoard('Raspberry Pi 3 Model B Rev 1.2', 0)).toEqual({
      profile: 'rpi-3b',
      why: 'Raspberry Pi 3 Model B Rev 1.2, memory size unknown: rpi-3b',
    });
    expect(detectBoard(null, Number.NaN).profile).toBeNull();
    expect(detectBoard('Some Board', -1).profile).toBeNull();
  });
});

describe('readBoard', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nats-edge-board-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const MEMINFO = 'MemTotal:        3882816 kB\nMemFree:         3400000 kB\nMemAvailable:    3600000 kB\n';

  it('reads the NUL-terminated model and MemTotal', () => {
    const model = file('model', 'Raspberry Pi 4 Model B Rev 1.4\0');
    const meminfo = file('meminfo', MEMINFO);
    expect(readBoard({ models: [model], meminfo })).toEqual({
      model: 'Raspberry Pi 4 Model B Rev 1.4',
      memTotalBytes: 3_882_816 * KiB,
    });
  });

  it('falls back to the second model path, and to os.totalmem() without /proc/meminfo', () => {
    const model = file('model2', 'Raspberry Pi 5 Model B Rev 1.1\0');
    expect(readBoard({ models: [join(dir, 'absent'), model], meminfo: join(dir, 'absent') })).toEqual({
      model: 'Raspberry Pi 5 Model B Rev 1.1',
      memTotalBytes: totalmem(),
    });
  });

  it('gives a null model when there is no device tree or it is empty', () => {
    const meminfo = file('meminfo2', MEMINFO);
    expect(readBoard({ models: [join(dir, 'absent')], meminfo }).model).toBeNull();
    const empty = file('empty', '\0');
    expect(readBoard({ models: [empty], meminfo }).model).toBeNull();
  });

  it('parses MemTotal only from its own line', () => {
    expect(parseMemTotal(MEMINFO)).toBe(3_882_816 * KiB);
    expect(parseMemTotal('MemFree: 10 kB\n')).toBe(0);
    expect(parseMemTotal('')).toBe(0);
  });

  it('reads this machine: MemTotal as the kernel reports it', () => {
    const b = readBoard();
    // libuv's totalmem() is MemTotal too on Linux.
    expect(b.memTotalBytes).toBe(totalmem());
    expect(b.model === null || b.model.length > 0).toBe(true);
  });
});

describe('heapFlagsWarning', () => {
  /** heap_size_limit of a real node started with these flags. */
  const heapLimit = (flags: string[]): number => {
    const r = spawnSync(process.execPath, [...flags, '-p', "require('v8').getHeapStatistics().heap_size_limit"], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    return Number(r.stdout.trim());
  };

  it('is quiet when node runs with the profile flags', () => {
    for (const name of ['generic-arm64-256mb', 'rpi-zero-2w', 'rpi-4']) {
      const p = loadProfile(name);
      const limit = heapLimit([`--max-old-space-size=${p.maxOldSpaceMb}`, `--max-semi-space-size=${p.maxSemiSpaceMb}`]);
      expect(heapFlagsWarning(p, limit), name).toBeNull();
    }
  });

  it('names the missing flags when the semi-space flag is left out', () => {
    const p = loadProfile('generic-arm64-256mb');
    // Without --max-semi-space-size V8 adds 3 x its default semi-space to the old space.
    const limit = heapLimit(['--max-old-space-size=40']);
    expect(limit).toBeGreaterThan(43 * MiB);
    expect(heapFlagsWarning(p, limit)).toBe(
      `V8 heap limit is ${Math.round(limit / MiB)} MiB but firmware profile generic-arm64-256mb allows 43 MiB: ` +
        'start node with --max-old-space-size=40 --max-semi-space-size=1',
    );
  });
});
