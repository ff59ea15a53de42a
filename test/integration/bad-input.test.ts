/**
 * Malformed and hostile client input over raw TCP. Each case asserts the exact bytes the real
 * nats-server answers and whether it closes the socket; around every case a well-behaved
 * nats.js client does a request/reply on the same server, which must keep working.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { serverKinds, startServer, stopAllServers, type RunningServer } from '../helpers/servers.js';
import { RawClient } from '../helpers/raw-client.js';

const MAX_PAYLOAD = 1024;
const MAX_CONTROL_LINE = 512;
const CONFIG = `max_payload: ${MAX_PAYLOAD}\nmax_control_line: ${MAX_CONTROL_LINE}\n`;

const PLAIN = 'CONNECT {"verbose":false,"pedantic":false}\r\n';
const WITH_HEADERS = 'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n';

const UNKNOWN_OP = "-ERR 'Unknown Protocol Operation'\r\n";
const INVALID_SUBJECT = "-ERR 'Invalid Subject'\r\n";
const MAX_PAYLOAD_ERR = "-ERR 'Maximum Payload Violation'\r\n";
const MAX_CONTROL_ERR = "-ERR 'maximum control line exceeded'\r\n";

interface BadInputCase {
  name: string;
  /** Bytes sent right after INFO (usually a CONNECT line and then the bad input). */
  send: string | Buffer;
  /** Exactly what the server answers (before our PONG when the connection stays open). */
  reply: string;
  closes: boolean;
}

const garbage = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0xff, 0x0d, 0x0a]);
const payload = (n: number): string => 'x'.repeat(n);

const CASES: BadInputCase[] = [
  { name: 'unknown op', send: `${PLAIN}FOO bar\r\n`, reply: UNKNOWN_OP, closes: true },
  { name: 'op without separator (PUBfoo)', send: `${PLAIN}PUBfoo 2\r\nhi\r\n`, reply: UNKNOWN_OP, closes: true },
  { name: 'leading space before op', send: `${PLAIN} PING\r\n`, reply: UNKNOWN_OP, closes: true },
  { name: 'empty line', send: `${PLAIN}\r\n`, reply: UNKNOWN_OP, closes: true },
  { name: 'SUB foo..bar', send: `${PLAIN}SUB foo..bar 1\r\n`, reply: INVALID_SUBJECT, closes: false },
  { name: 'SUB foo.>.bar', send: `${PLAIN}SUB foo.>.bar 1\r\n`, reply: INVALID_SUBJECT, closes: false },
  {
    name: 'SUB .foo, foo., foo.>.> invalid; foo*.> valid',
    send: `${PLAIN}SUB .foo 1\r\nSUB foo. 2\r\nSUB foo.>.> 3\r\nSUB foo*.> 4\r\n`,
    reply: INVALID_SUBJECT.repeat(3),
    closes: false,
  },
  {
    name: 'SUB with reserved queue _sys_',
    send: `${PLAIN}SUB foo _sys_ 1\r\n`,
    reply: `-ERR 'Permissions Violation for Subscription to "foo" using queue "_sys_"'\r\n`,
    closes: false,
  },
  { name: 'PUB payload longer than its size', send: `${PLAIN}PUB foo 3\r\nhello\r\n`, reply: UNKNOWN_OP, closes: true },
  {
    name: 'PUB payload shorter than its size',
    send: `${PLAIN}PUB foo 10\r\nhello\r\nPING\r\n`,
    reply: UNKNOWN_OP,
    closes: true,
  },
  { name: 'PUB payload not followed by CRLF', send: `${PLAIN}PUB foo 2\r\nhiXX`, reply: UNKNOWN_OP, closes: true },
  {
    name: 'PUB of exactly max_payload is accepted',
    send: `${PLAIN}PUB foo ${MAX_PAYLOAD}\r\n${payload(MAX_PAYLOAD)}\r\n`,
    reply: '',
    closes: false,
  },
  { name: 'PUB over max_payload', send: `${PLAIN}PUB foo ${MAX_PAYLOAD + 1}\r\n`, reply: MAX_PAYLOAD_ERR, closes: true },
  {
    name: 'HPUB total over max_payload',
    send: `${WITH_HEADERS}HPUB foo 12 ${MAX_PAYLOAD + 1}\r\n`,
    reply: MAX_PAYLOAD_ERR,
    closes: true,
  },
  {
    name: 'HPUB total of exactly max_payload is accepted',
    send: `${WITH_HEADERS}HPUB foo 12 ${MAX_PAYLOAD}\r\nNATS/1.0\r\n\r\n${payload(MAX_PAYLOAD - 12)}\r\n`,
    reply: '',
    closes: false,
  },
  {
    name: 'control line at max_control_line is accepted',
    // Arguments "aaa...a 1" are exactly MAX_CONTROL_LINE bytes.
    send: `${PLAIN}SUB ${'a'.repeat(MAX_CONTROL_LINE - 2)} 1\r\n`,
    reply: '',
    closes: false,
  },
  {
    name: 'control line over max_control_line',
    send: `${PLAIN}SUB ${'a'.repeat(MAX_CONTROL_LINE - 1)} 1\r\n`,
    reply: MAX_CONTROL_ERR,
    closes: true,
  },
  {
    name: 'a never-ending control line is cut off',
    send: `${PLAIN}SUB ${'a'.repeat(MAX_CONTROL_LINE * 3)}`,
    reply: MAX_CONTROL_ERR,
    closes: true,
  },
  { name: 'garbage bytes before CONNECT', send: garbage, reply: UNKNOWN_OP, closes: true },
  { name: 'garbage bytes after CONNECT', send: Buffer.concat([Buffer.from(PLAIN), garbage]), reply: UNKNOWN_OP, closes: true },
  { name: 'client sends MSG', send: `${PLAIN}MSG foo 1 2\r\nhi\r\n`, reply: UNKNOWN_OP, closes: true },
  { name: 'client sends HMSG', send: `${WITH_HEADERS}HMSG foo 1 12 14\r\n`, reply: UNKNOWN_OP, closes: true },
  { name: 'client sends a route op (RS+)', send: `${PLAIN}RS+ foo\r\n`, reply: UNKNOWN_OP, closes: true },
  { name: 'client sends a leaf op (LS+)', send: `${PLAIN}LS+ foo\r\n`, reply: UNKNOWN_OP, closes: true },
  { name: 'client sends -ERR: closed without reply', send: `${PLAIN}-ERR 'oops'\r\n`, reply: '', closes: true },
  { name: 'client INFO, +OK and PONG are ignored', send: `${PLAIN}INFO {}\r\n+OK\r\nPONG\r\n`, reply: '', closes: false },
  { name: 'PING with trailing junk still gets PONG', send: `${PLAIN}PINGX\r\n`, reply: 'PONG\r\n', closes: false },
  { name: 'invalid CONNECT JSON: closed without reply', send: 'CONNECT {bad\r\n', reply: '', closes: true },
  {
    name: 'CONNECT protocol 2',
    send: 'CONNECT {"verbose":false,"protocol":2}\r\n',
    reply: "-ERR 'invalid client protocol'\r\n",
    closes: true,
  },
  {
    name: 'no_responders without headers',
    send: 'CONNECT {"verbose":false,"no_responders":true}\r\n',
    reply: "-ERR 'no responders requires headers support'\r\n",
    closes: true,
  },
  {
    name: 'CONNECT with an account field',
    send: 'CONNECT {"verbose":false,"account":"x"}\r\n',
    reply: "-ERR 'Authorization Violation'\r\n",
    closes: true,
  },
  { name: 'PUB without size: closed without reply', send: `${PLAIN}PUB foo\r\n`, reply: '', closes: true },
  { name: 'PUB with non-numeric size', send: `${PLAIN}PUB foo bar\r\n`, reply: '', closes: true },
  { name: 'PUB with negative size', send: `${PLAIN}PUB foo -1\r\n`, reply: '', closes: true },
  { name: 'PUB with too many args', send: `${PLAIN}PUB a b c 1\r\n`, reply: '', closes: true },
  { name: 'SUB with one arg', send: `${PLAIN}SUB foo\r\n`, reply: '', closes: true },
  { name: 'SUB with too many args', send: `${PLAIN}SUB a b c d\r\n`, reply: '', closes: true },
  { name: 'UNSUB with too many args', send: `${PLAIN}UNSUB 1 2 3\r\n`, reply: '', closes: true },
  { name: 'HPUB header size over total', send: `${WITH_HEADERS}HPUB foo 5 3\r\n`, reply: '', closes: true },
  { name: 'HPUB without headers:true in CONNECT', send: `${PLAIN}HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n`, reply: '', closes: true },
];

describe.each(serverKinds())('bad input: %s', (kind) => {
  let srv: RunningServer;
  let svc: NatsConnection;
  let watcher: NatsConnection;
  let n = 0;

  /** The bystander: a real client doing request/reply on the same server. */
  async function bystanderWorks(): Promise<void> {
    const body = `probe-${n++}`;
    const r = await watcher.request('bystander.echo', body, { timeout: 3000 });
    expect(r.string()).toBe(`echo:${body}`);
  }

  beforeAll(async () => {
    srv = await startServer(kind, { config: CONFIG });
    svc = await connect({ servers: srv.url, reconnect: false, name: 'bystander-svc' });
    svc.subscribe('bystander.echo', {
      callback: (_err, m) => {
        m.respond(`echo:${m.string()}`);
      },
    });
    await svc.flush();
    watcher = await connect({ servers: srv.url, reconnect: false, name: 'bystander-req' });
  });

  afterAll(async () => {
    await Promise.allSettled([svc?.close(), watcher?.close()]);
    await stopAllServers();
  });

  it.each(CASES)('$name', async (c) => {
    await bystanderWorks();
    const r = await RawClient.connect(srv.port);
    r.send(c.send);
    if (c.closes) {
      await r.closed();
      expect(r.text()).toBe(c.reply);
    } else {
      const t = await r.ping(c.reply.split('PONG\r\n').length - 1);
      expect(t).toBe(`${c.reply}PONG\r\n`);
      expect(r.closedNow).toBe(false);
      r.close();
    }
    await bystanderWorks();
    expect(svc.isClosed()).toBe(false);
    expect(watcher.isClosed()).toBe(false);
  });

  it('a connection that survived an error still routes messages', async () => {
    const r = await RawClient.connect(srv.port);
    r.send(`${PLAIN}SUB foo..bar 1\r\nSUB ok 2\r\nPUB ok 2\r\nhi\r\n`);
    expect(await r.ping()).toBe(`${INVALID_SUBJECT}MSG ok 2 2\r\nhi\r\nPONG\r\n`);
    r.close();
  });

  it('the server still answers the limits in INFO', async () => {
    const r = await RawClient.connect(srv.port);
    expect(r.info?.max_payload).toBe(MAX_PAYLOAD);
    r.close();
  });
});
