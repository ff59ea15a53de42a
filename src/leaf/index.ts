/**
 * The leaf component: one LeafLink per configured remote, the local interest they advertise,
 * and each remote's store-and-forward queue in the shared SQLite store.
 */
import type { StoreHost } from '../store/host.js';
import { redactUrl } from './config.js';
import { LeafBufferStore, migrateLeafBuffer } from './buffer-store.js';
import { LocalInterest } from './interest.js';
import { LeafLink, randomToken, type LeafContext } from './link.js';
import { Replayer } from './replay.js';
import type { LeafLinkView, LeafOptions } from './types.js';

export type { LeafContext } from './link.js';
export { parseLeafConfig } from './config.js';

export class LeafNodes {
  private readonly links: LeafLink[] = [];
  private readonly replayers: Replayer[] = [];
  private readonly interest: LocalInterest;

  constructor(
    ctx: LeafContext,
    readonly opts: LeafOptions,
    store: StoreHost | null,
  ) {
    this.interest = new LocalInterest(ctx.router);
    if (store !== null && opts.remotes.some((r) => r.buffer !== undefined)) migrateLeafBuffer(store.db);
    for (const remote of opts.remotes) {
      const label = redactUrl(remote.urls[0]!);
      let replay: Replayer | null = null;
      if (remote.buffer !== undefined) {
        if (store === null) throw new Error(`leafnodes remote ${label}: a buffer needs JetStream's store`);
        // The queue is keyed by the remote's first URL (host:port), stable across restarts.
        const key = label.replace(/^[a-z-]+:\/\//, '');
        const q = new LeafBufferStore(store, key, remote.buffer, (err) => ctx.log.error(`Leafnode ${label} buffer: ${err.message}`));
        replay = new Replayer(q, remote.buffer, ctx.router, ctx.log, label, ctx.nextCid(), `_INBOX.${randomToken(22)}`);
        this.replayers.push(replay);
      }
      const link = new LeafLink(ctx, remote, this.interest, replay, opts.reconnectMs);
      this.links.push(link);
    }
  }

  start(): void {
    for (const l of this.links) l.start();
  }

  stop(): void {
    for (const l of this.links) l.stop();
    for (const r of this.replayers) r.close();
  }

  views(): LeafLinkView[] {
    return this.links.map((l) => l.view());
  }

  /** Live messages dropped on congested links, over all remotes. */
  droppedLive(): number {
    let n = 0;
    for (const l of this.links) n += l.droppedLive;
    return n;
  }
}
