import type { Outbound } from '../core/outbound.js';
import { SLAB_SIZE } from '../core/outbound.js';

/**
 * Encoding of MSG / HMSG control lines straight into the outbound slab: no template string
 * per delivery, ASCII copied by a plain loop (cheaper than Buffer#write's native call for
 * short strings), UTF-8 only when a subject actually holds non-ASCII characters.
 */

const M = 0x4d;
const S = 0x53;
const G = 0x47;
const H = 0x48;
const SP = 0x20;
const CR = 0x0d;
const LF = 0x0a;

/** Writes `s` at `pos`; returns the new position. */
export function putString(buf: Buffer, pos: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return pos + buf.write(s.slice(i), pos, 'utf8');
    buf[pos++] = c;
  }
  return pos;
}

/** sids are decoded as latin1 by the parser, so each char is one byte written back as is. */
function putLatin1(buf: Buffer, pos: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) buf[pos++] = s.charCodeAt(i);
  return pos;
}

export function putInt(buf: Buffer, pos: number, v: number): number {
  if (v < 10) {
    buf[pos] = 0x30 + v;
    return pos + 1;
  }
  let digits = 0;
  for (let t = v; t > 0; t = Math.floor(t / 10)) digits++;
  let p = pos + digits - 1;
  for (let t = v; t > 0; t = Math.floor(t / 10)) buf[p--] = 0x30 + (t % 10);
  return pos + digits;
}

/**
 * `MSG <subject> <sid> [reply] <size>\r\n` (hdrLen < 0) or
 * `HMSG <subject> <sid> [reply] <hdrLen> <total>\r\n`.
 */
export function writeMsgLine(out: Outbound, subject: string, sid: string, reply: string, hdrLen: number, total: number): void {
  // Worst case: every UTF-16 unit as 3 UTF-8 bytes, two 10-digit numbers, op and separators.
  const max = (subject.length + sid.length + reply.length) * 3 + 32;
  if (max > SLAB_SIZE) {
    const line = hdrLen >= 0 ? `HMSG ${subject} ${sid} ${reply === '' ? '' : reply + ' '}${hdrLen} ${total}\r\n` : `MSG ${subject} ${sid} ${reply === '' ? '' : reply + ' '}${total}\r\n`;
    out.writeString(line);
    return;
  }
  const buf = out.reserve(max);
  const start = out.cursor;
  let p = start;
  if (hdrLen >= 0) buf[p++] = H;
  buf[p++] = M;
  buf[p++] = S;
  buf[p++] = G;
  buf[p++] = SP;
  p = putString(buf, p, subject);
  buf[p++] = SP;
  p = putLatin1(buf, p, sid);
  buf[p++] = SP;
  if (reply !== '') {
    p = putString(buf, p, reply);
    buf[p++] = SP;
  }
  if (hdrLen >= 0) {
    p = putInt(buf, p, hdrLen);
    buf[p++] = SP;
  }
  p = putInt(buf, p, total);
  buf[p++] = CR;
  buf[p++] = LF;
  out.advance(p - start);
}

/** The payload and its closing CRLF. */
export function writePayload(out: Outbound, data: Uint8Array): void {
  const n = data.length;
  if (n + 2 > SLAB_SIZE / 4) {
    out.writeBytes(data);
    out.writeString('\r\n');
    return;
  }
  const buf = out.reserve(n + 2);
  const p = out.cursor;
  buf.set(data, p);
  buf[p + n] = CR;
  buf[p + n + 1] = LF;
  out.advance(n + 2);
}
