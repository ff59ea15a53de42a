import type { Message } from './message.js';
import { payloadSize } from './message.js';
import type { Subscriber, Subscription } from './subscription.js';
import { SubjectIndex } from './sublist.js';

/** Told of every subscription added or removed (leaf links propagate interest with it). */
export type InterestListener = (sub: Subscription, added: boolean) => void;

export interface RouterStats {
  inMsgs: number;
  inBytes: number;
  outMsgs: number;
  outBytes: number;
}

/**
 * The one path every message takes: publishers of any kind call publish(); every kind of
 * subscriber receives through Subscriber.deliver(). The router knows nothing about protocols.
 */
export class Router {
  readonly index: SubjectIndex;
  readonly stats: RouterStats = { inMsgs: 0, inBytes: 0, outMsgs: 0, outBytes: 0 };
  private readonly listeners: InterestListener[] = [];

  constructor(opts: { cacheSize?: number } = {}) {
    this.index = new SubjectIndex(opts.cacheSize === undefined ? {} : { cacheSize: opts.cacheSize });
  }

  onInterest(listener: InterestListener): void {
    this.listeners.push(listener);
  }

  subscribe(sub: Subscription): void {
    this.index.insert(sub);
    for (let i = 0; i < this.listeners.length; i++) this.listeners[i]!(sub, true);
  }

  unsubscribe(sub: Subscription): void {
    if (!this.index.remove(sub)) return;
    for (let i = 0; i < this.listeners.length; i++) this.listeners[i]!(sub, false);
  }

  /** Remove all of a closing subscriber's subscriptions. */
  unsubscribeAll(subs: readonly Subscription[]): void {
    // One batch: a wildcard removal scans the result cache, and a closing connection may hold many.
    this.index.removeBatch(subs);
    if (this.listeners.length === 0) return;
    for (const sub of subs) for (let i = 0; i < this.listeners.length; i++) this.listeners[i]!(sub, false);
  }

  /**
   * Route one message: every matching plain subscription, and one member of each matching
   * queue group, chosen at random as nats-server does. `origin` is the publisher (null for
   * the server itself); its own subscriptions are skipped when it asked for echo:false.
   * Returns the number of deliveries made (0 = no responders).
   */
  publish(msg: Message, origin: Subscriber | null): number {
    const size = payloadSize(msg);
    if (origin !== null && origin.kind !== 'internal') {
      this.stats.inMsgs++;
      this.stats.inBytes += size;
    }
    const result = this.index.match(msg.to ?? msg.subject);
    const noEcho = origin !== null && !origin.echo ? origin : null;
    let delivered = 0;
    const plain = result.plain;
    for (let i = 0; i < plain.length; i++) {
      const sub = plain[i]!;
      if (sub.owner === noEcho) continue;
      this.deliverOne(sub, msg, size);
      delivered++;
    }
    const queues = result.queues;
    for (let g = 0; g < queues.length; g++) {
      const sub = pickMember(queues[g]!, noEcho);
      if (sub === undefined) continue;
      this.deliverOne(sub, msg, size);
      delivered++;
    }
    return delivered;
  }

  private deliverOne(sub: Subscription, msg: Message, size: number): void {
    sub.msgs++;
    if (sub.owner.kind !== 'internal') {
      this.stats.outMsgs++;
      this.stats.outBytes += size;
    }
    sub.owner.deliver(sub, msg);
  }
}

/** A random member of a queue group, skipping the publisher itself when it has echo off. */
function pickMember(members: readonly Subscription[], noEcho: Subscriber | null): Subscription | undefined {
  const n = members.length;
  if (n === 0) return undefined;
  const start = n === 1 ? 0 : Math.floor(Math.random() * n);
  for (let k = 0; k < n; k++) {
    const sub = members[(start + k) % n]!;
    if (sub.owner !== noEcho) return sub;
  }
  return undefined;
}
