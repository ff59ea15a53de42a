/**
 * MQTT v5 request/response across to NATS. A v5 PUBLISH with a Response Topic and Correlation
 * Data goes onto the router with a broker-owned reply subject (`$MQTT.reply.<broker id>.<n>`)
 * instead of the response topic's subject, because a NATS responder answers to the reply
 * subject with payload and headers only: the correlation data would be lost. This internal
 * subscriber owns that prefix; an answer arriving on it is republished to the response topic
 * with the request's correlation data as a v5 property, so MQTT and NATS subscribers of the
 * response topic both see it.
 *
 * Bounded: at most REPLY_MAX requests remembered (the oldest is forgotten first) and each for
 * REPLY_TTL_MS; the first answer consumes the entry (MQTT request/response is one answer).
 */
import { randomBytes } from 'node:crypto';
import type { Message } from '../core/message.js';
import type { Router } from '../core/router.js';
import type { Subscriber, Subscription } from '../core/subscription.js';

export const REPLY_MAX = 10_000;
export const REPLY_TTL_MS = 60_000;

interface PendingReply {
  /** NATS subject and MQTT topic of the request's Response Topic. */
  readonly subject: string;
  readonly topic: string;
  readonly correlationData: Buffer;
  readonly at: number;
}

/** Where an answer goes: the response topic with the request's correlation data. */
export type AnswerSink = (topic: string, subject: string, correlationData: Buffer, answer: Message) => void;

export class MqttReplies implements Subscriber {
  readonly kind = 'internal' as const;
  readonly echo = true;
  /** `$MQTT.reply.<broker id>.`: a fresh id per process, so answers to an earlier run are ignored. */
  readonly prefix: string;
  private readonly pending = new Map<number, PendingReply>();
  private seq = 0;
  private readonly sub: Subscription;
  private forgotten = 0;

  constructor(
    readonly cid: number,
    private readonly router: Router,
    private readonly sink: AnswerSink,
  ) {
    this.prefix = `$MQTT.reply.${randomBytes(6).toString('hex')}.`;
    this.sub = { subject: `${this.prefix}*`, queue: '', sid: 'mqtt-replies', owner: this, msgs: 0, max: 0 };
    router.subscribe(this.sub);
  }

  get size(): number {
    return this.pending.size;
  }

  /** Requests dropped unanswered (count bound or age). */
  get expired(): number {
    return this.forgotten;
  }

  /** Remembers a request; returns the reply subject to publish it with. */
  register(subject: string, topic: string, correlationData: Buffer, now: number): string {
    if (this.pending.size >= REPLY_MAX) {
      // Map order is insertion order: the first key is the oldest request.
      const oldest = this.pending.keys().next();
      if (oldest.done !== true) this.pending.delete(oldest.value);
      this.forgotten++;
    }
    this.seq = this.seq >= Number.MAX_SAFE_INTEGER ? 1 : this.seq + 1;
    this.pending.set(this.seq, { subject, topic, correlationData, at: now });
    return this.prefix + this.seq;
  }

  deliver(_sub: Subscription, msg: Message): void {
    const subject = msg.subject;
    if (!subject.startsWith(this.prefix)) return;
    const n = Number(subject.slice(this.prefix.length));
    const entry = this.pending.get(n);
    if (entry === undefined) return;
    this.pending.delete(n);
    if (entry.at + REPLY_TTL_MS <= Date.now()) {
      this.forgotten++;
      return;
    }
    this.sink(entry.topic, entry.subject, entry.correlationData, msg);
  }

  /** Forgets requests older than REPLY_TTL_MS (called from the broker's tick). */
  sweep(now: number): void {
    for (const [n, e] of this.pending) {
      if (e.at + REPLY_TTL_MS > now) break;
      this.pending.delete(n);
      this.forgotten++;
    }
  }

  close(): void {
    this.router.unsubscribe(this.sub);
    this.pending.clear();
  }
}
