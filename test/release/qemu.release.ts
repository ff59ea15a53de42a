/**
 * Proof that a release runs on its architecture: the tarball built by `npm run release` is
 * unpacked, and its own Node runtime with its own better-sqlite3 addon starts the broker (under
 * qemu-user with a Debian root for arm64 / armv7, natively through bin/nats-edge for x64). The
 * real nats.js client on this machine's Node publishes into a JetStream stream, reads it back,
 * and reads it again after the broker restarted on the same SQLite store.
 *
 * Not part of `npm test` (slow: emulation, and it needs the release built first). Run it with
 * scripts/release-test.sh [ARCH...], or after `npm run release -- --arch ARCH`:
 *   NATS_EDGE_RELEASE_ARCHES="arm64 armv7" npx vitest run --config test/release/vitest.config.ts
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { compareVersions, readElfHeader } from '../../scripts/release/elf.mjs';
import { LAYOUT, TARGETS, type ReleaseArch } from '../../scripts/release/targets.mjs';
import { ReleaseBroker, ReleaseUnderTest } from './release-under-test.js';

const ARCHES = (process.env['NATS_EDGE_RELEASE_ARCHES'] ?? 'arm64').split(/[\s,]+/).filter((a) => a !== '') as ReleaseArch[];
// Emulated Node 24 needs a few seconds to start on a loaded 2-core machine; leave it plenty.
const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;
/** process.arch that each release's runtime must report. */
const PROCESS_ARCH: Record<ReleaseArch, string> = { arm64: 'arm64', armv7: 'arm', x64: 'x64' };

const MESSAGES = 100;
const subjectOf = (i: number): string => `sensors.room${i % 4}.temp`;
const payloadOf = (i: number): string => `reading ${i} ${'x'.repeat(i % 50)}`;

for (const arch of ARCHES) {
  describe(`release ${arch}`, () => {
    let release: ReleaseUnderTest;
    let storeDir: string;
    const brokers: ReleaseBroker[] = [];
    const conns: NatsConnection[] = [];

    beforeAll(() => {
      if (!Object.hasOwn(TARGETS, arch)) throw new Error(`unknown release arch ${arch}`);
      release = ReleaseUnderTest.open(arch);
      storeDir = mkdtempSync(join(tmpdir(), `nats-edge-release-store-${arch}-`));
      const how = release.sysroot === null ? 'natively' : `under ${release.target.qemu} with ${release.sysroot.packages.join(', ')}`;
      console.log(`release ${arch}: ${release.tarball}, running ${how}`);
    });

    afterAll(async () => {
      await Promise.all(conns.map((nc) => (nc.isClosed() ? undefined : nc.close().catch(() => undefined))));
      await Promise.all(brokers.map((b) => b.stop('SIGKILL', 1000)));
      release?.dispose();
      if (storeDir !== undefined) rmSync(storeDir, { recursive: true, force: true });
    });

    it('every file matches SHA256SUMS, and the tarball its .sha256', () => {
      // sha256sum exits non-zero (execFileSync throws) on any mismatch or missing file.
      const out = execFileSync('sha256sum', ['-c', LAYOUT.sums], { cwd: release.dir, encoding: 'utf8' });
      expect(out).toMatch(new RegExp(`^${LAYOUT.node}: OK$`, 'm'));
      expect(out).toMatch(/better_sqlite3\.node: OK$/m);
      expect(out).not.toMatch(/FAILED/);
      execFileSync('sha256sum', ['-c', `${release.tarball.split('/').at(-1) ?? ''}.sha256`], { cwd: join(release.tarball, '..') });
    });

    it(`node and better_sqlite3.node are ${TARGETS[arch].elfClass}-bit ELF files for ${arch}`, () => {
      for (const rel of [LAYOUT.node, `${LAYOUT.nodeModules}/better-sqlite3/build/Release/better_sqlite3.node`]) {
        expect(readElfHeader(release.path(rel)), rel).toEqual({ elfClass: TARGETS[arch].elfClass, machine: TARGETS[arch].elfMachine });
      }
    });

    it("the addon has no node::ObjectWrap cleanup hooks (Node 24.19+'s headers; they abort the broker on GC)", () => {
      // A dynamic symbol's name sits as plain text in .dynstr, which strip keeps.
      const addon = readFileSync(release.path(`${LAYOUT.nodeModules}/better-sqlite3/build/Release/better_sqlite3.node`));
      expect(addon.includes('AddEnvironmentCleanupHook'), 'better-sqlite3 registers its own addon cleanup').toBe(true);
      expect(addon.includes('RemoveEnvironmentCleanupHook')).toBe(false);
    });

    it('the shipped runtime is the one VERSIONS names, and loads the shipped addon', () => {
      const addon = release.path(`${LAYOUT.nodeModules}/better-sqlite3`);
      const script = `const D = require(${JSON.stringify(addon)});
        const db = new D(':memory:');
        db.exec('create table t(v text)'); db.prepare('insert into t values (?)').run('from ' + process.arch);
        console.log(JSON.stringify({
          arch: process.arch, node: process.versions.node, modules: process.versions.modules,
          glibc: process.report.getReport().header.glibcVersionRuntime,
          sqlite: db.prepare('select sqlite_version() v').get().v, row: db.prepare('select v from t').get().v,
        }));`;
      const facts = JSON.parse(release.runNode(['-e', script], READY_TIMEOUT_MS)) as Record<string, string>;
      console.log(`release ${arch}: runtime ${JSON.stringify(facts)}`);
      expect(facts['arch']).toBe(PROCESS_ARCH[arch]);
      expect(facts['node']).toBe(release.versions['node']);
      expect(facts['modules']).toBe(release.versions['node-module-version']);
      expect(facts['row']).toBe(`from ${PROCESS_ARCH[arch]}`);
      expect(release.versions['better-sqlite3']).toContain(`(SQLite ${facts['sqlite'] ?? '?'})`);
      // The glibc it runs on here satisfies the floor VERSIONS states.
      const floor = release.versions['release-glibc-floor'] ?? '';
      expect(floor).toMatch(/^2\.\d+$/);
      expect(compareVersions(facts['glibc'] ?? '0', floor)).toBeGreaterThanOrEqual(0);
    });

    it('the broker stores a JetStream stream through the real client and keeps it across a restart', async () => {
      const first = await ReleaseBroker.start(release, storeDir, READY_TIMEOUT_MS);
      brokers.push(first.broker);
      console.log(`release ${arch}: broker ready in ${first.startedMs} ms`);
      const nc = await connect({ servers: first.broker.url, reconnect: false, timeout: 20_000 });
      conns.push(nc);
      expect(nc.info?.jetstream).toBe(true);
      const jsm = await jetstreamManager(nc, { timeout: 20_000 });
      const js = jetstream(nc, { timeout: 20_000 });
      await jsm.streams.add({ name: 'SENSORS', subjects: ['sensors.>'] });

      for (let i = 0; i < MESSAGES; i++) {
        const ack = await js.publish(subjectOf(i), payloadOf(i));
        expect([ack.stream, ack.seq, ack.duplicate]).toEqual(['SENSORS', i + 1, false]);
      }
      await jsm.consumers.add('SENSORS', { durable_name: 'reader', ack_policy: AckPolicy.Explicit });
      const consumer = await js.consumers.get('SENSORS', 'reader');
      const read: string[] = [];
      while (read.length < MESSAGES) {
        const batch = await consumer.fetch({ max_messages: MESSAGES - read.length, expires: 10_000 });
        let got = 0;
        for await (const m of batch) {
          read.push(`${m.seq} ${m.subject} ${m.string()}`);
          expect(await m.ackAck()).toBe(true);
          got++;
        }
        expect(got, 'a fetch returned no message').toBeGreaterThan(0);
      }
      expect(read).toEqual(Array.from({ length: MESSAGES }, (_, i) => `${i + 1} ${subjectOf(i)} ${payloadOf(i)}`));
      await nc.close();

      expect(await first.broker.stop('SIGTERM', STOP_TIMEOUT_MS), first.broker.logs()).toBe(0);

      const second = await ReleaseBroker.start(release, storeDir, READY_TIMEOUT_MS);
      brokers.push(second.broker);
      const nc2 = await connect({ servers: second.broker.url, reconnect: false, timeout: 20_000 });
      conns.push(nc2);
      const jsm2 = await jetstreamManager(nc2, { timeout: 20_000 });
      const state = (await jsm2.streams.info('SENSORS')).state;
      expect([state.messages, state.first_seq, state.last_seq]).toEqual([MESSAGES, 1, MESSAGES]);
      for (const seq of [1, 57, MESSAGES]) {
        const m = await jsm2.streams.getMessage('SENSORS', { seq });
        expect([m?.seq, m?.subject, m?.string()]).toEqual([seq, subjectOf(seq - 1), payloadOf(seq - 1)]);
      }
      const ci = await jsm2.consumers.info('SENSORS', 'reader');
      expect([ci.num_pending, ci.ack_floor.stream_seq]).toEqual([0, MESSAGES]);
      await nc2.close();
      expect(await second.broker.stop('SIGTERM', STOP_TIMEOUT_MS), second.broker.logs()).toBe(0);
    });
  });
}
