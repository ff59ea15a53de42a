// Raw MQTT 3.1.1 for the load generator: packets are encoded once with mqtt-packet and then
// written as bytes; incoming packets are split by their fixed header and counted by scanning,
// never decoded into objects. mqtt.js (one object and several closures per message) would be
// the bottleneck at the rates the brokers reach, not the broker under test.
import { connect as tcpConnect } from 'node:net';
import mqttPacket from 'mqtt-packet';

export const PROTOCOL_VERSION = 4; // 3.1.1: the one version all four brokers speak

export const CONNACK = 2;
export const PUBLISH = 3;
export const PUBACK = 4;
export const SUBACK = 9;
export const PINGRESP = 13;

export const PINGREQ_PACKET = Buffer.from([0xc0, 0x00]);

/** One packet, encoded by mqtt-packet (v3.1.1). */
export function encode(packet) {
  return mqttPacket.generate(packet, { protocolVersion: PROTOCOL_VERSION });
}

export function publishPacket(topic, payload, qos = 0, messageId = undefined) {
  return encode({ cmd: 'publish', topic, payload, qos, retain: false, dup: false, ...(qos > 0 ? { messageId } : {}) });
}

/** Offset of the payload inside an encoded PUBLISH (fixed header, topic, packet id). */
export function payloadOffset(packet) {
  let i = 1;
  while (packet[i] & 0x80) i++;
  i++;
  const qos = (packet[0] >> 1) & 3;
  return i + 2 + ((packet[i] << 8) | packet[i + 1]) + (qos > 0 ? 2 : 0);
}

/** `n` QoS 0 PUBLISH packets back to back, written to the socket as one chunk. */
export function publishBatch(topic, payload, n) {
  const one = publishPacket(topic, payload, 0);
  const out = Buffer.allocUnsafe(one.length * n);
  for (let i = 0; i < n; i++) one.copy(out, i * one.length);
  return { batch: out, packetLen: one.length };
}

/**
 * `n` QoS 1 PUBLISH packets with packet ids 1..n back to back: a ring of slots, each reused
 * only after its PUBACK came back (so the bytes were long since written out).
 */
export function publishRing(topic, payload, n) {
  const one = publishPacket(topic, payload, 1, 1);
  const pidAt = payloadOffset(one) - 2;
  const out = Buffer.allocUnsafe(one.length * n);
  for (let i = 0; i < n; i++) {
    one.copy(out, i * one.length);
    out[i * one.length + pidAt] = (i + 1) >> 8;
    out[i * one.length + pidAt + 1] = (i + 1) & 0xff;
  }
  return { ring: out, packetLen: one.length };
}

/** A payload of `size` printable bytes. */
export function makePayload(size) {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = 97 + (i % 26);
  return b;
}

/** Largest header part (fixed header + topic + packet id + peeked payload) the scanner keeps whole. */
const MAX_HEAD = 4096;

/**
 * Splits the broker->client byte stream into MQTT packets by their fixed header. For a
 * PUBLISH only the topic, packet id and the first `peek` payload bytes must be whole in one
 * buffer; the rest of the packet is skipped by its length. Only a header split across two
 * chunks is copied. Calls sink.onPublish(buf, varStart, topicLen, qos, remLen) and
 * sink.onPacket(type, buf, varStart, remLen) (whole packet when remLen <= 64).
 */
export class MqttScanner {
  constructor(sink, peek = 0) {
    this.sink = sink;
    this.peek = peek;
    this.skip = 0;
    this.carry = null;
  }

  push(chunk) {
    let pos = 0;
    if (this.skip > 0) {
      if (this.skip >= chunk.length) {
        this.skip -= chunk.length;
        return;
      }
      pos = this.skip;
      this.skip = 0;
    }
    if (this.carry !== null) {
      const carry = this.carry;
      this.carry = null;
      const take = Math.min(chunk.length - pos, MAX_HEAD);
      const head = Buffer.concat([carry, chunk.subarray(pos, pos + take)]);
      const used = this.one(head, 0);
      if (used < 0) {
        if (take === chunk.length - pos && head.length < MAX_HEAD * 2) this.carry = head;
        else throw new Error('MQTT packet header larger than the scanner keeps');
        return;
      }
      pos += used - carry.length;
      if (pos > chunk.length) {
        this.skip = pos - chunk.length;
        return;
      }
    }
    const len = chunk.length;
    while (pos < len) {
      const used = this.one(chunk, pos);
      if (used < 0) {
        this.carry = Buffer.from(chunk.subarray(pos));
        return;
      }
      pos += used;
    }
    if (pos > len) this.skip = pos - len;
  }

  /** Total length of the packet at `pos`, or -1 when its header part is not whole in `buf`. */
  one(buf, pos) {
    const len = buf.length;
    let i = pos + 1;
    let rem = 0;
    let mul = 1;
    for (;;) {
      if (i >= len) return -1;
      const d = buf[i++];
      rem += (d & 0x7f) * mul;
      if (d < 0x80) break;
      mul *= 128;
      if (mul > 0x200000) throw new Error('malformed remaining length from the broker');
    }
    const type = buf[pos] >> 4;
    if (type === PUBLISH) {
      if (i + 2 > len) return -1;
      const topicLen = (buf[i] << 8) | buf[i + 1];
      const qos = (buf[pos] >> 1) & 3;
      const want = Math.min(rem, 2 + topicLen + (qos > 0 ? 2 : 0) + this.peek);
      if (i + want > len) return -1;
      this.sink.onPublish(buf, i, topicLen, qos, rem);
    } else {
      if (rem <= 64 && i + rem > len) return -1;
      this.sink.onPacket(type, buf, i, rem);
    }
    return i - pos + rem;
  }
}

/**
 * One MQTT client connection on a raw socket. `handler.onPublish(conn, buf, varStart,
 * topicLen, qos, remLen)`, `handler.onPuback(conn, packetId)` and `handler.afterData(conn)`
 * (after each chunk) are optional; CONNACK, SUBACK and PINGRESP are handled here.
 */
export class MqttConn {
  constructor(socket, handler, peek) {
    this.socket = socket;
    this.handler = handler ?? {};
    this.publishes = 0;
    this.closed = false;
    this.errors = [];
    this.waitConnack = null;
    this.subacks = [];
    this.pings = [];
    this.nextPid = 1;
    this.scanner = new MqttScanner(this, peek);
    socket.on('data', (chunk) => {
      try {
        this.scanner.push(chunk);
      } catch (err) {
        this.errors.push(err.message);
        socket.destroy();
        return;
      }
      this.handler.afterData?.(this);
    });
    socket.on('error', (err) => this.errors.push(err.message));
    socket.on('close', () => {
      this.closed = true;
      const err = new Error(`connection closed by the broker${this.errors.length ? ` (${this.errors.join('; ')})` : ''}`);
      this.waitConnack?.reject(err);
      for (const w of this.subacks.splice(0)) w.reject(err);
      for (const w of this.pings.splice(0)) w.reject(err);
    });
  }

  /** Connects and sends CONNECT; resolves once CONNACK accepted it. */
  static open(port, opts = {}) {
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ port, host: opts.host ?? '127.0.0.1' });
      socket.setNoDelay(true);
      const conn = new MqttConn(socket, opts.handler, opts.peek ?? 0);
      const timeoutMs = opts.timeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no CONNACK within ${timeoutMs} ms`));
      }, timeoutMs);
      conn.waitConnack = {
        resolve: () => {
          clearTimeout(timer);
          conn.waitConnack = null;
          resolve(conn);
        },
        reject: (err) => {
          clearTimeout(timer);
          conn.waitConnack = null;
          reject(err);
        },
      };
      socket.once('connect', () => {
        socket.write(
          encode({
            cmd: 'connect', protocolId: 'MQTT', protocolVersion: PROTOCOL_VERSION, clientId: opts.clientId,
            clean: opts.clean ?? true, keepalive: opts.keepalive ?? 0,
          }),
        );
      });
    });
  }

  onPublish(buf, varStart, topicLen, qos, remLen) {
    this.publishes++;
    this.handler.onPublish?.(this, buf, varStart, topicLen, qos, remLen);
  }

  onPacket(type, buf, at, remLen) {
    if (type === PUBACK) {
      this.handler.onPuback?.(this, (buf[at] << 8) | buf[at + 1]);
    } else if (type === CONNACK) {
      const code = buf[at + 1];
      if (code === 0) this.waitConnack?.resolve();
      else this.waitConnack?.reject(new Error(`CONNACK return code ${code}`));
    } else if (type === SUBACK) {
      const w = this.subacks.shift();
      const granted = buf[at + 2];
      if (granted === 0x80) w?.reject(new Error('SUBACK refused the subscription (0x80)'));
      else w?.resolve(granted);
    } else if (type === PINGRESP) {
      this.pings.shift()?.resolve();
    }
  }

  write(buf) {
    return this.socket.write(buf);
  }

  /** SUBSCRIBE one filter; resolves to the granted QoS. */
  subscribe(topic, qos) {
    const messageId = this.nextPid++;
    this.socket.write(encode({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] }));
    return new Promise((resolve, reject) => this.subacks.push({ resolve, reject }));
  }

  /** PINGREQ -> PINGRESP round trip. */
  ping() {
    this.socket.write(PINGREQ_PACKET);
    return new Promise((resolve, reject) => this.pings.push({ resolve, reject }));
  }

  close() {
    this.closed = true;
    this.socket.destroy();
  }
}

/** PUBACK for `pid` written at out[pos..pos+4). */
export function writePuback(out, pos, pid) {
  out[pos] = 0x40;
  out[pos + 1] = 2;
  out[pos + 2] = pid >> 8;
  out[pos + 3] = pid & 0xff;
}
