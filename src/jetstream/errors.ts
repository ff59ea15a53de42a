/**
 * The JetStream API error catalogue: nats-server's HTTP-like `code`, stable `err_code` and text
 * (jetstream-api.md §11; texts checked against nats-server 2.9.10, the few 2.10-only codes taken
 * from its published catalogue). Clients switch on `err_code`, and some (KV) on the exact text.
 */
import type { ApiError } from './types.js';

function e(code: number, err_code: number, description: string): ApiError {
  return { code, err_code, description };
}

export const JsErrors = {
  // ---- requests -------------------------------------------------------------------------
  /** Unparsable body, wrong field types, unknown enum values (2.9 text, no detail). */
  invalidJson: (): ApiError => e(400, 10025, 'invalid JSON'),
  badRequest: (): ApiError => e(400, 10003, 'bad request'),
  /** DELETE and other body-less requests that came with a body. */
  notEmptyRequest: (): ApiError => e(400, 10038, 'expected an empty request payload'),
  notEnabled: (): ApiError => e(503, 10076, 'JetStream not enabled'),
  clusterRequired: (): ApiError => e(503, 10010, 'JetStream clustering support required'),
  notEnabledForAccount: (): ApiError => e(503, 10039, 'jetstream not enabled for account'),

  // ---- streams --------------------------------------------------------------------------
  streamNotFound: (): ApiError => e(404, 10059, 'stream not found'),
  streamMismatch: (): ApiError => e(400, 10056, 'stream name in subject does not match request'),
  streamNameExists: (): ApiError => e(400, 10058, 'stream name already in use with a different configuration'),
  streamSubjectOverlap: (): ApiError => e(400, 10065, 'subjects overlap with an existing stream'),
  streamNamePathSeparators: (): ApiError => e(400, 10128, 'Stream name can not contain path separators'),
  /** Config validation failures: nats-server wraps every one of them as 500/10052 with its reason. */
  streamInvalidConfig: (reason: string): ApiError => e(500, 10052, reason),
  /** A create that failed for a reason that is not a config error. */
  streamCreate: (reason: string): ApiError => e(500, 10049, reason),
  mirrorWithSubjects: (): ApiError => e(400, 10034, 'stream mirrors can not contain subjects'),
  replicasNotSupported: (): ApiError => e(500, 10074, 'replicas > 1 not supported in non-clustered mode'),
  replicasNegative: (): ApiError => e(400, 10133, 'replicas count cannot be negative'),
  maxStreams: (): ApiError => e(400, 10027, 'maximum number of streams reached'),
  streamSealed: (): ApiError => e(400, 10109, 'invalid operation on sealed stream'),
  noMessageFound: (): ApiError => e(404, 10037, 'no message found'),
  /** MSG.DELETE refusals: `message delete not permitted`, `no message found`, `stream store EOF`. */
  msgDeleteFailed: (reason: string): ApiError => e(500, 10057, reason),
  purgeFailed: (reason: string): ApiError => e(500, 10110, reason),
  purgeNotPermitted: (): ApiError => e(500, 10110, 'stream purge not permitted'),
  sequenceNotFound: (seq: number): ApiError => e(400, 10043, `sequence ${seq} not found`),
  storageResourcesExceeded: (): ApiError => e(500, 10047, 'insufficient storage resources available'),
  memoryResourcesExceeded: (): ApiError => e(500, 10028, 'insufficient memory resources available'),

  // ---- publish acks ---------------------------------------------------------------------
  expectedStreamMismatch: (): ApiError => e(400, 10060, 'expected stream does not match'),
  wrongLastSequence: (actual: number): ApiError => e(400, 10071, `wrong last sequence: ${actual}`),
  wrongLastMsgId: (actual: string): ApiError => e(400, 10070, `wrong last msg ID: ${actual}`),
  messageTooBig: (): ApiError => e(400, 10054, 'message size exceeds maximum allowed'),
  insufficientResources: (): ApiError => e(503, 10023, 'insufficient resources'),
  /** discard:new refusals carry the store's reason: `maximum messages exceeded` etc. */
  storeFailed: (reason: string): ApiError => e(503, 10077, reason),
  rollupNotPermitted: (): ApiError => e(500, 10111, 'rollup not permitted'),
  duplicateInProcess: (): ApiError => e(409, 10158, 'duplicate message id is in process'),

  // ---- consumers (shared with the consumer side) ----------------------------------------
  consumerNotFound: (): ApiError => e(404, 10014, 'consumer not found'),
  maxConsumers: (): ApiError => e(400, 10026, 'maximum consumers limit reached'),
  consumerCreate: (reason: string): ApiError => e(500, 10012, reason),
  consumerNameExists: (): ApiError => e(400, 10013, 'consumer name already in use'),
  consumerAlreadyExists: (): ApiError => e(400, 10148, 'consumer already exists'),
  consumerDoesNotExist: (): ApiError => e(400, 10149, 'consumer does not exist'),
  consumerExistingActive: (): ApiError => e(400, 10105, 'consumer already exists and is still active'),
  consumerFilterMismatch: (): ApiError =>
    e(400, 10131, 'Consumer create request did not match filtered subject from create subject'),
  consumerDurableNameMismatch: (): ApiError => e(400, 10132, 'Consumer Durable and Name have to be equal if both are provided'),
  consumerDurableNotInSubject: (): ApiError => e(400, 10016, 'consumer expected to be durable but no durable name set in subject'),
  consumerDurableNotSet: (): ApiError => e(400, 10018, 'consumer expected to be durable but a durable name was not set'),
  consumerDurableSubjectMismatch: (): ApiError => e(400, 10017, 'consumer name in subject does not match durable name in request'),
  consumerEphemeralWithDurable: (): ApiError =>
    e(400, 10020, 'consumer expected to be ephemeral but a durable name was set in request'),
  consumerBadDurableName: (): ApiError => e(400, 10103, "durable name can not contain '.', '*', '>'"),
  consumerFilterNotSubset: (): ApiError => e(400, 10093, 'consumer filter subject is not a valid subset of the interest subjects'),
  consumerWqNotUnique: (): ApiError => e(400, 10100, 'filtered consumer not unique on workqueue stream'),
  consumerWqMultipleUnfiltered: (): ApiError => e(400, 10099, 'multiple non-filtered consumers not allowed on workqueue stream'),
  consumerHeartbeatRequiresPush: (): ApiError => e(400, 10088, 'consumer idle heartbeat requires a push based consumer'),
  consumerFlowControlRequiresPush: (): ApiError => e(400, 10089, 'consumer flow control requires a push based consumer'),
  consumerDeliverSubjectWildcards: (): ApiError => e(400, 10079, 'consumer deliver subject has wildcards'),
  consumerMaxDeliverBackoff: (): ApiError => e(400, 10116, 'max deliver is required to be > length of backoff values'),
  consumerDeliverPolicy: (reason: string): ApiError => e(400, 10094, reason),
  // Consumer configuration refusals (nats-server 2.9.10 texts; 10136-10139 are 2.10's).
  consumerNameTooLong: (): ApiError => e(400, 10102, 'consumer name is too long, maximum allowed is 255'),
  consumerDescriptionTooLong: (): ApiError => e(400, 10107, 'consumer description is too long, maximum allowed is 4096'),
  consumerFilterBoth: (): ApiError => e(500, 10136, 'consumer cannot have both FilterSubject and FilterSubjects specified'),
  consumerFiltersOnSubjectApi: (): ApiError => e(500, 10137, 'consumer with multiple subject filters cannot use subject based API'),
  consumerFilterOverlap: (): ApiError => e(500, 10138, 'consumer subject filters cannot overlap'),
  consumerFilterEmpty: (): ApiError => e(500, 10139, 'consumer filter in FilterSubjects cannot be empty'),
  consumerWqPullNeedsAck: (): ApiError => e(400, 10084, 'consumer in pull mode requires ack policy'),
  consumerWqExplicitAck: (): ApiError => e(400, 10098, 'workqueue stream requires explicit ack'),
  consumerFcNeedsHeartbeat: (): ApiError => e(400, 10108, 'consumer with flow control also needs heartbeats'),
  consumerSmallHeartbeat: (): ApiError => e(400, 10083, 'consumer idle heartbeat needs to be >= 100ms'),
  consumerPushMaxWaiting: (): ApiError => e(400, 10080, 'consumer in push mode can not set max waiting'),
  consumerMaxWaitingNegative: (): ApiError => e(400, 10087, 'consumer max waiting needs to be positive'),
  consumerMaxBatchNegative: (): ApiError => e(400, 10114, 'consumer max request batch needs to be > 0'),
  consumerMaxExpiresTooSmall: (): ApiError => e(400, 10115, 'consumer max request expires needs to be >= 1ms'),
  consumerDeliverInvalid: (): ApiError => e(400, 10112, 'invalid push consumer deliver subject'),
  consumerPushMaxAckPendingNeedsAck: (): ApiError => e(400, 10082, 'consumer requires ack policy for max ack pending'),
  consumerDeliverCycle: (): ApiError => e(400, 10081, 'consumer deliver subject forms a cycle'),
} as const;

/** A thrown ApiError, so deep helpers (config parsing) can abort a handler with a precise answer. */
export class ApiErrorException extends Error {
  constructor(readonly apiError: ApiError) {
    super(apiError.description);
  }
}

export function isApiError(v: unknown): v is ApiError {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o['code'] === 'number' && typeof o['err_code'] === 'number' && typeof o['description'] === 'string';
}
