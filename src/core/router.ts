import type { Message } from './message.js';
import { payloadSize } from './message.js';
import type { LinkSubscriber, Subscriber, Subscription } from './subscription.js';
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
   * queue group, chosen at random as nats-server does, preferring members on this server over
   * leaf links. `origin` is the publisher (null for the server itself); its own subscriptions
   * are skipped when it asked for echo:false (leaf links always do).
   *
   * `queueFilter` is for messages that arrived over a leaf link: null = the hub sent no queue
   * list, so plain subscriptions only; a list = plain subscriptions and one member of each
   * named group. Omitted for everything else.
   *
   * Returns the number of deliveries made (0 = no responders).
   */
  publish(msg: Message, origin: Subscriber | null, queueFilter?: readonly string[] | null): number {
    const size = payloadSize(msg);
    if (origin !== null && origin.kind !== 'internal') {
      this.stats.inMsgs++;
      this.stats.inBytes += size;
    }
    const result = this.index.match(msg.to ?? msg.subject);
    const noEcho = origin !== null && !origin.echo ? origin : null;
    let delivered = 0;
    let links: LinkTarget[] | null = null;
    const plain = result.plain;
    for (let i = 0; i < plain.length; i++) {
      const sub = plain[i]!;
      if (sub.owner === noEcho) continue;
      if (sub.owner.kind === 'leaf') {
        links = linkTarget(links, sub.owner as LinkSubscriber);
        links[links.length - 1]!.plain.push(sub);
        sub.msgs++;
        continue;
      }
      this.deliverOne(sub, msg, size);
      delivered++;
    }
    if (queueFilter !== null) {
      const queues = result.queues;
      for (let g = 0; g < queues.length; g++) {
        const members = queues[g]!;
        if (queueFilter !== undefined && !queueFilter.includes(members[0]!.queue)) continue;
        const sub = pickMember(members, noEcho);
        if (sub === undefined) continue;
        if (sub.owner.kind === 'leaf') {
          links = linkTarget(links, sub.owner as LinkSubscriber);
          links[links.length - 1]!.queues.push(sub.queue);
          sub.msgs++;
          continue;
        }
        this.deliverOne(sub, msg, size);
        delivered++;
      }
    }
    if (links !== null) {
      for (let i = 0; i < links.length; i++) {
        const t = links[i]!;
        this.stats.outMsgs++;
        this.stats.outBytes += size;
        t.link.forward(msg, t.plain, t.queues);
        delivered++;
      }
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

interface LinkTarget {
  link: LinkSubscriber;
  plain: Subscription[];
  queues: string[];
}

/** The gathering entry for `link`, moved to the end of `targets` (created when new). */
function linkTarget(targets: LinkTarget[] | null, link: LinkSubscriber): LinkTarget[] {
  const list = targets ?? [];
  for (let i = 0; i < list.length; i++) {
    const t = list[i]!;
    if (t.link === link) {
      if (i !== list.length - 1) {
        list.splice(i, 1);
        list.push(t);
      }
      return list;
    }
  }
  list.push({ link, plain: [], queues: [] });
  return list;
}

/**
 * A random member of a queue group, skipping the publisher itself when it has echo off; a
 * member behind a leaf link only when no member on this server is left (nats-server's rule).
 */
function pickMember(members: readonly Subscription[], noEcho: Subscriber | null): Subscription | undefined {
  const n = members.length;
  if (n === 0) return undefined;
  const start = n === 1 ? 0 : Math.floor(Math.random() * n);
  let remote: Subscription | undefined;
  for (let k = 0; k < n; k++) {
    const sub = members[(start + k) % n]!;
    if (sub.owner === noEcho) continue;
    if (sub.owner.kind !== 'leaf') return sub;
    remote ??= sub;
  }
  return remote;
}
