import type { Message } from './message.js';

/** What a connection kind calls itself, as /connz and the router's statistics name it. */
export type SubscriberKind = 'client' | 'mqtt' | 'leaf' | 'internal';

/**
 * Anything that can hold subscriptions on the router: a NATS connection, an MQTT session,
 * a leaf link, an internal client (JetStream, system). The router knows nothing else about it.
 */
export interface Subscriber {
  readonly kind: SubscriberKind;
  /** Connection id, unique for the life of the process. */
  readonly cid: number;
  /** false: never deliver this subscriber's own publishes back to it (CONNECT echo:false). */
  readonly echo: boolean;
  /**
   * Deliver one message on one of this subscriber's subscriptions. Called synchronously by the
   * router; `msg.data` must be copied if kept (see Message).
   */
  deliver(sub: Subscription, msg: Message): void;
}

/**
 * A leaf link (kind 'leaf'). Several of its subscriptions may match one message (the hub's
 * `foo.*` and `foo.>`), but a link sends each message once, listing the hub queue groups
 * chosen for it, so the router gathers a link's matches and calls forward() once instead of
 * deliver().
 */
export interface LinkSubscriber extends Subscriber {
  readonly kind: 'leaf';
  /**
   * `plain`: the link's plain subscriptions that matched (possibly empty); `queues`: the names
   * of the link's queue groups the router picked (possibly empty).
   */
  forward(msg: Message, plain: readonly Subscription[], queues: readonly string[]): void;
}

export interface Subscription {
  readonly subject: string;
  /** Queue group name, '' for a plain subscription. */
  readonly queue: string;
  /** Subscription id as the owner knows it (the client's sid for NATS connections). */
  readonly sid: string;
  readonly owner: Subscriber;
  /** Messages delivered on this subscription so far. */
  msgs: number;
  /** Auto-unsubscribe after this many messages (UNSUB sid max); 0 = no limit. */
  max: number;
}
