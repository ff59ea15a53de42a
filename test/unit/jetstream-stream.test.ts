import { afterEach, describe, expect, it } from 'vitest';
import type { Stream } from '../../src/jetstream/stream.js';
import type { ConsumerHandle } from '../../src/jetstream/types.js';
import { Harness, nextTurn } from './jetstream-harness.js';

let h: Harness | null = null;

afterEach(() => {
  h?.close();
  h = null;
});

async function setup(cfg: Record<string, unknown>): Promise<{ h: Harness; s: Stream }> {
  h ??= new Harness();
  const name = cfg['name'] as string;
  const res = await h.client.api(`$JS.API.STREAM.CREATE.${name}`, cfg);
  expect(res['error'], JSON.stringify(res)).toBeUndefined();
  return { h, s: h.js.streams.get(name)! };
}

async function pub(subject: string, body = 'x', headers?: Record<string, string>): Promise<Record<string, unknown>> {
  return (await h!.client.request(subject, body, headers)).json();
}

/** A consumer as the stream sees it, recording what it was told. */
class FakeConsumer implements ConsumerHandle {
  readonly durable = true;
  appended: number[] = [];
  removed: [string, number][] = [];
  acked = new Set<number>();
  stopped: string[] = [];
  constructor(
    readonly name: string,
    private readonly filter = '>',
  ) {}
  onAppended(lastSeq: number): void {
    this.appended.push(lastSeq);
  }
  onRemoved(seqs: 'all-below' | 'some', firstSeq: number): void {
    this.removed.push([seqs, firstSeq]);
  }
  needs(seq: number, subject: string): boolean {
    if (this.acked.has(seq)) return false;
    return this.filter === '>' || this.filter === subject;
  }
  stop(reason: 'deleted' | 'stream-deleted' | 'shutdown'): void {
    this.stopped.push(reason);
  }
  info(): Record<string, unknown> {
    return { name: this.name };
  }
}

describe('publish path', () => {
  it('answers the PubAck only after the commit, and stores publishes without a reply silently', async () => {
    const { h, s } = await setup({ name: 'P', subjects: ['p.>'] });
    const inbox = h.client.send('p.a', 'one');
    // Still queued: nothing committed, nothing acked.
    expect(h.client.got.has(inbox)).toBe(false);
    expect(s.lastSeq()).toBe(0);
    expect(h.js.commit.stats.commits).toBe(1); // only the create so far
    const ack = await h.client.reply(inbox);
    expect(ack.data.toString()).toBe('{"stream":"P", "seq":1}');
    expect(s.getMsg(1)?.raw.toString()).toBe('one');
    expect(h.client.publish('p.b', 'silent')).toBe(1);
    await nextTurn();
    expect(s.lastSeq()).toBe(2);
    expect(s.getMsg(2)?.subject).toBe('p.b');
  });

  it('one transaction for everything published in one turn', async () => {
    const { h, s } = await setup({ name: 'B', subjects: ['b'] });
    const before = h.js.commit.stats.commits;
    const inboxes = Array.from({ length: 100 }, (_, i) => h.client.send('b', `m${i}`));
    const acks = await Promise.all(inboxes.map((i) => h.client.reply(i)));
    expect(acks.map((a) => a.json()['seq'])).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(h.js.commit.stats.commits - before).toBe(1);
    expect(s.messages()).toBe(100);
  });

  it('checks in nats-server order: expected stream, duplicate, last seq, last msg id, last subject seq, rollup, size', async () => {
    await setup({ name: 'O', subjects: ['o.>'], max_msg_size: 100 });
    expect(await pub('o.a', '1', { 'Nats-Msg-Id': 'x' })).toEqual({ stream: 'O', seq: 1 });
    // Expected stream comes before the duplicate check.
    expect(await pub('o.a', '1', { 'Nats-Msg-Id': 'x', 'Nats-Expected-Stream': 'Q' })).toEqual({
      error: { code: 400, err_code: 10060, description: 'expected stream does not match' },
      stream: 'O',
      seq: 0,
    });
    // A duplicate wins over the expectations and the size limit.
    expect(await pub('o.a', '1', { 'Nats-Msg-Id': 'x', 'Nats-Expected-Last-Msg-Id': 'nope' })).toEqual({ stream: 'O', seq: 1, duplicate: true });
    expect(await pub('o.a', 'y'.repeat(200), { 'Nats-Msg-Id': 'x' })).toEqual({ stream: 'O', seq: 1, duplicate: true });
    expect((await pub('o.b', '1', { 'Nats-Expected-Last-Sequence': '9' }))['error']).toEqual({
      code: 400,
      err_code: 10071,
      description: 'wrong last sequence: 1',
    });
    expect((await pub('o.b', '1', { 'Nats-Expected-Last-Sequence': 'abc' }))['error']).toMatchObject({ err_code: 10071 });
    expect(await pub('o.b', '2', { 'Nats-Expected-Last-Sequence': '1' })).toEqual({ stream: 'O', seq: 2 });
    // The last message had no id: the last msg id is empty.
    expect((await pub('o.b', '3', { 'Nats-Expected-Last-Msg-Id': 'x' }))['error']).toEqual({ code: 400, err_code: 10070, description: 'wrong last msg ID: ' });
    expect((await pub('o.b', '3', { 'Nats-Expected-Last-Subject-Sequence': '1' }))['error']).toEqual({
      code: 400,
      err_code: 10071,
      description: 'wrong last sequence: 2',
    });
    expect(await pub('o.new', '3', { 'Nats-Expected-Last-Subject-Sequence': '0' })).toEqual({ stream: 'O', seq: 3 });
    expect((await pub('o.b', '3', { 'Nats-Rollup': 'sub' }))['error']).toEqual({ code: 500, err_code: 10111, description: 'rollup not permitted' });
    expect((await pub('o.b', 'z'.repeat(101)))['error']).toEqual({ code: 400, err_code: 10054, description: 'message size exceeds maximum allowed' });
    expect(await pub('o.b', 'z'.repeat(100))).toEqual({ stream: 'O', seq: 4 });
  });

  it('an unknown rollup value gets no answer and stores nothing', async () => {
    const { h, s } = await setup({ name: 'R', subjects: ['r.>'], allow_rollup_hdrs: true });
    const inbox = h.client.send('r.a', 'x', { 'Nats-Rollup': 'bogus' });
    await nextTurn();
    await nextTurn();
    expect(h.client.got.has(inbox)).toBe(false);
    expect(s.lastSeq()).toBe(0);
  });

  it('rollups: sub keeps the newest of the subject, all keeps only the new message', async () => {
    const { s } = await setup({ name: 'RU', subjects: ['ru.>'], allow_rollup_hdrs: true });
    for (const subj of ['ru.a', 'ru.b', 'ru.a', 'ru.b']) await pub(subj);
    expect(await pub('ru.a', 'rolled', { 'Nats-Rollup': 'sub' })).toEqual({ stream: 'RU', seq: 5 });
    expect([...s.subjectCounts('>')].sort()).toEqual([
      ['ru.a', 1],
      ['ru.b', 2],
    ]);
    expect(s.firstSeq()).toBe(2);
    expect(s.info({ deletedDetails: true })['state']).toMatchObject({ messages: 3, num_deleted: 1, deleted: [3] });
    expect(await pub('ru.c', 'all', { 'Nats-Rollup': 'all' })).toEqual({ stream: 'RU', seq: 6 });
    expect(s.info()['state']).toMatchObject({ messages: 1, first_seq: 6, last_seq: 6 });
  });

  it('discard new: max_msgs, max_bytes (>= the limit refuses) and per subject', async () => {
    await setup({ name: 'DN', subjects: ['dn'], max_msgs: 2, discard: 'new' });
    await pub('dn');
    await pub('dn');
    expect((await pub('dn'))['error']).toEqual({ code: 503, err_code: 10077, description: 'maximum messages exceeded' });

    const { s } = await setup({ name: 'DB', subjects: ['db'], max_bytes: 100, discard: 'new' });
    await pub('db', 'x'.repeat(40)); // 30 + 2 + 40 = 72 bytes
    expect(s.storedBytes()).toBe(72);
    // 72 + 28 = 100: refused; 72 + 27 = 99 is taken, then the oldest goes to get under 100.
    expect((await pub('db', 'x'.repeat(28)))['error']).toMatchObject({ err_code: 10077, description: 'maximum bytes exceeded' });
    expect(await pub('db', 'x'.repeat(27))).toEqual({ stream: 'DB', seq: 2 });
    expect(s.info()['state']).toMatchObject({ messages: 1, first_seq: 2, bytes: 59 });

    await setup({ name: 'DP', subjects: ['dp.*'], max_msgs_per_subject: 1, discard: 'new', discard_new_per_subject: true });
    await pub('dp.a');
    expect((await pub('dp.a'))['error']).toMatchObject({ err_code: 10077, description: 'maximum messages per subject exceeded' });

    // Without discard_new_per_subject a full subject drops its oldest instead, even at max_msgs.
    const t = await setup({ name: 'DQ', subjects: ['dq.*'], max_msgs_per_subject: 1, max_msgs: 2, discard: 'new' });
    await pub('dq.a');
    await pub('dq.b');
    expect(await pub('dq.a')).toEqual({ stream: 'DQ', seq: 3 });
    expect((await pub('dq.c'))['error']).toMatchObject({ description: 'maximum messages exceeded' });
    expect(t.s.info()['state']).toMatchObject({ messages: 2, first_seq: 2 });
  });

  it('discard old: max_msgs, max_bytes and max_msgs_per_subject drop the oldest', async () => {
    const { s } = await setup({ name: 'LO', subjects: ['lo.*'], max_msgs: 5, max_msgs_per_subject: 2 });
    for (let i = 1; i <= 4; i++) await pub('lo.a', `a${i}`);
    expect(s.subjectCounts('>').get('lo.a')).toBe(2);
    expect(s.getMsg(2)).toBeNull();
    for (let i = 1; i <= 5; i++) await pub(`lo.${i}`);
    expect(s.info()['state']).toMatchObject({ messages: 5, first_seq: 5, last_seq: 9 });
  });

  it('memory storage accounts nats-server memory sizes; the account usage follows', async () => {
    const { h, s } = await setup({ name: 'MEM', subjects: ['mem'], storage: 'memory' });
    await pub('mem', 'hello', { 'Nats-Msg-Id': 'id1' });
    // 16 + 3 + 30 (header block) + 5
    expect(s.storedBytes()).toBe(54);
    expect(h.js.usage.memory).toBe(54);
    const info = await h.client.api('$JS.API.INFO');
    expect(info).toMatchObject({ memory: 54, storage: 0, streams: 1 });
  });

  it('refuses publishes with 10023 once the store is over max_file_store, until space is freed', async () => {
    h = new Harness({ maxFileStore: 200 });
    const { s } = await setup({ name: 'FULL', subjects: ['full'] });
    await pub('full', 'x'.repeat(100)); // 135
    await pub('full', 'x'.repeat(100)); // 270: over, but the one crossing is kept
    expect((await pub('full'))['error']).toEqual({ code: 503, err_code: 10023, description: 'insufficient resources' });
    expect(s.messages()).toBe(2);
    const purged = await h.client.api('$JS.API.STREAM.PURGE.FULL');
    expect(purged).toMatchObject({ success: true, purged: 2 });
    expect(await pub('full')).toEqual({ stream: 'FULL', seq: 3 });
  });

  it('a full store file (SQLITE_FULL at the max_file_store cap) answers 10023 insufficient resources, as nats-server at its cap, and leaves the state as committed', async () => {
    const { h, s } = await setup({ name: 'SF', subjects: ['sf'] });
    await pub('sf', 'kept');
    const pages = h.js.db.pragma('page_count', { simple: true }) as number;
    h.js.db.pragma(`max_page_count = ${pages}`);
    const acks = await Promise.all(Array.from({ length: 20 }, () => pub('sf', 'y'.repeat(3000))));
    for (const a of acks) expect(a['error']).toEqual({ code: 503, err_code: 10023, description: 'insufficient resources' });
    expect(s.info()['state']).toMatchObject({ messages: 1, last_seq: 1 });
    h.js.db.pragma('max_page_count = 1000000');
    expect(await pub('sf', 'after')).toEqual({ stream: 'SF', seq: 2 });
  });
});

describe('reads for consumers', () => {
  it('fetch, countFrom, lastPerSubject, lastMatching and seqAtOrAfter with and without filters', async () => {
    const { h, s } = await setup({ name: 'RD', subjects: ['rd.>'] });
    const subjects = ['rd.a.1', 'rd.b.1', 'rd.a.2', 'rd.a.1', 'rd.c', 'rd.b.2'];
    for (const subj of subjects) await pub(subj);
    await h.client.api('$JS.API.STREAM.MSG.DELETE.RD', { seq: 3 });
    expect(s.fetch(1, [], 10).map((m) => m.seq)).toEqual([1, 2, 4, 5, 6]);
    expect(s.fetch(3, [], 2).map((m) => m.seq)).toEqual([4, 5]);
    expect(s.fetch(1, ['rd.a.1'], 10).map((m) => m.seq)).toEqual([1, 4]);
    expect(s.fetch(1, ['rd.b.*'], 10).map((m) => m.seq)).toEqual([2, 6]);
    expect(s.fetch(1, ['rd.a.>', 'rd.c'], 2).map((m) => m.seq)).toEqual([1, 4]);
    expect(s.fetch(7, [], 10)).toEqual([]);
    expect(s.countFrom(1, [])).toBe(5);
    expect(s.countFrom(2, [])).toBe(4);
    expect(s.countFrom(1, ['rd.a.>'])).toBe(2);
    expect(s.countFrom(2, ['rd.a.>'])).toBe(1);
    expect(s.countFrom(1, ['rd.b.*', 'rd.c'])).toBe(3);
    expect(s.lastPerSubject([])).toEqual([2, 4, 5, 6]);
    expect(s.lastPerSubject(['rd.b.*'])).toEqual([2, 6]);
    expect(s.lastMatching([])).toBe(6);
    expect(s.lastMatching(['rd.a.*'])).toBe(4);
    expect(s.lastMatching(['rd.zz'])).toBe(0);
    const t4 = s.getMsg(4)!.tsUs;
    expect(s.seqAtOrAfter(t4)).toBe(4);
    expect(s.seqAtOrAfter(0)).toBe(1);
    expect(s.seqAtOrAfter(t4 + 60_000_000)).toBe(7);
    expect(s.getMsg(3)).toBeNull();
    expect(s.lastBySubject('rd.a.*')?.seq).toBe(4);
    expect(s.nextBySubject('rd.b.*', 3)?.seq).toBe(6);
  });

  it('a wildcard filter over many subjects is served by a scan with the same answers', async () => {
    const { s } = await setup({ name: 'WS', subjects: ['ws.>'] });
    for (let i = 0; i < 150; i++) await pub(`ws.${i % 100}.${i % 2 === 0 ? 'even' : 'odd'}`);
    expect(s.fetch(1, ['ws.*.even'], 5).map((m) => m.seq)).toEqual([1, 3, 5, 7, 9]);
    expect(s.countFrom(1, ['ws.*.odd'])).toBe(75);
    expect(s.countFrom(100, ['ws.*.odd'])).toBe(26);
  });
});

describe('consumers of the stream', () => {
  it('hear of new messages after the commit and of removals before them', async () => {
    const { h, s } = await setup({ name: 'CN', subjects: ['cn'], max_msgs: 2 });
    const c = new FakeConsumer('c');
    s.consumers.set('c', c);
    await pub('cn');
    await pub('cn');
    expect(c.appended).toEqual([1, 2]);
    await pub('cn');
    expect(c.removed).toEqual([['all-below', 2]]);
    expect(c.appended).toEqual([1, 2, 3]);
    await h.client.api('$JS.API.STREAM.MSG.DELETE.CN', { seq: 3 });
    expect(c.removed[1]).toEqual(['some', 2]);
    await h.client.api('$JS.API.STREAM.DELETE.CN');
    expect(c.stopped).toEqual(['stream-deleted']);
  });

  it('interest retention: nothing stored without interest, a message goes once every consumer acked it', async () => {
    const { s } = await setup({ name: 'IN', subjects: ['in.>'], retention: 'interest' });
    expect(await pub('in.x')).toEqual({ stream: 'IN', seq: 1 });
    expect(s.info()['state']).toMatchObject({ messages: 0, last_seq: 1, first_seq: 2 });
    const a = new FakeConsumer('a');
    const b = new FakeConsumer('b', 'in.only-b');
    s.consumers.set('a', a);
    s.consumers.set('b', b);
    await pub('in.x');
    await pub('in.only-b');
    expect(s.messages()).toBe(2);
    a.acked.add(2);
    s.acked(a, 2);
    await nextTurn();
    expect(s.getMsg(2)).toBeNull();
    a.acked.add(3);
    s.acked(a, 3);
    await nextTurn();
    expect(s.getMsg(3)).not.toBeNull();
    // Deleting the consumer that still wanted it releases it.
    s.consumers.delete('b');
    await nextTurn();
    expect(s.messages()).toBe(0);
  });

  it('workqueue retention: an acked message goes; with no consumer the messages stay', async () => {
    const { s } = await setup({ name: 'WQ', subjects: ['wq'], retention: 'workqueue' });
    await pub('wq');
    await pub('wq');
    expect(s.messages()).toBe(2);
    const w = new FakeConsumer('w');
    s.consumers.set('w', w);
    w.acked.add(1);
    s.acked(w, 1);
    await nextTurn();
    expect(s.info()['state']).toMatchObject({ messages: 1, first_seq: 2 });
    s.consumers.delete('w');
    await nextTurn();
    expect(s.messages()).toBe(1);
  });
});

describe('restart', () => {
  it('keeps messages, sequences past a purge, headers and the duplicate window; memory streams are gone', async () => {
    const first = (await setup({ name: 'KEEP', subjects: ['keep.>'], duplicate_window: 60_000_000_000 })).h;
    await setup({ name: 'GONE', subjects: ['gone'], storage: 'memory' });
    await pub('keep.a', 'one', { 'Nats-Msg-Id': 'm1', 'X-Tag': 't' });
    await pub('keep.b', 'two');
    await pub('keep.c', 'three');
    await first.client.api('$JS.API.STREAM.PURGE.KEEP', { filter: 'keep.c' });
    await pub('gone', 'x');
    const before = first.js.streams.get('KEEP')!.info();
    const h2 = first.restart();
    h = h2;
    const s = h2.js.streams.get('KEEP')!;
    expect(h2.js.streams.has('GONE')).toBe(false);
    expect(s.info()).toEqual(before);
    expect(s.getMsg(1)?.raw.toString()).toContain('X-Tag: t');
    expect(await pub('keep.a', 'again', { 'Nats-Msg-Id': 'm1' })).toEqual({ stream: 'KEEP', seq: 1, duplicate: true });
    expect(await pub('keep.d', 'four')).toEqual({ stream: 'KEEP', seq: 4 });
    expect((await h2.client.api('$JS.API.STREAM.INFO.GONE'))['error']).toMatchObject({ err_code: 10059 });
  });
});
