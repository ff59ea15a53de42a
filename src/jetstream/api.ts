/**
 * The `$JS.API` dispatcher: one internal subscriber on `$JS.API.>` (and `$JS.<domain>.API.>`)
 * hands each request to the handler registered for the longest matching prefix of its tokens.
 *
 * As nats-server: a request that matches no endpoint gets no answer at all (the requester times
 * out; there is interest, so no 503), and a request without a reply subject is still handled,
 * only its response goes nowhere. Every JSON response counts in api.total, every error also in
 * api.errors (the account info counts itself).
 */
import type { Message } from '../core/message.js';
import type { Router } from '../core/router.js';
import type { Subscriber, Subscription } from '../core/subscription.js';
import type { Logger } from '../log.js';
import type { ApiError, ApiHandler, ApiRequest, ApiRouter } from './types.js';

const API_PREFIX = '$JS.API.';
const TYPE_PREFIX = 'io.nats.jetstream.api.v1.';

export interface ApiCounters {
  total: number;
  errors: number;
}

export class JsApi implements ApiRouter, Subscriber {
  readonly kind = 'internal' as const;
  readonly echo = true;
  readonly counters: ApiCounters = { total: 0, errors: 0 };
  private readonly handlers = new Map<string, ApiHandler>();
  private longestPrefix = 0;
  private readonly subs: Subscription[] = [];
  /** `$JS.<domain>.API.` when a domain is set. */
  private readonly domainPrefix: string | null;

  constructor(
    private readonly router: Router,
    private readonly log: Logger,
    readonly cid: number,
    domain: string | undefined,
  ) {
    this.domainPrefix = domain !== undefined && domain !== '' ? `$JS.${domain}.API.` : null;
  }

  /** Subscribe to the API subjects. */
  start(): void {
    this.addSub(API_PREFIX + '>');
    if (this.domainPrefix !== null) this.addSub(this.domainPrefix + '>');
  }

  stop(): void {
    if (this.subs.length > 0) this.router.unsubscribeAll(this.subs);
    this.subs.length = 0;
  }

  private addSub(subject: string): void {
    const sub: Subscription = { subject, queue: '', sid: String(this.subs.length + 1), owner: this, msgs: 0, max: 0 };
    this.subs.push(sub);
    this.router.subscribe(sub);
  }

  register(prefix: readonly string[], handler: ApiHandler): void {
    this.handlers.set(prefix.join('.'), handler);
    if (prefix.length > this.longestPrefix) this.longestPrefix = prefix.length;
  }

  respond(reply: string, type: string | null, body: Record<string, unknown>): void {
    this.counters.total++;
    this.send(reply, type, body);
  }

  respondError(reply: string, type: string, error: ApiError, extra?: Record<string, unknown>): void {
    this.counters.total++;
    this.counters.errors++;
    this.send(reply, type, extra === undefined ? { error } : { error, ...extra });
  }

  /** A JSON response that nats-server does not count (a successful STREAM.MSG.GET). */
  respondUncounted(reply: string, type: string, body: Record<string, unknown>): void {
    this.send(reply, type, body);
  }

  /** A raw reply (DIRECT.GET, status messages): `raw` holds the header block then the payload. */
  reply(reply: string, hdrLen: number, raw: Buffer): void {
    if (reply === '') return;
    this.router.publish({ subject: reply, reply: '', hdrLen: hdrLen > 0 ? hdrLen : -1, data: raw }, null);
  }

  private send(reply: string, type: string | null, body: Record<string, unknown>): void {
    if (reply === '') return;
    const json = JSON.stringify(type === null ? body : { type: TYPE_PREFIX + type, ...body });
    this.router.publish({ subject: reply, reply: '', hdrLen: -1, data: Buffer.from(json) }, null);
  }

  // ---- Subscriber -----------------------------------------------------------------------

  deliver(_sub: Subscription, msg: Message): void {
    let rest: string;
    if (msg.subject.startsWith(API_PREFIX)) {
      rest = msg.subject.slice(API_PREFIX.length);
    } else if (this.domainPrefix !== null && msg.subject.startsWith(this.domainPrefix)) {
      rest = msg.subject.slice(this.domainPrefix.length);
      // KV writes through a domain arrive as $JS.<domain>.API.$KV.<bucket>.<key>: they are
      // publishes to $KV.<bucket>.<key> on this server (jetstream-api.md §12).
      if (rest.startsWith('$KV.')) {
        this.router.publish({ subject: rest, reply: msg.reply, hdrLen: msg.hdrLen, data: msg.data }, null);
        return;
      }
    } else {
      return;
    }
    const tokens = rest.split('.');
    const handler = this.lookup(tokens);
    if (handler === undefined) return;
    const data = msg.data;
    const hdrLen = msg.hdrLen > 0 ? msg.hdrLen : 0;
    const req: ApiRequest = {
      tokens,
      subject: msg.subject,
      reply: msg.reply,
      data: Buffer.from(data.subarray(hdrLen)),
      hdr: hdrLen > 0 ? Buffer.from(data.subarray(0, hdrLen)) : null,
    };
    try {
      handler(req);
    } catch (err) {
      // A handler bug must not take the server down; the requester gets nothing, as for a crash in nats-server's handler goroutine.
      this.log.error(`JetStream API ${msg.subject}: ${(err as Error).stack ?? String(err)}`);
    }
  }

  private lookup(tokens: readonly string[]): ApiHandler | undefined {
    for (let n = Math.min(tokens.length, this.longestPrefix); n > 0; n--) {
      const h = this.handlers.get(tokens.slice(0, n).join('.'));
      if (h !== undefined) return h;
    }
    return undefined;
  }
}
