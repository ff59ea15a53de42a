/**
 * Fuzzing of the MQTT decoding path: a real MqttBroker (session registry, retained store and
 * SQLite session store, the router, the Outbound) with one MqttConnection per input over an
 * in-memory socket, fed MQTT 3.1 / 3.1.1 / 5.0 packets that are first generated valid (mostly
 * with mqtt-packet's generate, partly by a raw encoder that can also write what generate
 * refuses: bad UTF-8, U+0000, wrong property types, duplicate or unknown properties, zero
 * aliases and identifiers, overrunning lengths), then mutated (bit flips, truncation, bad and
 * non-minimal remaining lengths, huge lengths, spliced, swapped and duplicated packets), and
 * cut into chunks at random points.
 *
 * For every input it checks:
 *  - no exception escapes (neither out of the socket's data path nor as an uncaughtException
 *    or unhandledRejection), and the broker logs no internal error;
 *  - what the server wrote parses as a sequence of server-to-client packets (at most one
 *    CONNACK and first; no DISCONNECT to a 3.1.1 client; a v5 DISCONNECT carries a failure
 *    reason code and is the last packet; a refusing CONNACK is the last packet);
 *  - the input ends open and answering PINGREQ with PINGRESP, or closed, within a bounded time
 *    (a packet left half-sent is first completed with filler bytes, so it must resolve);
 *  - after the connection is gone (and any persistent session it left was ended by a clean
 *    reconnect with its client id), the broker has no connection and no session left and its
 *    memory budget is back to zero;
 *  - every HEALTH_EVERY inputs, a clean mqtt.js client over real TCP connects, subscribes and
 *    gets a QoS 1 round trip (and a QoS 1 publish into a capturing stream is acknowledged).
 *
 * Two brokers take turns: an open one, and one with users, permissions, QoS 2 publishes refused
 * and QoS 2 subscriptions downgraded. Some inputs first set up a persistent session (left
 * offline or still connected) with a client id the input may reuse, so takeover, resumption
 * and delivery of queued messages to a fuzzed client are on the path too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { pathToFileURL } from 'node:url';
import type BetterSqlite3 from 'better-sqlite3';
import type { Database } from 'better-sqlite3';
import { connectAsync, type IClientOptions } from 'mqtt';
import mqtt from 'mqtt-packet';
import type { IConnectPacket, IPublishPacket, ISubscription, Packet, QoS, UserProperties } from 'mqtt-packet';
import { getEntry, parseConfig } from '../../src/config/conf-parser.js';
import { defaultOptions } from '../../src/config/load.js';
import type { ServerOptions } from '../../src/config/options.js';
import type { Message } from '../../src/core/message.js';
import type { Subscriber, Subscription } from '../../src/core/subscription.js';
import { Logger, type LogLevel } from '../../src/log.js';
import { MqttBroker } from '../../src/mqtt/broker.js';
import { parseMqttConfig } from '../../src/mqtt/config.js';
import type { MqttConnection } from '../../src/mqtt/connection.js';
import { MqttListener } from '../../src/mqtt/listener.js';
import type { StoreHost } from '../../src/mqtt/store-schema.js';
import { Server } from '../../src/server.js';
import { GroupCommit } from '../../src/store/group-commit.js';
import { Prng } from './parser-fuzz.js';

export interface MqttFuzzOptions {
  seed: number;
  iterations: number;
  progress?: (done: number) => void;
}

export interface MqttFuzzFailure {
  iteration: number;
  message: string;
  chunkSizes: number[];
  input: string;
}

export interface MqttFuzzResult {
  iterations: number;
  bytes: number;
  chunks: number;
  /** 'pingresp' (open and answering), or 'closed: <reason>' / 'closed on filler: ...' / 'closed on ping: ...'. */
  outcomes: Record<string, number>;
  failures: MqttFuzzFailure[];
  /** Clean-client round trips over TCP that passed. */
  healthChecks: number;
  /** Persistent sessions inputs left behind (ended by a clean reconnect before the budget check). */
  sessionsEnded: number;
  /** The slowest input, connection setup to budget check, in ms. */
  slowestMs: number;
  /**
   * Every failure by kind (its first problem with numbers taken out): the run goes on after a
   * failure, keeping the first EXAMPLES_PER_KIND inputs of each kind in `failures`.
   */
  failureKinds: Record<string, number>;
}

const EXAMPLES_PER_KIND = 3;
const MAX_EXAMPLES = 60;

function failureKind(problem: string): string {
  return problem
    .split('\n')[0]!
    .replace(/cid:\d+/g, 'cid:N')
    .replace(/\b\d+\b/g, 'N')
    .slice(0, 160);
}

const HEALTH_EVERY = 1000;
const PINGREQ = Buffer.from([0xc0, 0x00]);
/** Inputs that neither answer nor close within this are failures (keep-alive never fires this fast). */
const ANSWER_DEADLINE_MS = 3000;
const HEALTH_DEADLINE_MS = 5000;

// ---------------------------------------------------------------------------------------------
// A better-sqlite3 that works when this file is bundled (scripts/fuzz/run.mjs bundles it into a
// temporary file, where the addon's own lookup cannot find its native binding): the package is
// loaded at run time from the repository's node_modules, outside the bundle.

type SqliteCtor = typeof BetterSqlite3;

function loadSqlite(): SqliteCtor {
  const bases = [import.meta.url, process.argv[1] !== undefined ? pathToFileURL(process.argv[1]).href : undefined, pathToFileURL(join(process.cwd(), 'noop.js')).href];
  let last: unknown;
  for (const base of bases) {
    if (base === undefined) continue;
    try {
      return createRequire(base)('better-sqlite3') as SqliteCtor;
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`better-sqlite3 not found from ${process.cwd()}: ${String(last)}`);
}

// ---------------------------------------------------------------------------------------------
// The in-memory socket under a connection (not a protocol peer: it only carries bytes).

class MemorySocket extends Duplex {
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 1;
  out: Buffer[] = [];
  outBytes = 0;

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // Copied: the Outbound reuses its slabs once a write completed.
    this.out.push(Buffer.from(chunk));
    this.outBytes += chunk.length;
    cb();
  }

  setNoDelay(): this {
    return this;
  }

  output(): Buffer {
    if (this.out.length > 1) this.out = [Buffer.concat(this.out)];
    return this.out[0] ?? Buffer.alloc(0);
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Raw encoding (what mqtt-packet's generate will not write)

function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n & 0xffff, 0);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let d = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) d |= 0x80;
    out.push(d);
  } while (n > 0 && out.length < 4);
  return Buffer.from(out);
}

/** A varint for `n` padded to `size` bytes with continuation bytes (non-minimal; 5 bytes is illegal). */
function paddedVarint(n: number, size: number): Buffer {
  const min = varint(n);
  if (min.length >= size) return min;
  const out = [...min];
  out[out.length - 1] = min[min.length - 1]! | 0x80;
  while (out.length < size - 1) out.push(0x80);
  out.push(0x00);
  return Buffer.from(out);
}

/** Byte sequences that are not valid MQTT UTF-8 (overlong, surrogate, stray, truncated, NUL, above U+10FFFF). */
const BAD_UTF8: readonly Buffer[] = [
  [0xc0, 0x80],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0x80],
  [0xbf],
  [0xff],
  [0xfe],
  [0xe2, 0x82],
  [0xc2],
  [0x00],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xe0, 0x80, 0xaf],
].map((a) => Buffer.from(a));

function withBadUtf8(rng: Prng, b: Buffer): Buffer {
  const at = rng.int(b.length + 1);
  return Buffer.concat([b.subarray(0, at), rng.pick(BAD_UTF8), b.subarray(at)]);
}

interface Gen {
  rng: Prng;
  v: 3 | 4 | 5;
  /** Probability that one raw field is made invalid. */
  bad: number;
  auth: boolean;
  /** Packet ids this input used (acks refer to them). */
  ids: number[];
}

/** A UTF-8 string field: 2-byte length + bytes, sometimes with bad bytes or an overrunning length. */
function str(g: Gen, s: string | Buffer): Buffer {
  let b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  if (g.rng.chance(g.bad * 0.5)) b = withBadUtf8(g.rng, b);
  let len = b.length;
  if (g.rng.chance(g.bad * 0.1)) len = g.rng.chance(0.5) ? 0xffff : len + g.rng.range(1, 4);
  return Buffer.concat([u16(len), b]);
}

function bin(g: Gen, b: Buffer): Buffer {
  let len = b.length;
  if (g.rng.chance(g.bad * 0.05)) len = g.rng.chance(0.5) ? 0xffff : len + g.rng.range(1, 4);
  return Buffer.concat([u16(len), b]);
}

function frame(first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first]), varint(body.length), body]);
}

// ---- v5 properties

type PropType = 'byte' | 'u16' | 'u32' | 'varint' | 'str' | 'bin' | 'pair';

const PROP_TYPES: Record<number, PropType> = {
  0x01: 'byte',
  0x02: 'u32',
  0x03: 'str',
  0x08: 'str',
  0x09: 'bin',
  0x0b: 'varint',
  0x11: 'u32',
  0x12: 'str',
  0x13: 'u16',
  0x15: 'str',
  0x16: 'bin',
  0x17: 'byte',
  0x18: 'u32',
  0x19: 'byte',
  0x1a: 'str',
  0x1c: 'str',
  0x1f: 'str',
  0x21: 'u16',
  0x22: 'u16',
  0x23: 'u16',
  0x24: 'byte',
  0x25: 'byte',
  0x26: 'pair',
  0x27: 'u32',
  0x28: 'byte',
  0x29: 'byte',
  0x2a: 'byte',
};
const ALL_PROP_IDS = Object.keys(PROP_TYPES).map(Number);
const UNKNOWN_PROP_IDS = [0x00, 0x04, 0x05, 0x06, 0x07, 0x0a, 0x0c, 0x10, 0x14, 0x1b, 0x1d, 0x1e, 0x20, 0x2b, 0x3f, 0x7f, 0x80, 0xff];
const PROPS_CONNECT = [0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x26, 0x15, 0x16];
const PROPS_WILL = [0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26];
const PROPS_PUBLISH = [0x01, 0x02, 0x23, 0x23, 0x08, 0x09, 0x26, 0x26, 0x03];
const PROPS_SUBSCRIBE = [0x0b, 0x26];
const PROPS_UNSUBSCRIBE = [0x26];
const PROPS_ACK = [0x1f, 0x26];
const PROPS_DISCONNECT = [0x11, 0x1f, 0x26, 0x1c];
const PROPS_AUTH = [0x15, 0x16, 0x1f, 0x26];

const PROP_STRINGS = ['text/plain', 'application/json', 'a/b', 'resp/topic', 'cap/x', '', 'k', 'v', '温度', 'a.b', 'x'.repeat(120)];

function propValue(g: Gen, id: number, type: PropType): Buffer {
  const rng = g.rng;
  const bad = rng.chance(g.bad);
  switch (type) {
    case 'byte':
      return Buffer.from([bad ? rng.pick([2, 3, 0x7f, 0xff]) : rng.int(2)]);
    case 'u16':
      // Topic Alias within the server's maximum (10) most of the time; 0 and above the maximum are bad.
      if (id === 0x23 && !bad) return u16(rng.range(1, 10));
      return u16(bad ? rng.pick([0, 11, 0xffff]) : rng.pick([1, 2, 10, 100, 65535]));
    case 'u32':
      return u32(bad ? rng.pick([0, 0xffffffff, 0x7fffffff]) : rng.pick([0, 1, 5, 60, 3600, 0xffffffff]));
    case 'varint':
      if (bad) return rng.chance(0.5) ? Buffer.from([0x00]) : Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]);
      return varint(rng.chance(0.8) ? rng.range(1, 1000) : rng.range(1, 268_435_455));
    case 'str':
      return str(g, rng.pick(PROP_STRINGS));
    case 'bin':
      return bin(g, Buffer.from(Array.from({ length: rng.int(12) }, () => rng.int(256))));
    case 'pair':
      return Buffer.concat([str(g, rng.pick(PROP_STRINGS)), str(g, rng.pick(PROP_STRINGS))]);
  }
}

const PROP_TYPE_LIST: readonly PropType[] = ['byte', 'u16', 'u32', 'varint', 'str', 'bin', 'pair'];

/** A v5 property block (length varint + properties) for a packet allowing `allowed`. */
function props(g: Gen, allowed: readonly number[]): Buffer {
  const rng = g.rng;
  const parts: Buffer[] = [];
  const n = rng.chance(0.3) ? 0 : rng.range(1, 4);
  for (let i = 0; i < n; i++) {
    let id = rng.pick(allowed);
    if (rng.chance(g.bad * 0.3)) id = rng.chance(0.5) ? rng.pick(UNKNOWN_PROP_IDS) : rng.pick(ALL_PROP_IDS);
    let type = PROP_TYPES[id] ?? rng.pick(PROP_TYPE_LIST);
    if (rng.chance(g.bad * 0.15)) type = rng.pick(PROP_TYPE_LIST);
    const one = Buffer.concat([Buffer.from([id]), propValue(g, id, type)]);
    parts.push(one);
    // A repeated single-value property is a Protocol Error (user properties may repeat).
    if (rng.chance(g.bad * 0.2)) parts.push(one);
  }
  const body = Buffer.concat(parts);
  let len = body.length;
  if (rng.chance(g.bad * 0.1)) len = rng.chance(0.5) ? Math.max(0, len + rng.range(-3, 3)) : rng.pick([0xffff, 268_435_455]);
  const lenBytes = rng.chance(g.bad * 0.05) ? paddedVarint(len, rng.range(2, 5)) : varint(len);
  return Buffer.concat([lenBytes, body]);
}

// ---- vocabulary

const TOPICS = ['a', 'a/b', 'a/b/c', 'sensors/t1/temp', 'sensors/t2/temp', 'cap/x', 'cap/y/z', '$SYS/x', 'a.b', '/lead', 'trail/', 'a//b', '温度/室', 'a/secret', 'health/x', ' ', 'x'.repeat(300)];
const BAD_TOPICS = ['+', '#', 'a/+', 'a/#', '', 'a/b#', '+/x', 'a\u0000b'];
const FILTERS = ['#', '+', 'a/#', 'a/+/c', 'a/b', 'a/+', 'sensors/+/temp', 'cap/#', '$SYS/#', '+/+', '/#', 'a//b', '温度/+', '$share/g/a/#', '$share/g2/+', '$share/g/cap/x', 'a/secret/#'];
const BAD_FILTERS = ['a/#/b', 'a+/b', 'a/b#', '$share//a', '$share/g', '$share/g+/a', '$share/g/', '$MQTT/sub/x', '', '##', 'a/#/', '#/'];
const CLIENT_IDS = ['s1', 's2', 'sensor-7', 'dash', '温度計', 'x'.repeat(23), 'y'.repeat(200), 'a/b', 'a-b_c'];
const BAD_CLIENT_IDS = ['', 'a.b', 'a*', 'a>', 'tab\there', 'with space'];

function pickTopic(rng: Prng, bad: number): string {
  return rng.chance(bad * 0.3) ? rng.pick(BAD_TOPICS) : rng.pick(TOPICS);
}

function pickFilter(rng: Prng, bad: number): string {
  return rng.chance(bad * 0.3) ? rng.pick(BAD_FILTERS) : rng.pick(FILTERS);
}

function pickClientId(rng: Prng, bad: number): string {
  return rng.chance(bad * 0.3) ? rng.pick(BAD_CLIENT_IDS) : rng.pick(CLIENT_IDS);
}

function payload(rng: Prng): Buffer {
  const r = rng.int(100);
  const n = r < 20 ? 0 : r < 90 ? rng.range(1, 64) : r < 99 ? rng.range(65, 4000) : rng.range(60_000, 100_000);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < Math.min(n, 64); i++) b[i] = rng.int(256);
  if (n > 64) b.fill(0x61, 64);
  return b;
}

function packetId(g: Gen): number {
  const rng = g.rng;
  if (g.ids.length > 0 && rng.chance(0.3)) return rng.pick(g.ids);
  const id = rng.chance(g.bad * 0.2) ? 0 : rng.chance(0.7) ? rng.range(1, 20) : rng.range(1, 65535);
  if (id !== 0) g.ids.push(id);
  return id;
}

function userProps(rng: Prng): UserProperties | undefined {
  if (!rng.chance(0.3)) return undefined;
  const up: UserProperties = {};
  const n = rng.range(1, 3);
  for (let i = 0; i < n; i++) {
    const k = rng.pick(['k', 'unit', 'Content-Type', 'a b', 'x:y', '温度']);
    up[k] = rng.chance(0.2) ? [rng.pick(PROP_STRINGS), rng.pick(PROP_STRINGS)] : rng.pick(PROP_STRINGS);
  }
  return up;
}

// ---- packets as objects, written by mqtt-packet's generate

function credentials(g: Gen): { username?: string; password?: Buffer } {
  const rng = g.rng;
  if (g.auth) {
    const r = rng.int(10);
    if (r < 6) return { username: 'fuzz', password: Buffer.from('pw') };
    if (r < 8) return { username: 'open', password: Buffer.from('pw2') };
    if (r < 9) return { username: 'fuzz', password: Buffer.from('wrong') };
    return {};
  }
  return rng.chance(0.2) ? { username: rng.pick(['u', 'fuzz', '']), password: Buffer.from('p') } : {};
}

function connectObj(g: Gen, clientId?: string): IConnectPacket {
  const { rng, v } = g;
  const p: IConnectPacket = {
    cmd: 'connect',
    protocolId: v === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: v,
    clientId: clientId ?? (rng.chance(0.1) ? '' : pickClientId(rng, 0)),
    clean: rng.chance(0.7),
    keepalive: rng.pick([0, 1, 30, 60, 65535]),
    ...credentials(g),
  };
  if (p.clientId === '' && !p.clean && v !== 5) p.clean = true;
  if (rng.chance(0.25)) {
    p.will = { topic: pickTopic(rng, 0), payload: payload(rng).subarray(0, 32), qos: rng.int(3) as QoS, retain: rng.chance(0.3) };
    if (v === 5 && rng.chance(0.5)) {
      p.will.properties = { willDelayInterval: rng.pick([0, 1, 5]), messageExpiryInterval: rng.pick([0, 10]), contentType: 'text/plain' };
      const up = userProps(rng);
      if (up !== undefined) p.will.properties.userProperties = up;
    }
  }
  if (v === 5 && rng.chance(0.6)) {
    p.properties = {
      sessionExpiryInterval: rng.pick([0, 0, 10, 300, 0xffffffff]),
      receiveMaximum: rng.pick([1, 2, 10, 65535]),
      maximumPacketSize: rng.pick([20, 64, 1024, 268_435_455]),
      topicAliasMaximum: rng.pick([0, 5]),
      requestProblemInformation: rng.chance(0.8),
      requestResponseInformation: rng.chance(0.2),
    };
    const up = userProps(rng);
    if (up !== undefined) p.properties.userProperties = up;
  }
  return p;
}

function publishObj(g: Gen): IPublishPacket {
  const { rng, v } = g;
  const qos = rng.int(3) as QoS;
  const p: IPublishPacket = { cmd: 'publish', topic: pickTopic(rng, 0), payload: payload(rng), qos, dup: rng.chance(0.1), retain: rng.chance(0.2) };
  if (qos > 0) p.messageId = rng.range(1, 30);
  if (p.messageId !== undefined) g.ids.push(p.messageId);
  if (v === 5 && rng.chance(0.5)) {
    p.properties = {};
    if (rng.chance(0.3)) p.properties.topicAlias = rng.range(1, 10);
    if (rng.chance(0.3)) p.properties.messageExpiryInterval = rng.pick([1, 60]);
    if (rng.chance(0.3)) p.properties.contentType = 'application/json';
    if (rng.chance(0.2)) p.properties.responseTopic = rng.pick(['resp/x', 'a/b']);
    if (rng.chance(0.2)) p.properties.correlationData = Buffer.from([1, 2, 3]);
    if (rng.chance(0.2)) p.properties.payloadFormatIndicator = rng.chance(0.5);
    const up = userProps(rng);
    if (up !== undefined) p.properties.userProperties = up;
  }
  // The alias alone (empty topic) after it was set.
  if (v === 5 && p.properties?.topicAlias !== undefined && rng.chance(0.3)) p.topic = '';
  return p;
}

function objPacket(g: Gen): Packet {
  const { rng, v } = g;
  const r = rng.int(100);
  if (r < 35) return publishObj(g);
  if (r < 55) {
    const n = rng.range(1, 3);
    const subscriptions: ISubscription[] = [];
    for (let i = 0; i < n; i++) {
      const s: ISubscription = { topic: pickFilter(rng, 0), qos: rng.int(3) as QoS };
      if (v === 5) {
        s.nl = rng.chance(0.2) && !s.topic.startsWith('$share/');
        s.rap = rng.chance(0.3);
        s.rh = rng.int(3);
      }
      subscriptions.push(s);
    }
    const messageId = rng.range(1, 100);
    return v === 5 && rng.chance(0.3)
      ? { cmd: 'subscribe', messageId, subscriptions, properties: { subscriptionIdentifier: rng.range(1, 1000) } }
      : { cmd: 'subscribe', messageId, subscriptions };
  }
  if (r < 63) return { cmd: 'unsubscribe', messageId: rng.range(1, 100), unsubscriptions: [pickFilter(rng, 0)] };
  if (r < 73) return { cmd: 'pingreq' };
  if (r < 90) {
    const cmd = rng.pick(['puback', 'pubrec', 'pubrel', 'pubcomp'] as const);
    const messageId = g.ids.length > 0 && rng.chance(0.5) ? rng.pick(g.ids) : rng.range(1, 5);
    return v === 5 && rng.chance(0.3) ? { cmd, messageId, reasonCode: rng.pick([0, 0x10, 0x80, 0x92]) } : { cmd, messageId };
  }
  if (r < 95) {
    if (v !== 5) return { cmd: 'disconnect' };
    return rng.chance(0.5) ? { cmd: 'disconnect', reasonCode: rng.pick([0, 4]), properties: { sessionExpiryInterval: rng.pick([0, 10]) } } : { cmd: 'disconnect', reasonCode: rng.pick([0, 4, 0x80]) };
  }
  if (v === 5) return { cmd: 'auth', reasonCode: rng.pick([0, 0x18, 0x19]), properties: { authenticationMethod: 'SCRAM', authenticationData: Buffer.from([1]) } };
  return connectObj(g);
}

function generated(g: Gen, p: Packet): Buffer | null {
  try {
    return mqtt.generate(p, { protocolVersion: g.v });
  } catch {
    return null;
  }
}

// ---- packets written by hand (with invalid fields at rate g.bad)

function rawConnect(g: Gen, clientId?: string): Buffer {
  const { rng, v } = g;
  const bad = (p: number): boolean => rng.chance(g.bad * p);
  const name = bad(0.1) ? rng.pick(['MQXX', 'mqtt', 'MQTT\u0000', '', 'MQIsdpX']) : v === 3 ? 'MQIsdp' : 'MQTT';
  const level = bad(0.1) ? rng.pick([0, 2, 6, 9, 0x83, 0x84, 0xff]) : v;
  const cred = credentials(g);
  const will = rng.chance(0.25);
  const willQos = bad(0.1) ? 3 : rng.int(3);
  let flags = (rng.chance(0.7) ? 0x02 : 0) | (will ? 0x04 | (willQos << 3) | (rng.chance(0.3) ? 0x20 : 0) : 0);
  if (cred.username !== undefined) flags |= 0x80;
  if (cred.password !== undefined) flags |= 0x40;
  if (bad(0.1)) flags |= 0x01;
  if (!will && bad(0.1)) flags |= rng.pick([0x08, 0x10, 0x20]);
  if (bad(0.1)) flags ^= rng.pick([0x40, 0x80]);
  const parts: Buffer[] = [str(g, name), Buffer.from([level, flags]), u16(rng.pick([0, 1, 60, 65535]))];
  if (v === 5) parts.push(props(g, PROPS_CONNECT));
  parts.push(str(g, clientId ?? pickClientId(rng, g.bad)));
  if (will) {
    if (v === 5) parts.push(props(g, PROPS_WILL));
    parts.push(str(g, pickTopic(rng, g.bad)), bin(g, payload(rng).subarray(0, 40)));
  }
  if (flags & 0x80) parts.push(str(g, cred.username ?? 'u'));
  if (flags & 0x40) parts.push(bin(g, cred.password ?? Buffer.from('p')));
  return frame(0x10, Buffer.concat(parts));
}

function rawPublish(g: Gen): Buffer {
  const { rng, v } = g;
  const qos = rng.chance(g.bad * 0.05) ? 3 : rng.int(3);
  const first = 0x30 | (rng.chance(0.1) ? 0x08 : 0) | (qos << 1) | (rng.chance(0.2) ? 1 : 0);
  const parts: Buffer[] = [str(g, pickTopic(rng, g.bad))];
  if (qos > 0) parts.push(u16(packetId(g)));
  if (v === 5) parts.push(props(g, PROPS_PUBLISH));
  parts.push(payload(rng));
  return frame(first, Buffer.concat(parts));
}

function rawSubscribe(g: Gen): Buffer {
  const { rng, v } = g;
  const parts: Buffer[] = [u16(packetId(g))];
  if (v === 5) parts.push(props(g, PROPS_SUBSCRIBE));
  const n = rng.chance(g.bad * 0.1) ? 0 : rng.range(1, 4);
  for (let i = 0; i < n; i++) {
    let opts = rng.int(3);
    if (v === 5) opts |= (rng.chance(0.2) ? 0x04 : 0) | (rng.chance(0.3) ? 0x08 : 0) | (rng.int(3) << 4);
    if (rng.chance(g.bad * 0.1)) opts |= rng.pick([0x03, 0x30, 0x40, 0x80]);
    parts.push(str(g, pickFilter(rng, g.bad)), Buffer.from([opts]));
  }
  return frame(0x82, Buffer.concat(parts));
}

function rawUnsubscribe(g: Gen): Buffer {
  const { rng, v } = g;
  const parts: Buffer[] = [u16(packetId(g))];
  if (v === 5) parts.push(props(g, PROPS_UNSUBSCRIBE));
  const n = rng.chance(g.bad * 0.1) ? 0 : rng.range(1, 3);
  for (let i = 0; i < n; i++) parts.push(str(g, pickFilter(rng, g.bad)));
  return frame(0xa2, Buffer.concat(parts));
}

function rawAck(g: Gen): Buffer {
  const { rng, v } = g;
  const type = rng.pick([4, 5, 6, 7]);
  const parts: Buffer[] = [u16(packetId(g))];
  if (v === 5 && rng.chance(0.5)) {
    parts.push(Buffer.from([rng.chance(g.bad * 0.3) ? rng.pick([0x01, 0x7f, 0xff]) : rng.pick([0x00, 0x10, 0x80, 0x92])]));
    if (rng.chance(0.5)) parts.push(props(g, PROPS_ACK));
  }
  return frame((type << 4) | (type === 6 ? 0x02 : 0), Buffer.concat(parts));
}

function rawDisconnect(g: Gen): Buffer {
  const { rng, v } = g;
  if (v !== 5 || rng.chance(0.3)) return Buffer.from([0xe0, 0x00]);
  const parts: Buffer[] = [Buffer.from([rng.chance(g.bad * 0.3) ? rng.pick([0x01, 0x03, 0xff]) : rng.pick([0x00, 0x04, 0x80, 0x8e])])];
  if (rng.chance(0.6)) parts.push(props(g, PROPS_DISCONNECT));
  return frame(0xe0, Buffer.concat(parts));
}

function rawAuth(g: Gen): Buffer {
  const { rng } = g;
  const parts: Buffer[] = [Buffer.from([rng.pick([0x00, 0x18, 0x19, 0x01])])];
  if (rng.chance(0.7)) parts.push(props(g, PROPS_AUTH));
  return frame(0xf0, Buffer.concat(parts));
}

/** A packet cut short: its remaining length covers less than its packet identifier. */
function rawShort(g: Gen): Buffer {
  const rng = g.rng;
  const first = rng.pick([0x40, 0x50, 0x62, 0x70, 0x82, 0xa2, 0x32, 0x34, 0xe0, 0xf0]);
  const body = rng.chance(0.5) ? Buffer.alloc(0) : Buffer.from([rng.int(256)]);
  return frame(first, body);
}

function rawPacket(g: Gen): Buffer {
  if (g.rng.chance(g.bad * 0.1)) return rawShort(g);
  const r = g.rng.int(100);
  if (r < 35) return rawPublish(g);
  if (r < 55) return rawSubscribe(g);
  if (r < 63) return rawUnsubscribe(g);
  if (r < 70) return PINGREQ;
  if (r < 85) return rawAck(g);
  if (r < 91) return rawDisconnect(g);
  if (r < 96) return rawAuth(g);
  return rawConnect(g);
}

// ---- mutation

/** Splits `buf` at its frame boundaries as the server frames (1-4 length bytes); the tail may be partial. */
function frameEnds(buf: Buffer): number[] {
  const ends: number[] = [];
  let pos = 0;
  while (pos < buf.length) {
    let len = 0;
    let mul = 1;
    let i = pos + 1;
    let complete = false;
    for (let k = 0; k < 4 && i < buf.length; k++, i++) {
      const b = buf[i]!;
      len += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        complete = true;
        i++;
        break;
      }
    }
    if (!complete || i + len > buf.length) break;
    pos = i + len;
    ends.push(pos);
  }
  return ends;
}

/** Bytes that finish a half-sent last packet (length bytes, then the body), so it must resolve. */
function completion(input: Buffer): Buffer {
  let pos = 0;
  const n = input.length;
  while (pos < n) {
    let len = 0;
    let mul = 1;
    let i = pos + 1;
    let k = 0;
    let complete = false;
    for (; k < 4 && i < n; k++, i++) {
      const b = input[i]!;
      len += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        complete = true;
        i++;
        break;
      }
    }
    if (!complete) return k >= 4 ? Buffer.alloc(0) : Buffer.alloc(1 + len);
    if (i + len > n) return Buffer.alloc(i + len - n);
    pos = i + len;
  }
  return Buffer.alloc(0);
}

/** A frame's remaining length rewritten: off by a little, non-minimal, 5 bytes, huge or zero. */
function relength(rng: Prng, f: Buffer): Buffer {
  const ends = frameEnds(f);
  if (ends.length === 0) return f;
  let i = 1;
  while (i < f.length && (f[i]! & 0x80) !== 0) i++;
  const body = f.subarray(i + 1);
  const r = rng.int(6);
  let len: Buffer;
  if (r === 0) len = varint(Math.max(0, body.length + rng.range(-4, 4)));
  else if (r === 1) len = paddedVarint(body.length, rng.range(2, 4));
  else if (r === 2) len = paddedVarint(body.length, 5);
  else if (r === 3) len = Buffer.from(rng.pick([[0xff, 0xff, 0xff, 0x7f], [0x80, 0x80, 0x80, 0x80, 0x01], [0xff, 0xff, 0x7f], [0x80, 0x80, 0x04]]));
  else if (r === 4) len = Buffer.from([0x00]);
  else len = varint(body.length + rng.range(5, 200));
  return Buffer.concat([f.subarray(0, 1), len, body]);
}

function mutateFrames(g: Gen, frames: Buffer[]): void {
  const rng = g.rng;
  const n = rng.range(1, 3);
  for (let k = 0; k < n && frames.length > 0; k++) {
    const i = rng.int(frames.length);
    const f = frames[i]!;
    switch (rng.int(9)) {
      case 0:
        frames.splice(rng.int(frames.length + 1), 0, f);
        break;
      case 1: {
        const j = rng.int(frames.length);
        frames[i] = frames[j]!;
        frames[j] = f;
        break;
      }
      case 2:
        frames.splice(i, 1);
        break;
      case 3: {
        // A packet of another protocol version spliced in.
        const other: Gen = { ...g, v: g.v === 5 ? 4 : 5 };
        frames.splice(rng.int(frames.length + 1), 0, rng.chance(0.5) ? rawPacket(other) : (generated(other, objPacket(other)) ?? PINGREQ));
        break;
      }
      case 4:
      case 5:
        frames[i] = relength(rng, f);
        break;
      case 6: {
        // Wrong fixed-header flags, or another packet type with the same body.
        const c = Buffer.from(f);
        c[0] = rng.chance(0.5) ? (c[0]! & 0xf0) | rng.int(16) : (rng.int(16) << 4) | (c[0]! & 0x0f);
        frames[i] = c;
        break;
      }
      case 7:
        // One packet's length made to swallow the next one.
        if (i + 1 < frames.length) {
          const joined = Buffer.concat([f, frames[i + 1]!]);
          let h = 1;
          while (h < f.length && (f[h]! & 0x80) !== 0) h++;
          frames.splice(i, 2, Buffer.concat([f.subarray(0, 1), varint(joined.length - h - 1), joined.subarray(h + 1)]));
        }
        break;
      default:
        frames.splice(i, 0, Buffer.from(Array.from({ length: rng.range(1, 12) }, () => rng.int(256))));
    }
  }
}

function mutateBytes(rng: Prng, input: Buffer): Buffer {
  let b = Buffer.from(input);
  const n = rng.range(1, 4);
  for (let k = 0; k < n && b.length > 0; k++) {
    const at = rng.int(b.length);
    switch (rng.int(8)) {
      case 0:
      case 1: {
        const flips = rng.range(1, 4);
        for (let f = 0; f < flips; f++) {
          const p = rng.int(b.length);
          b[p] = b[p]! ^ (1 << rng.int(8));
        }
        break;
      }
      case 2:
        b[at] = rng.pick([0x00, 0xff, 0x7f, 0x80, 0xc0, 0x01]);
        break;
      case 3:
        b = b.subarray(0, at);
        break;
      case 4:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: rng.range(1, 8) }, () => rng.int(256))), b.subarray(at)]);
        break;
      case 5:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + rng.range(1, 16)))]);
        break;
      case 6: {
        const end = Math.min(b.length, at + rng.range(1, 64));
        b = Buffer.concat([b.subarray(0, end), b.subarray(at, end), b.subarray(end)]);
        break;
      }
      default: {
        const bad = rng.pick(BAD_UTF8);
        b = Buffer.concat([b.subarray(0, at), bad, b.subarray(Math.min(b.length, at + bad.length))]);
      }
    }
  }
  return b;
}

function split(rng: Prng, buf: Buffer): Buffer[] {
  if (buf.length <= 1 || rng.chance(0.35)) return [buf];
  if (buf.length <= 300 && rng.chance(0.05)) return Array.from(buf, (x) => Buffer.from([x]));
  const cuts = new Set<number>();
  const n = rng.range(1, Math.min(12, buf.length - 1));
  for (let i = 0; i < n; i++) cuts.add(rng.range(1, buf.length - 1));
  const sorted = [...cuts].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of sorted) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  out.push(buf.subarray(prev));
  return out;
}

const GARBAGE = [
  Buffer.from('GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n'),
  Buffer.from('CONNECT {"verbose":false}\r\nPING\r\n'),
  Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]),
  Buffer.from([0x10]),
  Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]),
  Buffer.from([0x10, 0x00]),
  Buffer.from('100c00044d5154540400001e0000', 'hex'),
  Buffer.from('101000044d5154540502003c0300000000', 'hex'),
];

export interface MqttFuzzInput {
  env: 'open' | 'auth';
  version: 3 | 4 | 5;
  chunks: Buffer[];
  /** A persistent session set up before the input (client id), offline or still connected. */
  setup: { clientId: string; live: boolean; v: 4 | 5; filters: string[] } | null;
  /** true: a loop turn between chunks; false: only the microtasks run in between. */
  turns: boolean;
}

export function genInput(rng: Prng): MqttFuzzInput {
  const env = rng.chance(0.2) ? 'auth' : 'open';
  const vr = rng.int(10);
  const v = vr === 0 ? 3 : vr < 5 ? 4 : 5;
  const mode = rng.int(100);
  // valid < 30 <= structured-bad < 65 <= mutated
  const g: Gen = { rng, v, bad: mode < 30 ? 0 : rng.pick([0.1, 0.3, 0.6]), auth: env === 'auth', ids: [] };
  let setup: MqttFuzzInput['setup'] = null;
  if (rng.chance(0.1)) {
    const filters = [rng.pick(FILTERS.filter((f) => !f.startsWith('$'))), rng.pick(FILTERS)];
    setup = { clientId: rng.pick(CLIENT_IDS), live: rng.chance(0.3), v: rng.chance(0.5) ? 5 : 4, filters };
  }
  let input: Buffer;
  if (mode >= 30 && rng.chance(0.03)) {
    input = rng.pick(GARBAGE);
    if (rng.chance(0.5)) input = Buffer.concat([input, Buffer.from(Array.from({ length: rng.range(1, 40) }, () => rng.int(256)))]);
  } else {
    const clientId = setup !== null && rng.chance(0.5) ? setup.clientId : undefined;
    const frames: Buffer[] = [];
    const connect = g.bad === 0 || rng.chance(0.5) ? generated(g, connectObj(g, clientId)) : null;
    frames.push(connect ?? rawConnect(g, clientId));
    const n = rng.chance(0.05) ? rng.range(10, 40) : rng.range(0, 8);
    for (let i = 0; i < n; i++) {
      const p = g.bad === 0 || rng.chance(0.5) ? generated(g, objPacket(g)) : null;
      frames.push(p ?? rawPacket(g));
    }
    if (mode >= 30 && rng.chance(0.4)) mutateFrames(g, frames);
    input = Buffer.concat(frames);
    if (mode >= 65) input = mutateBytes(rng, input);
  }
  return { env, version: v, chunks: split(rng, input), setup, turns: rng.chance(0.7) };
}

// ---------------------------------------------------------------------------------------------
// The brokers under test

/** Stands in for a JetStream stream on `cap.>`: captures, then commits a turn later (1 in 20 fails). */
class CaptureStandIn implements Subscriber {
  readonly kind = 'internal' as const;
  readonly echo = true;
  private pending: { receipt: NonNullable<Message['receipt']>; fail: boolean }[] = [];
  private scheduled = false;

  constructor(
    readonly cid: number,
    private readonly rng: Prng,
  ) {}

  deliver(_sub: Subscription, msg: Message): void {
    const receipt = msg.receipt;
    if (receipt === undefined) return;
    receipt.captured();
    this.pending.push({ receipt, fail: !msg.subject.startsWith('cap.health') && this.rng.chance(0.05) });
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const batch = this.pending;
      this.pending = [];
      for (const p of batch) p.receipt.stored(p.fail ? new Error('fuzz: commit failed') : null);
    });
  }
}

class Env {
  private constructor(
    readonly kind: 'open' | 'auth',
    readonly server: Server,
    readonly broker: MqttBroker,
    readonly listener: MqttListener,
    readonly port: number,
    private readonly db: Database,
    private readonly commit: GroupCommit,
    private readonly dir: string,
  ) {}

  static async create(kind: 'open' | 'auth', log: Logger, rng: Prng): Promise<Env> {
    const o: ServerOptions = defaultOptions();
    o.host = '127.0.0.1';
    o.maxPayload = kind === 'open' ? 16 * 1024 : 4096;
    o.maxPendingTotal = 64 * 1024 * 1024;
    o.logging = { debug: false, trace: false, logtime: false, logtimeUtc: false };
    if (kind === 'auth') {
      o.authorization = {
        timeoutMs: 2000,
        users: [
          {
            user: 'fuzz',
            password: 'pw',
            permissions: {
              publish: { allow: ['a.>', 'a', 'cap.>', 'health.>', 'sensors.>'], deny: ['a.secret', 'a.secret.>'] },
              subscribe: { allow: ['>'], deny: ['a.secret', 'a.secret.>', '$SYS.>'] },
            },
          },
          { user: 'open', password: 'pw2' },
        ],
      };
    }
    const text =
      kind === 'open'
        ? 'mqtt { host: 127.0.0.1, port: -1 }'
        : 'mqtt { host: 127.0.0.1, port: -1, max_ack_pending: 2, max_queued_messages: 5, reject_qos2_publish: true, downgrade_qos2_subscribe: true }';
    const dir = mkdtempSync(join(tmpdir(), 'nats-edge-mqtt-fuzz-'));
    // The MQTT stores live in the JetStream database; here that is the database below.
    o.jetstream = { enabled: true, storeDir: dir, maxMemoryStore: 64 * 1024 * 1024, maxFileStore: 256 * 1024 * 1024, syncInterval: 60_000 };
    const node = getEntry(parseConfig(text, 'mqtt-fuzz.conf'), 'mqtt')?.value;
    if (node === undefined) throw new Error('mqtt block missing');
    const mo = parseMqttConfig({ value: undefined, where: 'mqtt-fuzz.conf', node }, o);
    const server = new Server(o, log);
    const Sqlite = loadSqlite();
    const db = new Sqlite(join(dir, 'mqtt.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    const commit = new GroupCommit(db, { syncInterval: 60_000, walMaxBytes: 8 * 1024 * 1024 });
    const host: StoreHost = { db, inNextCommit: (write, done) => commit.inNextCommit(write, done) };
    const broker = new MqttBroker(server, mo, host);
    broker.start();
    const listener = new MqttListener(broker);
    const port = await listener.listen();
    const capture = new CaptureStandIn(server.nextCid(), rng);
    server.router.subscribe({ subject: 'cap.>', queue: '', sid: 'capture', owner: capture, msgs: 0, max: 0 });
    return new Env(kind, server, broker, listener, port, db, commit, dir);
  }

  close(): void {
    this.listener.close();
    this.broker.shutdown();
    this.commit.close();
    this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Retained messages pile up (mutated topics): cleared now and then so SUBSCRIBE stays cheap. */
  trimRetained(max: number): void {
    const r = this.broker.retained;
    if (r.size <= max) return;
    for (const m of r.match(['>'], Date.now())) r.set({ ...m, payload: Buffer.alloc(0) });
  }
}

// ---------------------------------------------------------------------------------------------
// Checks

const SERVER_PACKETS = new Set(['connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'suback', 'unsuback', 'pingresp', 'disconnect']);

interface OutputView {
  packets: Packet[];
  problem: string | null;
}

/** Parses what the server wrote to one client; reports anything a server must not send. */
export function readServerOutput(out: Buffer, v5: boolean): OutputView {
  const packets: Packet[] = [];
  let problem: string | null = null;
  const p = mqtt.parser({ protocolVersion: v5 ? 5 : 4 });
  p.on('packet', (pk: Packet) => packets.push(pk));
  p.on('error', (err: Error) => {
    problem ??= `server output does not parse: ${err.message}`;
  });
  try {
    p.parse(out);
  } catch (err) {
    problem ??= `server output throws in the parser: ${(err as Error).message}`;
  }
  // The parser keeps a partial packet to itself: framing tells.
  const ends = frameEnds(out);
  const whole = ends.length === 0 ? 0 : ends[ends.length - 1]!;
  if (problem === null && whole < out.length) problem = `server output ends in a partial packet (${out.length - whole} bytes)`;
  for (let i = 0; i < packets.length && problem === null; i++) {
    const pk = packets[i]!;
    if (!SERVER_PACKETS.has(pk.cmd)) problem = `server sent ${pk.cmd}`;
    else if (pk.cmd === 'connack' && i !== 0) problem = 'CONNACK not first';
    else if (pk.cmd === 'connack' && (v5 ? (pk.reasonCode ?? 0) : (pk.returnCode ?? 0)) !== 0 && i !== packets.length - 1) problem = 'packets after a refusing CONNACK';
    else if (pk.cmd === 'disconnect' && !v5) problem = 'DISCONNECT sent to a 3.1.1 client';
    else if (pk.cmd === 'disconnect' && (pk.reasonCode ?? 0) < 0x80) problem = `server DISCONNECT with reason ${pk.reasonCode ?? 0}`;
    else if (pk.cmd === 'disconnect' && i !== packets.length - 1) problem = 'packets after DISCONNECT';
    else if (i === 0 && pk.cmd !== 'connack') problem = `${pk.cmd} before CONNACK`;
  }
  return { packets, problem };
}

function countPingresp(view: OutputView): number {
  let n = 0;
  for (const p of view.packets) if (p.cmd === 'pingresp') n++;
  return n;
}

/**
 * One in-memory connection driven with well-formed packets (setup and clean-up sessions): all
 * sent at once, then waited on until `answers` packets came back or the connection closed.
 */
async function scripted(env: Env, packets: Packet[], v: 4 | 5, answers: number, end: boolean): Promise<{ sock: MemorySocket; conn: MqttConnection; view: OutputView }> {
  const sock = new MemorySocket();
  const conn = env.listener.attach(sock, { ip: '127.0.0.1', port: 2 });
  sock.push(Buffer.concat(packets.map((p) => mqtt.generate(p, { protocolVersion: v }))));
  let view = readServerOutput(sock.output(), v === 5);
  const until = Date.now() + ANSWER_DEADLINE_MS;
  for (let i = 0; view.packets.length < answers && !conn.closed && Date.now() < until; i++) {
    if (i < 50) await tick();
    else await sleep(5);
    view = readServerOutput(sock.output(), v === 5);
  }
  if (end) {
    sock.destroy();
    await tick();
  }
  return { sock, conn, view };
}

function creds(env: Env, user: 'fuzz' | 'open'): { username?: string; password?: Buffer } {
  if (env.kind !== 'auth') return {};
  return user === 'fuzz' ? { username: 'fuzz', password: Buffer.from('pw') } : { username: 'open', password: Buffer.from('pw2') };
}

/** A clean mqtt.js client over TCP: connect, subscribe, QoS 1 round trip, QoS 1 into the capturing stand-in. */
async function healthCheck(env: Env, n: number): Promise<string | null> {
  const v: 4 | 5 = n % 2 === 0 ? 5 : 4;
  const topic = `health/${n}`;
  const opts: IClientOptions = { protocolVersion: v, clientId: `fuzz-health-${n}`, clean: true, reconnectPeriod: 0, connectTimeout: HEALTH_DEADLINE_MS };
  if (env.kind === 'auth') {
    opts.username = 'fuzz';
    opts.password = 'pw';
  }
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`health check (${env.kind}, v${v}) timed out`), HEALTH_DEADLINE_MS);
  });
  const run = async (): Promise<string | null> => {
    const client = await connectAsync(`mqtt://127.0.0.1:${env.port}`, opts);
    try {
      const granted = await client.subscribeAsync(topic, { qos: 1 });
      if (granted[0]?.qos !== 1) return `health check (${env.kind}, v${v}): SUBACK ${JSON.stringify(granted)}`;
      const got = new Promise<string>((resolve) => client.once('message', (t, p, packet) => resolve(`${t} ${p.toString()} qos${packet.qos}`)));
      await client.publishAsync(topic, `ping ${n}`, { qos: 1 });
      const msg = await got;
      if (msg !== `${topic} ping ${n} qos1`) return `health check (${env.kind}, v${v}): got ${msg}`;
      await client.publishAsync(`cap/health/${n}`, 'stored', { qos: 1 });
      return null;
    } finally {
      await client.endAsync();
    }
  };
  try {
    return await Promise.race([run(), deadline]);
  } catch (err) {
    return `health check (${env.kind}, v${v}) failed: ${(err as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
}

/** Waits (bounded) until the broker dropped every connection and session. */
async function brokerIdle(env: Env, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (let i = 0; ; i++) {
    const st = env.broker.stats();
    if (st.connections === 0 && st.sessions === 0) return true;
    if (Date.now() > until) return false;
    if (i < 20) await tick();
    else await sleep(5);
  }
}

// ---------------------------------------------------------------------------------------------
// The run

interface OneResult {
  outcome: string;
  problems: string[];
  sessionsEnded: number;
  /** What the server wrote to the fuzzed connection. */
  output: Buffer;
}

async function runOne(env: Env, input: MqttFuzzInput, stats: { chunks: number; bytes: number }): Promise<OneResult> {
  const problems: string[] = [];
  let sessionsEnded = 0;
  // Setup: a persistent session with subscriptions, left offline or connected.
  let setupConn: { sock: MemorySocket; conn: MqttConnection } | null = null;
  const s = input.setup;
  if (s !== null) {
    const connect: IConnectPacket = { cmd: 'connect', protocolVersion: s.v, clientId: s.clientId, clean: s.v === 5, keepalive: 0, ...creds(env, 'open') };
    if (s.v === 5) connect.properties = { sessionExpiryInterval: 600, receiveMaximum: 2 };
    const packets: Packet[] = [connect, { cmd: 'subscribe', messageId: 1, subscriptions: s.filters.map((topic, i) => ({ topic, qos: (1 + (i % 2)) as QoS })) }];
    const r = await scripted(env, packets, s.v, 2, !s.live);
    const ack = r.view.packets[0];
    if (r.view.problem !== null || ack?.cmd !== 'connack' || (ack.reasonCode ?? ack.returnCode ?? 0) !== 0 || r.view.packets[1]?.cmd !== 'suback') {
      problems.push(`setup session "${s.clientId}" v${s.v} refused: ${r.view.problem ?? JSON.stringify(r.view.packets.map((p) => p.cmd))}`);
    }
    if (s.live) setupConn = r;
  }

  const sock = new MemorySocket();
  const conn = env.listener.attach(sock, { ip: '127.0.0.1', port: 1 });
  let phase = 'closed';
  for (const c of input.chunks) {
    stats.chunks++;
    stats.bytes += c.length;
    sock.push(c);
    // A turn of the loop between chunks, as between TCP reads (authentication and store
    // commits finish in between); sometimes only the microtasks run (packets wait for them).
    if (input.turns) await tick();
    else await null;
    if (conn.closed) break;
  }
  await tick();
  let outcome: string;
  let pingrespsBefore = -1;
  if (!conn.closed) {
    phase = 'closed on filler';
    const fill = completion(Buffer.concat(input.chunks));
    if (fill.length > 0) {
      sock.push(fill);
      await tick();
    }
  }
  if (!conn.closed) {
    phase = 'closed on ping';
    // Counted in the whole output as a client parses it: a PINGRESP that a broken packet before
    // it swallows is no answer. Acks waiting for a store commit may follow the PINGRESP.
    pingrespsBefore = countPingresp(readServerOutput(sock.output(), conn.v5));
    const bytesBefore = sock.outBytes;
    sock.push(PINGREQ);
    const until = Date.now() + ANSWER_DEADLINE_MS;
    for (let i = 0; !conn.closed && countPingresp(readServerOutput(sock.output(), conn.v5)) <= pingrespsBefore; i++) {
      // Bytes came but no PINGRESP a client could read: no use waiting for the deadline.
      if (Date.now() > until || (i >= 50 && sock.outBytes > bytesBefore)) break;
      if (i < 50) await tick();
      else await sleep(5);
    }
  }
  const view = readServerOutput(sock.output(), conn.v5);
  if (conn.closed) {
    outcome = `${phase}: ${conn.reason ?? '?'}`;
  } else if (pingrespsBefore >= 0 && countPingresp(view) > pingrespsBefore) {
    outcome = 'pingresp';
  } else {
    outcome = 'open, no answer';
    const st = env.broker.stats();
    problems.push(
      `connection neither answered PINGREQ (with a PINGRESP a client can parse) nor closed (memory budget ${env.server.budget.bytes} of ${env.server.budget.limit} bytes, ` +
        `${conn.pendingBytes} pending on the connection, ${st.retained} retained message(s), ${conn.session?.queued ?? 0} queued for its session)`,
    );
  }
  if (view.problem !== null) problems.push(view.problem);
  if (conn.pendingBytes > env.server.options().maxPending) problems.push(`pending ${conn.pendingBytes} above max_pending`);

  // The client goes away (end of stream, or reset); so does a setup connection still open.
  if (input.turns) sock.push(null);
  else sock.destroy();
  setupConn?.sock.destroy();
  await tick();
  sock.destroy();
  if (!conn.closed) problems.push('connection still open after its socket closed');

  // Persistent sessions left behind are ended by a clean start with their client id.
  const ids = new Set<string>();
  if (conn.mqttClient !== '') ids.add(conn.mqttClient);
  if (s !== null) ids.add(s.clientId);
  for (const id of ids) {
    if (env.broker.stats().sessions === 0) break;
    const r = await scripted(env, [{ cmd: 'connect', protocolVersion: 4, clientId: id, clean: true, keepalive: 0, ...creds(env, 'open') }, { cmd: 'disconnect' }], 4, 1, true);
    const ack = r.view.packets[0];
    if (ack?.cmd !== 'connack' || (ack.returnCode ?? 0) !== 0) problems.push(`clean start for "${id}" refused: ${JSON.stringify(r.view.packets.map((p) => p.cmd))}`);
    sessionsEnded++;
  }
  if (!(await brokerIdle(env, 2000))) {
    const st = env.broker.stats();
    problems.push(`broker not idle after the input: ${st.connections} connection(s), ${st.sessions} session(s)`);
  }
  const budget = env.server.budget.bytes;
  if (budget !== 0) problems.push(`memory budget not returned: ${budget} bytes`);
  return { outcome, problems, sessionsEnded, output: sock.output() };
}

/**
 * Runs one recorded input (hex and chunk sizes as a failure reports them) against a fresh
 * broker and returns what happened, with the server's output, to reproduce a finding.
 */
export async function replayMqttInput(opts: { env: 'open' | 'auth'; input: string; chunkSizes: number[]; setup?: MqttFuzzInput['setup']; turns?: boolean }): Promise<{ outcome: string; problems: string[]; output: string; packets: Packet[] }> {
  const log = new Logger({ debug: false, trace: false, logtime: false, logtimeUtc: false });
  const errors: string[] = [];
  log.log = (level: LogLevel, msg: string): void => {
    if (level === 'ERR') errors.push(msg);
  };
  const env = await Env.create(opts.env, log, new Prng(1));
  try {
    const all = Buffer.from(opts.input, 'hex');
    const chunks: Buffer[] = [];
    let at = 0;
    for (const n of opts.chunkSizes) {
      chunks.push(all.subarray(at, at + n));
      at += n;
    }
    if (at < all.length) chunks.push(all.subarray(at));
    const input: MqttFuzzInput = { env: opts.env, version: 5, chunks, setup: opts.setup ?? null, turns: opts.turns ?? true };
    const r = await runOne(env, input, { chunks: 0, bytes: 0 });
    const v5 = readServerOutput(r.output, true);
    const view = v5.problem === null ? v5 : readServerOutput(r.output, false);
    return { outcome: r.outcome, problems: [...r.problems, ...errors.map((e) => `broker logged an error: ${e}`)], output: r.output.toString('hex'), packets: view.packets };
  } finally {
    env.close();
  }
}

/** The lines run.mjs does not print by itself: failure kinds with counts, health checks, timing. */
export function mqttFuzzSummary(r: MqttFuzzResult): string {
  const lines = [`health checks passed: ${r.healthChecks}; persistent sessions ended after inputs: ${r.sessionsEnded}; slowest input: ${r.slowestMs.toFixed(0)} ms`];
  const kinds = Object.entries(r.failureKinds).sort((a, b) => b[1] - a[1]);
  if (kinds.length > 0) lines.push(`failure kinds (${kinds.length}):`, ...kinds.map(([k, n]) => `  ${String(n).padStart(7)}  ${k}`));
  return lines.join('\n');
}

export async function runMqttFuzz(opts: MqttFuzzOptions): Promise<MqttFuzzResult> {
  const rng = new Prng(opts.seed ^ 0x4d515454);
  const result: MqttFuzzResult = { iterations: 0, bytes: 0, chunks: 0, outcomes: {}, failures: [], healthChecks: 0, sessionsEnded: 0, slowestMs: 0, failureKinds: {} };
  const fail = (f: MqttFuzzFailure, problem: string): void => {
    const kind = failureKind(problem);
    const seen = result.failureKinds[kind] ?? 0;
    result.failureKinds[kind] = seen + 1;
    if (seen < EXAMPLES_PER_KIND && result.failures.length < MAX_EXAMPLES) result.failures.push(f);
  };
  const errors: string[] = [];
  const log = new Logger({ debug: false, trace: false, logtime: false, logtimeUtc: false });
  // Quiet, but an internal error the broker logs (an exception it caught) is a finding.
  log.log = (level: LogLevel, msg: string): void => {
    if (level === 'ERR') errors.push(msg);
  };
  const escaped: string[] = [];
  const onUncaught = (err: unknown): void => {
    escaped.push(`uncaught exception: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  };
  const onRejection = (err: unknown): void => {
    escaped.push(`unhandled rejection: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  };
  const open = await Env.create('open', log, rng);
  const envs: Record<'open' | 'auth', Env> = { open, auth: open };
  const stats = { chunks: 0, bytes: 0 };
  try {
    envs.auth = await Env.create('auth', log, rng);
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onRejection);
    for (let iteration = 0; iteration < opts.iterations; iteration++) {
      const input = genInput(rng);
      const env = envs[input.env];
      const started = performance.now();
      let one: OneResult;
      try {
        one = await runOne(env, input, stats);
      } catch (err) {
        one = { outcome: 'exception', problems: [`exception escaped: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`], sessionsEnded: 0, output: Buffer.alloc(0) };
      }
      const ms = performance.now() - started;
      if (ms > result.slowestMs) result.slowestMs = ms;
      result.outcomes[one.outcome] = (result.outcomes[one.outcome] ?? 0) + 1;
      result.sessionsEnded += one.sessionsEnded;
      const problems = [...one.problems, ...escaped.splice(0), ...errors.splice(0).map((e) => `broker logged an error: ${e}`)];
      if (problems.length > 0) {
        const context = `${input.env} broker, v${input.version}${input.setup !== null ? `, after setup session ${JSON.stringify(input.setup)}` : ''}${input.turns ? '' : ', no loop turns between chunks'}`;
        const failure: MqttFuzzFailure = {
          iteration,
          message: `[${context}] ${problems.join('; ')}\n  server output ${one.output.toString('hex').slice(0, 4000)}`,
          chunkSizes: input.chunks.map((c) => c.length),
          input: Buffer.concat(input.chunks).toString('hex').slice(0, 8000),
        };
        fail(failure, problems[0]!);
        // A broker left in an unknown state would blame the next inputs: start it afresh.
        if (env.broker.stats().sessions !== 0 || env.server.budget.bytes !== 0) {
          env.close();
          envs[input.env] = await Env.create(input.env, log, rng);
        }
      }
      result.iterations++;
      if (result.iterations % HEALTH_EVERY === 0) {
        for (const e of [envs.open, envs.auth]) {
          e.trimRetained(200);
          const problem = (await healthCheck(e, result.iterations)) ?? ((await brokerIdle(e, 2000)) ? null : `health client's session not gone (${e.kind})`);
          if (problem === null) result.healthChecks++;
          else fail({ iteration, message: `after input ${iteration}: ${problem}`, chunkSizes: [], input: '' }, problem);
        }
        result.bytes = stats.bytes;
        result.chunks = stats.chunks;
        if (opts.progress !== undefined && result.iterations % (HEALTH_EVERY * 100) === 0) opts.progress(result.iterations);
      }
    }
  } finally {
    result.bytes = stats.bytes;
    result.chunks = stats.chunks;
    envs.open.close();
    if (envs.auth !== envs.open) envs.auth.close();
    // Let the last timers and closes run while the hooks still listen.
    await sleep(10);
    for (const e of escaped.splice(0)) fail({ iteration: result.iterations, message: e, chunkSizes: [], input: '' }, e);
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onRejection);
  }
  return result;
}
