/**
 * An MQTT PUBLISH as it travels through the router. NATS subscribers see an ordinary Message
 * (subject, `Nmqtt-Pub` header as nats-server adds it, v5 user properties as headers); MQTT
 * sessions recognise the class and deliver the original topic, QoS, retain flag and v5
 * properties without converting back.
 */
import type { QoS } from 'mqtt-packet';
import type { Message, StoreReceipt } from '../core/message.js';
import type { ForwardProps } from './store-schema.js';

export class MqttPublication implements Message {
  readonly receipt?: StoreReceipt;

  constructor(
    readonly subject: string,
    readonly reply: string,
    readonly hdrLen: number,
    readonly data: Uint8Array,
    readonly topic: string,
    readonly qos: QoS,
    readonly retain: boolean,
    readonly payload: Buffer,
    readonly props: ForwardProps | undefined,
    /** ms since the epoch; 0 = no message expiry. */
    readonly expiresAt: number,
    /** The publishing session (No Local), null for wills and the server. */
    readonly origin: object | null,
    receipt: StoreReceipt | undefined,
  ) {
    if (receipt !== undefined) this.receipt = receipt;
  }
}

const CRLF = '\r\n';

/** A header name or value that would break the NATS header block is left out. */
function headerSafe(s: string, name: boolean): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x0d || c === 0x0a) return false;
    if (name && (c === 0x3a || c === 0x20 || c === 0x09)) return false;
  }
  return s.length > 0 || !name;
}

/**
 * The NATS header block of an MQTT publish: `Nmqtt-Pub: <qos>` (nats-server), then the v5 user
 * properties in order, then the content type as `Content-Type`.
 */
export function publishHeaders(qos: QoS, props: ForwardProps | undefined): string {
  let s = `NATS/1.0${CRLF}Nmqtt-Pub: ${qos}${CRLF}`;
  const up = props?.userProperties;
  if (up !== undefined) {
    for (const key of Object.keys(up)) {
      if (!headerSafe(key, true)) continue;
      const v = up[key]!;
      const values = Array.isArray(v) ? v : [v];
      for (const one of values) if (headerSafe(one, false)) s += `${key}: ${one}${CRLF}`;
    }
  }
  const ct = props?.contentType;
  if (ct !== undefined && headerSafe(ct, false)) s += `Content-Type: ${ct}${CRLF}`;
  return s + CRLF;
}
