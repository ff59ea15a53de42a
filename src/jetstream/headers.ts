/**
 * NATS header blocks (`NATS/1.0[ <status>[ <description>]]\r\nKey: Value\r\n...\r\n`) read in
 * place from the message buffer and built for status replies and DIRECT.GET answers.
 *
 * Names match exactly (case-sensitive) and the first occurrence wins, as nats-server reads the
 * JetStream headers it acts on.
 */

const CR = 13;
const LF = 10;
const COLON = 58;
const SPACE = 32;
const TAB = 9;

const PREAMBLE = 'NATS/1.0';
const CRLF = '\r\n';

/** A Buffer over the same memory as `data` (no copy), so string decoding has Buffer's fast paths. */
function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Index of the CR of the next CRLF at or after `from`, or `end` when there is none. */
function lineEnd(data: Uint8Array, from: number, end: number): number {
  for (let i = from; i + 1 < end; i++) if (data[i] === CR && data[i + 1] === LF) return i;
  return end;
}

/** Positions of one `Key: Value` line, filled by nextHeader (one shared scratch: no allocation). */
const SPAN = new Int32Array(4);
const NAME_START = 0;
const NAME_END = 1;
const VALUE_START = 2;
const VALUE_END = 3;

/** Where the header lines begin: just past the version/status line. */
function firstHeaderLine(data: Uint8Array, end: number): number {
  return lineEnd(data, 0, end) + 2;
}

/**
 * Reads the `Key: Value` line at `pos` into SPAN (value trimmed of blanks) and returns where the
 * next line starts, or -1 at the blank line that ends the block (or at its end). Lines without
 * a name are skipped over with SPAN[NAME_END] === SPAN[NAME_START].
 */
function nextHeader(data: Uint8Array, end: number, pos: number): number {
  if (pos >= end) return -1;
  const eol = lineEnd(data, pos, end);
  if (eol === pos) return -1;
  let colon = pos;
  while (colon < eol && data[colon] !== COLON) colon++;
  SPAN[NAME_START] = pos;
  if (colon === eol) {
    SPAN[NAME_END] = pos;
    return eol + 2;
  }
  SPAN[NAME_END] = colon;
  let vs = colon + 1;
  while (vs < eol && (data[vs] === SPACE || data[vs] === TAB)) vs++;
  let ve = eol;
  while (ve > vs && (data[ve - 1] === SPACE || data[ve - 1] === TAB)) ve--;
  SPAN[VALUE_START] = vs;
  SPAN[VALUE_END] = ve;
  return eol + 2;
}

function sameName(data: Uint8Array, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (data[start + i] !== name.charCodeAt(i)) return false;
  return true;
}

/** The value of the first header called `name` in the block at the start of `data`, or null. */
export function headerValue(data: Uint8Array, hdrLen: number, name: string): string | null {
  if (hdrLen <= 0) return null;
  const end = Math.min(hdrLen, data.length);
  for (let pos = firstHeaderLine(data, end); pos >= 0; ) {
    pos = nextHeader(data, end, pos);
    if (pos < 0) break;
    if (sameName(data, SPAN[NAME_START]!, SPAN[NAME_END]!, name)) {
      return asBuffer(data).toString('utf8', SPAN[VALUE_START]!, SPAN[VALUE_END]!);
    }
  }
  return null;
}

/** Every `[name, value]` pair of the block, in order (tests and diagnostics; not for hot paths). */
export function headerEntries(data: Uint8Array, hdrLen: number): [string, string][] {
  const out: [string, string][] = [];
  if (hdrLen <= 0) return out;
  const buf = asBuffer(data);
  const end = Math.min(hdrLen, data.length);
  for (let pos = firstHeaderLine(data, end); pos >= 0; ) {
    pos = nextHeader(data, end, pos);
    if (pos < 0) break;
    if (SPAN[NAME_END] === SPAN[NAME_START]) continue;
    out.push([buf.toString('latin1', SPAN[NAME_START]!, SPAN[NAME_END]!), buf.toString('utf8', SPAN[VALUE_START]!, SPAN[VALUE_END]!)]);
  }
  return out;
}

/** The status code and description of the first line (`NATS/1.0 404 Message Not Found`); code 0 when none. */
export function headerStatus(data: Uint8Array, hdrLen: number): { code: number; description: string } {
  if (hdrLen <= 0) return { code: 0, description: '' };
  const end = Math.min(hdrLen, data.length);
  const eol = lineEnd(data, 0, end);
  const line = asBuffer(data).toString('latin1', 0, eol);
  if (!line.startsWith(PREAMBLE)) return { code: 0, description: '' };
  const rest = line.slice(PREAMBLE.length).trim();
  if (rest === '') return { code: 0, description: '' };
  const sp = rest.indexOf(' ');
  const code = Number(sp < 0 ? rest : rest.slice(0, sp));
  return { code: Number.isInteger(code) ? code : 0, description: sp < 0 ? '' : rest.slice(sp + 1).trim() };
}

// ---- the headers JetStream acts on when storing ------------------------------------------

export const HDR_MSG_ID = 'Nats-Msg-Id';
export const HDR_EXPECTED_STREAM = 'Nats-Expected-Stream';
export const HDR_EXPECTED_LAST_SEQ = 'Nats-Expected-Last-Sequence';
export const HDR_EXPECTED_LAST_SUBJ_SEQ = 'Nats-Expected-Last-Subject-Sequence';
export const HDR_EXPECTED_LAST_MSG_ID = 'Nats-Expected-Last-Msg-Id';
export const HDR_ROLLUP = 'Nats-Rollup';

/** What a publish asks of the stream through its headers; null fields were not sent (or empty). */
export interface PublishHeaders {
  msgId: string | null;
  expectedStream: string | null;
  expectedLastSeq: string | null;
  expectedLastSubjSeq: string | null;
  expectedLastMsgId: string | null;
  rollup: string | null;
}

const PUBLISH_FIELDS = new Map<string, keyof PublishHeaders>([
  [HDR_MSG_ID, 'msgId'],
  [HDR_EXPECTED_STREAM, 'expectedStream'],
  [HDR_EXPECTED_LAST_SEQ, 'expectedLastSeq'],
  [HDR_EXPECTED_LAST_SUBJ_SEQ, 'expectedLastSubjSeq'],
  [HDR_EXPECTED_LAST_MSG_ID, 'expectedLastMsgId'],
  [HDR_ROLLUP, 'rollup'],
]);

/**
 * One pass over the block for the JetStream publish headers; null when the message carries none
 * of them (the common case for headered messages: only application headers).
 */
export function parsePublishHeaders(data: Uint8Array, hdrLen: number): PublishHeaders | null {
  if (hdrLen <= 0) return null;
  let out: PublishHeaders | null = null;
  const buf = asBuffer(data);
  const end = Math.min(hdrLen, data.length);
  for (let pos = firstHeaderLine(data, end); pos >= 0; ) {
    pos = nextHeader(data, end, pos);
    if (pos < 0) break;
    const ns = SPAN[NAME_START]!;
    const ne = SPAN[NAME_END]!;
    // All of them start with "Nats-": skip everything else without decoding it.
    if (ne - ns < 11 || data[ns] !== 78 /* N */ || data[ns + 4] !== 45 /* - */) continue;
    const field = PUBLISH_FIELDS.get(buf.toString('latin1', ns, ne));
    if (field === undefined) continue;
    const vs = SPAN[VALUE_START]!;
    const ve = SPAN[VALUE_END]!;
    if (ve === vs) continue; // an empty value counts as not sent
    out ??= {
      msgId: null,
      expectedStream: null,
      expectedLastSeq: null,
      expectedLastSubjSeq: null,
      expectedLastMsgId: null,
      rollup: null,
    };
    if (out[field] === null) out[field] = buf.toString('utf8', vs, ve);
  }
  return out;
}

/**
 * A sequence number from a header value as nats-server reads it: a value that is not a plain
 * non-negative integer never matches any sequence (-1).
 */
export function parseSeqHeader(v: string): number {
  if (!/^\d{1,16}$/.test(v)) return -1;
  return Number(v);
}

// ---- building blocks ---------------------------------------------------------------------

/** `NATS/1.0[ <code>[ <description>]]\r\n` + `Name: value\r\n`... + `\r\n`. */
export function buildHeaderBlock(status: { code: number; description?: string } | null, headers: readonly (readonly [string, string])[] = []): Buffer {
  let s = PREAMBLE;
  if (status !== null) {
    s += ' ' + status.code;
    if (status.description !== undefined && status.description !== '') s += ' ' + status.description;
  }
  s += CRLF;
  for (const [k, v] of headers) s += k + ': ' + v + CRLF;
  s += CRLF;
  return Buffer.from(s, 'utf8');
}

/**
 * A stored message with extra header lines added at the end of its header block (a new block
 * when it had none): what DIRECT.GET answers. Returns the new buffer and its header length.
 */
export function withAddedHeaders(raw: Buffer, hdrLen: number, headers: readonly (readonly [string, string])[]): { raw: Buffer; hdrLen: number } {
  let added = '';
  for (const [k, v] of headers) added += k + ': ' + v + CRLF;
  added += CRLF;
  const addedBuf = Buffer.from(added, 'utf8');
  let head: Buffer;
  if (hdrLen > 0) {
    // Drop the block's closing blank line, keep everything before it.
    head = raw.subarray(0, hdrLen - 2);
  } else {
    head = Buffer.from(PREAMBLE + CRLF, 'latin1');
  }
  const payload = raw.subarray(hdrLen > 0 ? hdrLen : 0);
  const out = Buffer.allocUnsafe(head.length + addedBuf.length + payload.length);
  head.copy(out, 0);
  addedBuf.copy(out, head.length);
  payload.copy(out, head.length + addedBuf.length);
  return { raw: out, hdrLen: head.length + addedBuf.length };
}
