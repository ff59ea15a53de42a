import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { loadProfile, profileNames, validateProfile } from '../../src/config/profiles.js';

const MiB = 1024 * 1024;
const dir = join(import.meta.dirname, '..', '..', 'firmware-profiles');

describe('firmware profiles', () => {
  it('registers every file in firmware-profiles/', () => {
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5))
      .sort();
    expect(profileNames()).toEqual(files);
    expect(profileNames()).toEqual(['generic-arm64-256mb', 'rpi-3b', 'rpi-4', 'rpi-5', 'rpi-zero-2w']);
  });

  it('loads each file unchanged and valid', () => {
    for (const name of profileNames()) {
      const fromDisk: unknown = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8'));
      expect(loadProfile(name)).toEqual(fromDisk);
      const p = loadProfile(name);
      expect(p.description.length).toBeGreaterThan(40);
      expect(p.maxPayload).toBeLessThanOrEqual(p.maxPending);
      expect(p.memoryBudget).toBeLessThan(p.rssCeiling);
      expect(p.memoryHigh!).toBeLessThan(p.rssCeiling);
      expect(p.maxPendingTotal!).toBeLessThan(p.memoryBudget);
    }
  });

  it('carries the boards.md numbers', () => {
    expect(loadProfile('rpi-zero-2w')).toMatchObject({
      rssCeiling: 192 * MiB,
      memoryBudget: 150 * MiB,
      maxOldSpaceMb: 64,
      maxSemiSpaceMb: 2,
      sqliteCacheSize: -2000,
      maxConnections: 100,
      maxPending: 2 * MiB,
      maxPayload: 512 * 1024,
      syncInterval: 1000,
      walMaxBytes: MiB,
    });
    expect(loadProfile('generic-arm64-256mb')).toMatchObject({ rssCeiling: 128 * MiB, memoryBudget: 100 * MiB, maxConnections: 32, maxPending: MiB, maxPayload: 256 * 1024, maxFileStore: 256 * MiB, syncInterval: 2000 });
    expect(loadProfile('rpi-3b')).toMatchObject({ rssCeiling: 384 * MiB, memoryBudget: 300 * MiB, maxConnections: 500, maxPending: 8 * MiB, maxFileStore: 2048 * MiB });
    expect(loadProfile('rpi-4')).toMatchObject({ rssCeiling: 768 * MiB, memoryBudget: 600 * MiB, maxConnections: 2000, maxPending: 16 * MiB, syncInterval: 500 });
    expect(loadProfile('rpi-5')).toMatchObject({ maxConnections: 8000, maxPending: 32 * MiB, maxOldSpaceMb: 768 });
  });

  it('returns a copy, so callers cannot change the registry', () => {
    const p = loadProfile('rpi-4');
    p.maxConnections = 1;
    expect(loadProfile('rpi-4').maxConnections).toBe(2000);
  });

  it('names the known profiles when the name is unknown', () => {
    expect(() => loadProfile('pi-4')).toThrow(ConfigError);
    expect(() => loadProfile('pi-4')).toThrow('unknown firmware profile "pi-4", known profiles: generic-arm64-256mb, rpi-3b, rpi-4, rpi-5, rpi-zero-2w');
  });

  it('refuses a malformed profile document', () => {
    const good = JSON.parse(readFileSync(join(dir, 'rpi-4.json'), 'utf8')) as Record<string, unknown>;
    expect(() => validateProfile({ ...good, maxPending: '16MB' }, 'x.json')).toThrow('firmware profile x.json: "maxPending" must be an integer');
    expect(() => validateProfile({ ...good, syncInterval: 'sometimes' }, 'x.json')).toThrow(/syncInterval/);
    expect(() => validateProfile({ ...good, maxPayload: good['maxPending'] as number * 2 }, 'x.json')).toThrow(/maxPayload must not exceed maxPending/);
    expect(() => validateProfile({ ...good, extra: 1 }, 'x.json')).toThrow('firmware profile x.json: unknown field "extra"');
    expect(validateProfile({ ...good, syncInterval: 'always' }, 'x.json').syncInterval).toBe('always');
  });
});
