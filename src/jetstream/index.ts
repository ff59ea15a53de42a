/**
 * JetStream's entry point for the server: start it when the options enable it, and attach its
 * monitoring to the HTTP server.
 */
import type { MonitorServer } from '../monitor/http-server.js';
import { JetStream, type JetStreamStartOptions } from './jetstream.js';
import { jetstreamVarz, jszHandler, type JszSource } from './jsz.js';

export { JetStream, type JetStreamStartOptions, type JetStreamStats } from './jetstream.js';

/**
 * Opens the store under `<store_dir>/jetstream`, restores streams and consumers and starts
 * answering `$JS.API`. Rejects with a JetStreamStartError when the store cannot be opened.
 */
export async function startJetStream(o: JetStreamStartOptions): Promise<JetStream> {
  try {
    return JetStream.start(o);
  } catch (err) {
    throw new JetStreamStartError(err);
  }
}

/** /jsz and the /varz `jetstream` block; with `js` null, /jsz answers as a server without JetStream. */
export function attachJetStreamMonitoring(monitor: MonitorServer, js: JetStream | null, source: JszSource): void {
  monitor.route('/jsz', jszHandler(js, source));
  if (js !== null) monitor.addVarzExtension(jetstreamVarz(js));
}

/** JetStream could not start (store unreadable, directory not writable): the server must not run without it. */
export class JetStreamStartError extends Error {
  constructor(cause: unknown) {
    super(`Can't start JetStream: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}
