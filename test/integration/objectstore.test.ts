/**
 * The object store of @nats-io/obj 3.4 on top of stream features (jetstream-api.md §12b): chunked
 * puts with a rollup meta message, gets through ordered push consumers, list, delete (a filtered
 * purge plus a deleted meta) and overwrite (the old chunks purged). One table against Debian's
 * nats-server and our bundle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { serverKinds, stopAllServers, within } from '../helpers/servers.js';
import { JsServer } from '../helpers/js.js';

const MiB = 1024 * 1024;
/** The client's default chunk size. */
const CHUNK = 128 * 1024;

/** Deterministic bytes (no two chunks alike), so a misplaced chunk shows. */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** The digest the client records: `SHA-256=` + padded base64url of the SHA-256. */
function digestOf(data: Uint8Array): string {
  const b64 = createHash('sha256').update(data).digest('base64');
  return 'SHA-256=' + b64.replace(/\+/g, '-').replace(/\//g, '_');
}

async function readStream(rs: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const reader = rs.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
  }
  return Buffer.concat(parts);
}

describe.each(serverKinds())('object store: %s', (kind) => {
  let server: JsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let os: ObjectStore;

  beforeAll(async () => {
    server = await JsServer.start(kind);
    nc = await server.connect();
    jsm = await jetstreamManager(nc);
    os = await new Objm(nc).create('files');
  });

  afterAll(async () => {
    await server?.closeConnections();
    await stopAllServers();
  });

  it('the bucket is stream OBJ_<b> with chunk and meta subjects and rollups', async () => {
    const si = await jsm.streams.info('OBJ_files');
    expect(si.config).toMatchObject({
      name: 'OBJ_files',
      subjects: ['$O.files.C.>', '$O.files.M.>'],
      allow_rollup_hdrs: true,
      discard: 'new',
    });
    const st = await os.status();
    expect(st.bucket).toBe('files');
    expect(st.size).toBe(0);
  });

  it('a 1 MiB object comes back byte for byte, with its size, chunks and digest', async () => {
    const data = bytes(MiB, 7);
    const put = await os.putBlob({ name: 'big.bin', description: 'one mebibyte' }, data);
    expect(put).toMatchObject({ name: 'big.bin', bucket: 'files', size: MiB, chunks: MiB / CHUNK, digest: digestOf(data), description: 'one mebibyte' });
    const back = await os.getBlob('big.bin');
    expect(back).not.toBeNull();
    expect(Buffer.from(back!).equals(Buffer.from(data))).toBe(true);
    // The streaming form as well, with its completion promise.
    const res = await os.get('big.bin');
    expect(res).not.toBeNull();
    const streamed = await within(readStream(res!.data), 10000, 'reading big.bin');
    // Resolves without an error once the whole object was read (the client gives undefined).
    expect((await res!.error) ?? null).toBeNull();
    expect(Buffer.from(streamed).equals(Buffer.from(data))).toBe(true);
    const info = await os.info('big.bin');
    expect(info).toMatchObject({ name: 'big.bin', size: MiB, chunks: 8, deleted: false });
    // Eight chunk messages and one meta message.
    expect((await jsm.streams.info('OBJ_files')).state.messages).toBe(9);
  });

  it('list shows every live object; an empty object is one too', async () => {
    await os.putBlob({ name: 'small.txt' }, new TextEncoder().encode('hello object store'));
    await os.putBlob({ name: 'empty' }, new Uint8Array(0));
    const names = (await os.list()).map((o) => `${o.name}:${o.size}`).sort();
    expect(names).toEqual(['big.bin:1048576', 'empty:0', 'small.txt:18']);
    expect(new TextDecoder().decode((await os.getBlob('small.txt'))!)).toBe('hello object store');
    expect((await os.getBlob('empty'))?.length).toBe(0);
  });

  it('delete: the object is gone from get and list, its chunks purged', async () => {
    const before = (await jsm.streams.info('OBJ_files')).state.messages;
    await os.delete('small.txt');
    expect(await os.getBlob('small.txt')).toBeNull();
    expect((await os.list()).map((o) => o.name).sort()).toEqual(['big.bin', 'empty']);
    // One chunk purged, its meta replaced by a deleted marker (rollup of the meta subject).
    expect((await jsm.streams.info('OBJ_files')).state.messages).toBe(before - 1);
    // info still answers for a deleted name: a marker with no size, chunks or digest.
    expect(await os.info('small.txt')).toMatchObject({ name: 'small.txt', deleted: true, size: 0, chunks: 0, digest: '' });
  });

  it('overwrite: the new content replaces the old; the old chunks are purged', async () => {
    const data = bytes(300 * 1024 + 17, 99);
    const put = await os.putBlob({ name: 'big.bin' }, data);
    expect(put).toMatchObject({ size: data.length, chunks: 3, digest: digestOf(data) });
    const back = await os.getBlob('big.bin');
    expect(Buffer.from(back!).equals(Buffer.from(data))).toBe(true);
    // big.bin: 3 chunks + meta; empty: meta; small.txt: deleted meta.
    expect((await jsm.streams.info('OBJ_files')).state.messages).toBe(6);
    expect((await os.list()).map((o) => `${o.name}:${o.size}`).sort()).toEqual([`big.bin:${data.length}`, 'empty:0']);
  });

  it('the bucket survives a restart; destroy removes it', async () => {
    await server.restart();
    nc = await server.connect();
    jsm = await jetstreamManager(nc);
    os = await new Objm(nc).open('files');
    const back = await os.getBlob('big.bin');
    expect(back?.length).toBe(300 * 1024 + 17);
    expect(Buffer.from(back!).equals(Buffer.from(bytes(300 * 1024 + 17, 99)))).toBe(true);
    expect(await os.destroy()).toBe(true);
    await expect(jsm.streams.info('OBJ_files')).rejects.toThrow(/stream not found/);
  });
});
