import type { ServerOptions } from '../config/options.js';
import type { MemoryBudget } from '../core/budget.js';
import type { Router } from '../core/router.js';
import type { Logger } from '../log.js';
import type { Authenticator } from './auth.js';
import type { ClientConnection } from './client.js';

/** What a client connection needs from the server it belongs to. */
export interface ClientContext {
  readonly router: Router;
  readonly budget: MemoryBudget;
  readonly log: Logger;
  /** Current options; they change on reload. */
  options(): ServerOptions;
  authenticator(): Authenticator;
  /** The INFO JSON object sent to every client, without per-connection fields. */
  infoBase(): Record<string, unknown>;
  nextCid(): number;
  clientClosed(client: ClientConnection): void;
  slowConsumer(client: ClientConnection): void;
}
