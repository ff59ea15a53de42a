import { describe, expect, it } from 'vitest';
import { AckState } from '../../src/jetstream/consumer-state.js';

const WAIT = 1_000_000; // 1 s in µs

function state(backoff?: number[]): AckState {
  return new AckState((dc) => (backoff === undefined ? WAIT : backoff[Math.min(dc - 1, backoff.length - 1)]!));
}

/** Deliver stream seqs in order at time t. */
function deliver(st: AckState, seqs: number[], t = 0): void {
  for (const s of seqs) st.deliverNew(s, t, true);
}

describe('ack floor and pending (nats-server 2.9.10 figures)', () => {
  it('explicit acks out of order leave the floor at the oldest outstanding delivery', () => {
    const st = state();
    deliver(st, [1, 2, 3, 4, 5, 6]);
    expect(st.ack(1)).toBe(true);
    expect([st.adflr, st.asflr]).toEqual([1, 1]);
    expect(st.numAckPending).toBe(5);
    st.ack(3);
    expect([st.adflr, st.asflr]).toEqual([1, 1]);
    st.ack(2);
    // floor moves to just below the next pending (seq 4, dseq 4)
    expect([st.adflr, st.asflr]).toEqual([3, 3]);
    st.ack(5);
    st.ack(6);
    expect([st.adflr, st.asflr]).toEqual([3, 3]);
    st.ack(4);
    expect(st.numAckPending).toBe(0);
    expect([st.adflr, st.asflr, st.dseq, st.dsseq]).toEqual([6, 6, 6, 6]);
  });

  it('an ack of something not pending changes nothing', () => {
    const st = state();
    deliver(st, [1]);
    expect(st.ack(7)).toBe(false);
    expect(st.ack(1)).toBe(true);
    expect(st.ack(1)).toBe(false);
    expect([st.adflr, st.asflr]).toEqual([1, 1]);
  });

  it('redeliveries take new consumer seqs; delivered/ack floor as in the spec example', () => {
    // §7.3: delivered {6,4}, ack_floor {0,0}, 2 pending redelivered twice.
    const st = state();
    deliver(st, [1, 2, 3, 4]);
    st.ack(3);
    st.ack(4);
    st.redeliver(1, 10);
    st.redeliver(2, 10);
    expect([st.dseq, st.dsseq, st.adflr, st.asflr]).toEqual([6, 4, 0, 0]);
    expect(st.numAckPending).toBe(2);
    expect(st.numRedelivered).toBe(2);
    expect(st.pending.get(1)).toMatchObject({ dseq: 5, dc: 2 });
  });

  it('ack all acknowledges everything up to the seq (ack_policy all)', () => {
    const st = state();
    deliver(st, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(st.ackAll(5, 5)).toEqual([1, 2, 3, 4, 5]);
    expect([st.adflr, st.asflr]).toEqual([5, 5]);
    expect([...st.pending.keys()]).toEqual([6, 7, 8, 9, 10]);
    // an older ack changes nothing
    expect(st.ackAll(3, 3)).toEqual([]);
    expect(st.ackAll(10, 10)).toHaveLength(5);
    expect([st.adflr, st.asflr, st.numAckPending]).toEqual([10, 10, 0]);
  });

  it('ack none moves the floor with every delivery', () => {
    const st = state();
    st.deliverNew(3, 0, false);
    st.deliverNew(4, 0, false);
    expect([st.dseq, st.dsseq, st.adflr, st.asflr, st.numAckPending]).toEqual([2, 4, 2, 4, 0]);
  });

  it('a purge below firstSeq drops pending and lifts the floors', () => {
    const st = state();
    deliver(st, [1, 2, 3]);
    st.dropBelow(9);
    expect(st.numAckPending).toBe(0);
    expect([st.asflr, st.dsseq]).toEqual([8, 8]);
  });

  it('max_deliver drops from pending but keeps the redelivered count', () => {
    const st = state();
    deliver(st, [1]);
    st.redeliver(1, 5);
    st.dropMaxDelivered(1);
    expect(st.numAckPending).toBe(0);
    expect(st.numRedelivered).toBe(1);
  });

  it('marks what changed for persistence', () => {
    const st = state();
    deliver(st, [1, 2]);
    expect([...st.dirty]).toEqual([1, 2]);
    expect(st.headerDirty).toBe(true);
    st.dirty.clear();
    st.headerDirty = false;
    st.ack(2);
    expect([...st.dirty]).toEqual([2]);
    expect(st.headerDirty).toBe(true);
  });
});

describe('redelivery scheduling', () => {
  it('expires after the ack wait, in the order they became due', () => {
    const st = state();
    st.deliverNew(1, 0, true);
    st.deliverNew(2, 100, true);
    expect(st.nextDue()).toBe(WAIT);
    expect(st.expire(WAIT - 1)).toBe(0);
    expect(st.expire(WAIT + 100)).toBe(2);
    expect(st.peekRedelivery()).toBe(1);
    st.takeRedelivery();
    expect(st.peekRedelivery()).toBe(2);
  });

  it('acked messages are never redelivered', () => {
    const st = state();
    deliver(st, [1, 2]);
    st.ack(1);
    st.expire(WAIT);
    expect(st.peekRedelivery()).toBe(2);
    st.ack(2);
    expect(st.peekRedelivery()).toBe(0);
    expect(st.nextDue()).toBe(Infinity);
  });

  it('-NAK requeues at once, or after the delay', () => {
    const st = state();
    deliver(st, [1, 2]);
    st.nak(2, 0, 0);
    expect(st.peekRedelivery()).toBe(2);
    st.takeRedelivery();
    st.redeliver(2, 10);
    st.nak(1, 50, 300);
    expect(st.nextDue()).toBe(350);
    expect(st.expire(349)).toBe(0);
    expect(st.expire(350)).toBe(1);
    expect(st.peekRedelivery()).toBe(1);
  });

  it('+WPI restarts the ack wait', () => {
    const st = state();
    deliver(st, [1, 2]);
    st.progress(1, 600_000);
    expect(st.expire(WAIT)).toBe(1);
    expect(st.peekRedelivery()).toBe(2);
    st.takeRedelivery();
    expect(st.nextDue()).toBe(1_600_000);
    expect(st.expire(1_600_000)).toBe(1);
    expect(st.peekRedelivery()).toBe(1);
  });

  it('backoff steps follow the delivery count', () => {
    const st = state([200_000, 500_000]);
    st.deliverNew(1, 0, true);
    expect(st.nextDue()).toBe(200_000);
    st.expire(200_000);
    st.takeRedelivery();
    st.redeliver(1, 200_000);
    expect(st.nextDue()).toBe(700_000);
    st.expire(700_000);
    st.takeRedelivery();
    st.redeliver(1, 700_000);
    expect(st.nextDue()).toBe(1_200_000);
  });

  it('does not let stale deadlines pile up without bound', () => {
    const st = state();
    for (let i = 1; i <= 20_000; i++) {
      st.deliverNew(i, i, true);
      st.ack(i);
    }
    deliver(st, [20_001], 30_000);
    expect(st.nextDue()).toBe(30_000 + WAIT);
    // The heap is private; rebuilding keeps it near the pending size.
    expect((st as unknown as { heap: { size: number } }).heap.size).toBeLessThan(2000);
  });

  it('restored entries are due at their delivery time plus the wait', () => {
    const st = state();
    st.restorePending(4, 9, 2, 1000);
    st.restorePending(6, 0, 5, 0);
    expect(st.numAckPending).toBe(1);
    expect(st.numRedelivered).toBe(2);
    expect(st.nextDue()).toBe(1000 + WAIT);
  });
});
