/**
 * The JetStream streams as the console lists them: counts and size against max_bytes, the
 * largest first, so a device with hundreds of KV buckets still sends a short list.
 */
import type { JetStream } from '../../jetstream/index.js';
import { publicConsumerCount } from '../../jetstream/consumer-engine.js';
import type { ConsoleStream } from './snapshot.js';

export const STREAMS_LISTED = 50;

export function consoleStreams(js: JetStream, max = STREAMS_LISTED): ConsoleStream[] {
  const all: ConsoleStream[] = [];
  for (const s of js.streams.values()) {
    const cfg = s.config();
    all.push({
      name: s.name,
      storage: s.storage,
      messages: s.messages(),
      bytes: s.storedBytes(),
      maxBytes: cfg.max_bytes > 0 ? cfg.max_bytes : -1,
      discard: cfg.discard,
      consumers: publicConsumerCount(s.consumers.values()),
    });
  }
  all.sort((a, b) => b.bytes - a.bytes || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (all.length > max) all.length = max;
  return all;
}
