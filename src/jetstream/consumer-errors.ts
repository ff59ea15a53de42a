/**
 * The API errors the consumer side answers, with nats-server's err_code, HTTP-like code and
 * text (checked against nats-server 2.9.10; codes it does not have are 2.10's). To be merged
 * into the shared catalogue in errors.ts once that exists; until then they live here.
 */
import type { ApiError } from './types.js';

function e(code: number, err_code: number, description: string): ApiError {
  return { code, err_code, description };
}

export const consumerErrors = {
  invalidJson: (): ApiError => e(400, 10025, 'invalid JSON'),
  notEmptyRequest: (): ApiError => e(400, 10038, 'expected an empty request payload'),
  streamNotFound: (): ApiError => e(404, 10059, 'stream not found'),
  streamMismatch: (): ApiError => e(400, 10056, 'stream name in subject does not match request'),
  consumerNotFound: (): ApiError => e(404, 10014, 'consumer not found'),
  maxConsumers: (): ApiError => e(400, 10026, 'maximum consumers limit reached'),
  replicas: (): ApiError => e(500, 10074, 'replicas > 1 not supported in non-clustered mode'),
  /** Config update refusals and other create failures: the reason is the whole text. */
  create: (reason: string): ApiError => e(500, 10012, reason),
  nameExists: (): ApiError => e(400, 10013, 'consumer name already in use'),
  existingActive: (): ApiError => e(400, 10105, 'consumer already exists and is still active'),
  alreadyExists: (): ApiError => e(400, 10148, 'consumer already exists'),
  doesNotExist: (): ApiError => e(400, 10149, 'consumer does not exist'),
  filterMismatch: (): ApiError => e(400, 10131, 'Consumer create request did not match filtered subject from create subject'),
  durableNameMismatch: (): ApiError => e(400, 10132, 'Consumer Durable and Name have to be equal if both are provided'),
  durableNotInSubject: (): ApiError => e(400, 10016, 'consumer expected to be durable but no durable name set in subject'),
  durableSubjectMismatch: (): ApiError => e(400, 10017, 'consumer name in subject does not match durable name in request'),
  durableNotSet: (): ApiError => e(400, 10018, 'consumer expected to be durable but a durable name was not set'),
  ephemeralWithDurable: (): ApiError => e(400, 10020, 'consumer expected to be ephemeral but a durable name was set in request'),
  badDurableName: (): ApiError => e(400, 10103, "durable name can not contain '.', '*', '>'"),
  nameTooLong: (): ApiError => e(400, 10102, 'consumer name is too long, maximum allowed is 255'),
  descriptionTooLong: (): ApiError => e(400, 10107, 'consumer description is too long, maximum allowed is 4096'),
  filterNotSubset: (): ApiError => e(400, 10093, 'consumer filter subject is not a valid subset of the interest subjects'),
  // 2.10 multi-filter errors: codes and texts as the Go client's catalogue lists them (not in 2.9.10).
  filterBoth: (): ApiError => e(500, 10136, 'consumer cannot have both FilterSubject and FilterSubjects specified'),
  filtersOnSubjectApi: (): ApiError => e(500, 10137, 'consumer with multiple subject filters cannot use subject based API'),
  filterOverlap: (): ApiError => e(500, 10138, 'consumer subject filters cannot overlap'),
  filterEmpty: (): ApiError => e(500, 10139, 'consumer filter in FilterSubjects cannot be empty'),
  wqNotUnique: (): ApiError => e(400, 10100, 'filtered consumer not unique on workqueue stream'),
  wqMultipleUnfiltered: (): ApiError => e(400, 10099, 'multiple non-filtered consumers not allowed on workqueue stream'),
  wqPullNeedsAck: (): ApiError => e(400, 10084, 'consumer in pull mode requires ack policy'),
  wqExplicitAck: (): ApiError => e(400, 10098, 'workqueue stream requires explicit ack'),
  hbRequiresPush: (): ApiError => e(400, 10088, 'consumer idle heartbeat requires a push based consumer'),
  fcRequiresPush: (): ApiError => e(400, 10089, 'consumer flow control requires a push based consumer'),
  fcNeedsHeartbeat: (): ApiError => e(400, 10108, 'consumer with flow control also needs heartbeats'),
  smallHeartbeat: (): ApiError => e(400, 10083, 'consumer idle heartbeat needs to be >= 100ms'),
  pushMaxWaiting: (): ApiError => e(400, 10080, 'consumer in push mode can not set max waiting'),
  maxWaitingNegative: (): ApiError => e(400, 10087, 'consumer max waiting needs to be positive'),
  maxBatchNegative: (): ApiError => e(400, 10114, 'consumer max request batch needs to be > 0'),
  maxExpiresTooSmall: (): ApiError => e(400, 10115, 'consumer max request expires needs to be >= 1ms'),
  maxDeliverBackoff: (): ApiError => e(400, 10116, 'max deliver is required to be > length of backoff values'),
  deliverWildcards: (): ApiError => e(400, 10079, 'consumer deliver subject has wildcards'),
  deliverInvalid: (): ApiError => e(400, 10112, 'invalid push consumer deliver subject'),
  pushMaxAckPendingNeedsAck: (): ApiError => e(400, 10082, 'consumer requires ack policy for max ack pending'),
  deliverCycle: (): ApiError => e(400, 10081, 'consumer deliver subject forms a cycle'),
  /** Deliver policy and its options disagree; the text says how. */
  invalidPolicy: (reason: string): ApiError => e(400, 10094, reason),
} as const;
