/**
 * This server's own interest, as leaf links advertise it to their hubs (leafnode.md §6): one
 * count per plain subject (LS+ when it goes 0→1, LS- at 0) and one weight per queue group on a
 * subject (every change re-sent as LS+ with the absolute weight, LS- at 0). Interest learned
 * from the hubs themselves (subscriptions owned by leaf links) is never re-advertised.
 */
import type { Router } from '../core/router.js';
import type { Subscription } from '../core/subscription.js';

/** weight 0 = the interest is gone. `queue` '' for plain interest. */
export type InterestChange = (subject: string, queue: string, weight: number) => void;

export class LocalInterest {
  private readonly plain = new Map<string, number>();
  /** key: subject + ' ' + queue */
  private readonly queues = new Map<string, number>();
  private readonly listeners = new Set<InterestChange>();

  constructor(router: Router) {
    for (const sub of router.index.all()) this.apply(sub, true);
    router.onInterest((sub, added) => this.apply(sub, added));
  }

  listen(l: InterestChange): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Every current interest, as (subject, queue, weight). */
  *entries(): IterableIterator<[string, string, number]> {
    for (const [subject] of this.plain) yield [subject, '', 1];
    for (const [key, weight] of this.queues) {
      const sp = key.indexOf(' ');
      yield [key.slice(0, sp), key.slice(sp + 1), weight];
    }
  }

  /** Local members of queue group `queue` on exactly `subject`. */
  queueWeight(subject: string, queue: string): number {
    return this.queues.get(subject + ' ' + queue) ?? 0;
  }

  private apply(sub: Subscription, added: boolean): void {
    if (sub.owner.kind === 'leaf') return;
    const subject = sub.subject;
    if (sub.queue === '') {
      const n = (this.plain.get(subject) ?? 0) + (added ? 1 : -1);
      if (n <= 0) {
        if (!this.plain.delete(subject)) return;
        this.emit(subject, '', 0);
      } else {
        this.plain.set(subject, n);
        if (n === 1 && added) this.emit(subject, '', 1);
      }
      return;
    }
    const key = subject + ' ' + sub.queue;
    const w = (this.queues.get(key) ?? 0) + (added ? 1 : -1);
    if (w <= 0) {
      if (!this.queues.delete(key)) return;
      this.emit(subject, sub.queue, 0);
    } else {
      this.queues.set(key, w);
      this.emit(subject, sub.queue, w);
    }
  }

  private emit(subject: string, queue: string, weight: number): void {
    for (const l of this.listeners) l(subject, queue, weight);
  }
}
