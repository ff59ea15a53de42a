/**
 * A message as it travels through the router, parsed once from whatever protocol carried it.
 *
 * `data` holds the header block (when present) followed by the payload. It is usually a view
 * into the reader's socket chunk, so it is valid only for the duration of the synchronous
 * `deliver()` call: a subscriber that keeps the message past that (a store, a queue) copies it.
 */
export interface Message {
  readonly subject: string;
  /** Reply subject, '' when the publisher gave none. */
  readonly reply: string;
  /** Header block length in bytes, or -1 when the message has no header block (plain PUB). */
  readonly hdrLen: number;
  /** Header block followed by payload. */
  readonly data: Uint8Array;
  /**
   * The subject to route by when it differs from `subject` (JetStream pull deliveries are
   * routed to the request's inbox but show the stored subject). Absent for ordinary messages.
   */
  readonly to?: string;
  /**
   * Set by a publisher that must know when the message is durable (MQTT QoS 1/2: PUBACK only
   * after a capturing stream committed). Each stream that takes the message calls captured()
   * synchronously inside deliver(), then stored() once its transaction committed (or failed).
   */
  readonly receipt?: StoreReceipt;
}

export interface StoreReceipt {
  captured(): void;
  stored(err: Error | null): void;
}

/** Size of the payload alone (what nats-server counts in in_bytes / out_bytes). */
export function payloadSize(msg: Message): number {
  return msg.hdrLen > 0 ? msg.data.length - msg.hdrLen : msg.data.length;
}
