#!/usr/bin/env node
// Parse-throughput micro-benchmark of the client-protocol parser.
// Feeds a big buffer of `PUB foo.bar 128\r\n<128 bytes>\r\n` frames in 64 KiB chunks and prints
// messages per second (best of several rounds).
//   node scripts/bench/parser.mjs [--mb 64] [--rounds 7] [--size 128]
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importTs } from '../lib/import-ts.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const totalMb = opt('mb', 64);
const rounds = opt('rounds', 7);
const size = opt('size', 128);
const CHUNK = 64 * 1024;

const here = dirname(fileURLToPath(import.meta.url));
{
  const { Parser } = await importTs(join(here, '../../src/nats/parser.ts'));

  const frame = Buffer.concat([Buffer.from(`PUB foo.bar ${size}\r\n`), Buffer.alloc(size, 0x61), Buffer.from('\r\n')]);
  const count = Math.floor((totalMb * 1024 * 1024) / frame.length);
  const stream = Buffer.allocUnsafe(count * frame.length);
  for (let i = 0; i < count; i++) frame.copy(stream, i * frame.length);
  const chunks = [];
  for (let i = 0; i < stream.length; i += CHUNK) chunks.push(stream.subarray(i, i + CHUNK));

  let msgs = 0;
  let bytes = 0;
  const handler = {
    onConnect() {},
    onInfo() {},
    onPub(subject, reply, hdrLen, data) {
      msgs++;
      bytes += data.length;
    },
    onSub() {},
    onUnsub() {},
    onPing() {},
    onPong() {},
    onOk() {},
    onError(kind, detail) {
      throw new Error(`parse error ${kind}: ${detail}`);
    },
  };

  const rates = [];
  for (let r = 0; r < rounds; r++) {
    msgs = 0;
    bytes = 0;
    const parser = new Parser(handler, { maxControlLine: 4096, maxPayload: 1024 * 1024 });
    const t0 = process.hrtime.bigint();
    for (const c of chunks) parser.parse(c);
    const ns = Number(process.hrtime.bigint() - t0);
    if (msgs !== count || bytes !== count * size) throw new Error(`parsed ${msgs}/${count} messages`);
    rates.push(msgs / (ns / 1e9));
  }
  rates.sort((a, b) => b - a);
  const best = rates[0];
  const median = rates[Math.floor(rates.length / 2)];
  console.log(
    `parser: ${count} x PUB ${size} B in ${chunks.length} chunks of 64 KiB: ` +
      `best ${(best / 1e6).toFixed(2)} M msgs/s (${((best * frame.length) / 1e6).toFixed(0)} MB/s), ` +
      `median ${(median / 1e6).toFixed(2)} M msgs/s`,
  );
}
