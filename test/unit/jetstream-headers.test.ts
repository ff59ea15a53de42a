import { describe, expect, it } from 'vitest';
import {
  buildHeaderBlock,
  headerEntries,
  headerStatus,
  headerValue,
  parsePublishHeaders,
  parseSeqHeader,
  withAddedHeaders,
} from '../../src/jetstream/headers.js';

function msg(block: string, payload = ''): { data: Buffer; hdrLen: number } {
  const h = Buffer.from(block, 'utf8');
  return { data: Buffer.concat([h, Buffer.from(payload)]), hdrLen: h.length };
}

describe('header blocks', () => {
  it('reads values by exact name, first occurrence, trimmed, without touching the payload', () => {
    const { data, hdrLen } = msg('NATS/1.0\r\nA: 1\r\nNats-Msg-Id:  id-7 \r\nA: 2\r\nnats-msg-id: lower\r\n\r\n', 'Nats-Msg-Id: no');
    expect(headerValue(data, hdrLen, 'A')).toBe('1');
    expect(headerValue(data, hdrLen, 'Nats-Msg-Id')).toBe('id-7');
    expect(headerValue(data, hdrLen, 'nats-msg-id')).toBe('lower');
    expect(headerValue(data, hdrLen, 'Missing')).toBeNull();
    expect(headerValue(data, 0, 'A')).toBeNull();
    expect(headerEntries(data, hdrLen)).toEqual([
      ['A', '1'],
      ['Nats-Msg-Id', 'id-7'],
      ['A', '2'],
      ['nats-msg-id', 'lower'],
    ]);
  });

  it('reads a status line', () => {
    const s = msg('NATS/1.0 404 Message Not Found\r\n\r\n');
    expect(headerStatus(s.data, s.hdrLen)).toEqual({ code: 404, description: 'Message Not Found' });
    const plain = msg('NATS/1.0\r\nA: b\r\n\r\n');
    expect(headerStatus(plain.data, plain.hdrLen)).toEqual({ code: 0, description: '' });
    const bare = msg('NATS/1.0 503\r\n\r\n');
    expect(headerStatus(bare.data, bare.hdrLen)).toEqual({ code: 503, description: '' });
  });

  it('picks out the JetStream publish headers in one pass; none of them = null', () => {
    const { data, hdrLen } = msg(
      'NATS/1.0\r\nNats-Msg-Id: m1\r\nNats-Expected-Stream: S\r\nNats-Expected-Last-Sequence: 4\r\n' +
        'Nats-Expected-Last-Subject-Sequence: 0\r\nNats-Expected-Last-Msg-Id: m0\r\nNats-Rollup: sub\r\nX: y\r\n\r\n',
      'payload',
    );
    expect(parsePublishHeaders(data, hdrLen)).toEqual({
      msgId: 'm1',
      expectedStream: 'S',
      expectedLastSeq: '4',
      expectedLastSubjSeq: '0',
      expectedLastMsgId: 'm0',
      rollup: 'sub',
    });
    const app = msg('NATS/1.0\r\nX-Tag: one\r\n\r\n');
    expect(parsePublishHeaders(app.data, app.hdrLen)).toBeNull();
    // An empty value is as if the header was not sent (nats-server ignores it).
    const empty = msg('NATS/1.0\r\nNats-Expected-Last-Msg-Id:\r\nNats-Msg-Id: z\r\n\r\n');
    expect(parsePublishHeaders(empty.data, empty.hdrLen)).toMatchObject({ msgId: 'z', expectedLastMsgId: null });
  });

  it('parses sequence headers; anything but digits never matches', () => {
    expect(parseSeqHeader('0')).toBe(0);
    expect(parseSeqHeader('42')).toBe(42);
    expect(parseSeqHeader('abc')).toBe(-1);
    expect(parseSeqHeader('-1')).toBe(-1);
    expect(parseSeqHeader('1.5')).toBe(-1);
  });

  it('builds status blocks byte for byte as nats-server sends them', () => {
    expect(buildHeaderBlock({ code: 404, description: 'Message Not Found' }).toString()).toBe('NATS/1.0 404 Message Not Found\r\n\r\n');
    expect(buildHeaderBlock({ code: 408, description: 'Request Timeout' }, [['Nats-Pending-Messages', '5']]).toString()).toBe(
      'NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\n\r\n',
    );
    expect(buildHeaderBlock(null, [['A', 'b']]).toString()).toBe('NATS/1.0\r\nA: b\r\n\r\n');
  });

  it('adds headers after the stored ones, or opens a block for a message without headers', () => {
    const stored = msg('NATS/1.0\r\nNats-Msg-Id: id1\r\n\r\n', 'hello');
    const out = withAddedHeaders(stored.data, stored.hdrLen, [
      ['Nats-Stream', 'M'],
      ['Nats-Sequence', '1'],
    ]);
    expect(out.raw.toString()).toBe('NATS/1.0\r\nNats-Msg-Id: id1\r\nNats-Stream: M\r\nNats-Sequence: 1\r\n\r\nhello');
    expect(out.raw.subarray(out.hdrLen).toString()).toBe('hello');
    const bare = withAddedHeaders(Buffer.from('xyz'), 0, [['Nats-Stream', 'M']]);
    expect(bare.raw.toString()).toBe('NATS/1.0\r\nNats-Stream: M\r\n\r\nxyz');
    expect(bare.hdrLen).toBe('NATS/1.0\r\nNats-Stream: M\r\n\r\n'.length);
  });
});
