/**
 * The account and stream endpoints of `$JS.API` (jetstream-api.md §2-§6): INFO, STREAM.*,
 * STREAM.MSG.*, DIRECT.GET, with nats-server 2.9.10's answers, error codes, texts and order of
 * checks. A request whose subject has the wrong number of tokens matches no endpoint and gets
 * no answer, as in nats-server.
 */
import { subjectsOverlap } from '../core/subject.js';
import { ApiErrorException, JsErrors } from './errors.js';
import { buildHeaderBlock, withAddedHeaders } from './headers.js';
import { formatTimeUs } from './consumer-time.js';
import type { JetStream } from './jetstream.js';
import type { Stream } from './stream.js';
import { checkStreamUpdate, decodeStreamConfig, hasPathSeparator, normalizeStreamConfig, sameStreamConfig, type RawStreamConfig } from './stream-config.js';
import { checkOriginsAgainst } from './stream-origin.js';
import type { ApiError, ApiRequest, StoredMsg, StreamConfig } from './types.js';

const NAMES_LIMIT = 1024;
const LIST_LIMIT = 256;
const SUBJECTS_LIMIT = 100_000;

type Json = Record<string, unknown>;

/** Go's isEmptyRequest: no bytes, or a JSON object without fields. */
function isEmptyRequest(data: Buffer): boolean {
  if (data.length === 0) return true;
  try {
    const v: unknown = JSON.parse(data.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
  } catch {
    return false;
  }
}

/** A request body as a JSON object; {} when empty; null when it does not decode as one. */
function jsonObject(data: Buffer): Json | null {
  if (data.length === 0) return {};
  try {
    const v: unknown = JSON.parse(data.toString('utf8'));
    if (v === null) return {};
    return typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null;
  } catch {
    return null;
  }
}

/** Field readers with Go's decoding rules: null/absent = zero value, wrong type = invalid JSON. */
class Fields {
  bad = false;
  constructor(private readonly o: Json) {}
  str(k: string): string {
    const v = this.o[k];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') this.bad = true;
    return typeof v === 'string' ? v : '';
  }
  uint(k: string): number {
    const v = this.o[k];
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      this.bad = true;
      return 0;
    }
    return v;
  }
  int(k: string): number {
    const v = this.o[k];
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      this.bad = true;
      return 0;
    }
    return v;
  }
  bool(k: string): boolean {
    const v = this.o[k];
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') this.bad = true;
    return v === true;
  }
}

export function registerStreamApi(js: JetStream): void {
  const api = js.api;
  const reg = (prefix: string, handler: (req: ApiRequest) => void): void => api.register(prefix.split('.'), handler);

  /** The stream named by the token at `i`, or null after answering 10059. */
  const lookup = (req: ApiRequest, i: number, type: string, extra?: Json): Stream | null => {
    const s = js.streams.get(req.tokens[i]!);
    if (s === undefined) {
      api.respondError(req.reply, type, JsErrors.streamNotFound(), extra);
      return null;
    }
    return s;
  };

  const infoBody = (s: Stream, opts?: { subjectsFilter?: string; deletedDetails?: boolean }): Json => {
    const info = s.info(opts);
    return js.domain !== undefined ? { ...info, domain: js.domain } : info;
  };

  // ---- account --------------------------------------------------------------------------

  reg('INFO', (req) => {
    if (req.tokens.length !== 1) return;
    const st = js.stats();
    const body: Json = {
      memory: st.memory,
      storage: st.storage,
      streams: st.streams,
      consumers: st.consumers,
      // As nats-server without account limits: the server's limits are not the account's.
      limits: {
        max_memory: -1,
        max_storage: -1,
        max_streams: -1,
        max_consumers: -1,
        max_ack_pending: -1,
        memory_max_stream_bytes: -1,
        storage_max_stream_bytes: -1,
        max_bytes_required: false,
      },
    };
    if (js.domain !== undefined) body['domain'] = js.domain;
    // The answer counts itself.
    body['api'] = { total: st.api.total + 1, errors: st.api.errors };
    api.respond(req.reply, 'account_info_response', body);
  });

  // ---- create / update -----------------------------------------------------------------

  /** Reservation check of max_bytes against the store limits (10047 / 10028). */
  const limitsError = (cfg: StreamConfig, except?: Stream): ApiError | null => {
    const add = cfg.max_bytes > 0 ? cfg.max_bytes : 1;
    if (cfg.storage === 'memory') {
      const max = js.options.maxMemoryStore;
      if (max >= 0 && js.reserved('memory', except) + add > max) return JsErrors.memoryResourcesExceeded();
    } else {
      const max = js.options.maxFileStore;
      if (max >= 0 && js.reserved('file', except) + add > max) return JsErrors.storageResourcesExceeded();
    }
    return null;
  };

  const overlapsOthers = (cfg: StreamConfig, self?: Stream): boolean => {
    for (const other of js.streams.values()) {
      if (other === self) continue;
      for (const a of cfg.subjects ?? []) for (const b of other.config().subjects ?? []) if (subjectsOverlap(a, b)) return true;
    }
    return false;
  };

  reg('STREAM.CREATE', (req) => {
    if (req.tokens.length !== 3) return;
    const type = 'stream_create_response';
    const name = req.tokens[2]!;
    let cfg: StreamConfig;
    try {
      const raw: RawStreamConfig = decodeStreamConfig(req.data);
      if ((raw.name ?? '') !== name) return api.respondError(req.reply, type, JsErrors.streamMismatch());
      if (hasPathSeparator(name)) return api.respondError(req.reply, type, JsErrors.streamNamePathSeparators());
      if (raw.sealed === true) return api.respondError(req.reply, type, JsErrors.streamInvalidConfig('stream configuration for create can not be sealed'));
      cfg = normalizeStreamConfig(raw);
    } catch (err) {
      return api.respondError(req.reply, type, errorOf(err));
    }
    if (cfg.num_replicas > 1) return api.respondError(req.reply, type, JsErrors.replicasNotSupported());
    const originError = checkOriginsAgainst(cfg, js.streams);
    if (originError !== null) return api.respondError(req.reply, type, originError);
    const existing = js.streams.get(name);
    if (existing !== undefined) {
      // Same config: the existing stream, untouched (2.9.10 still says did_create).
      if (sameStreamConfig(existing.config(), cfg)) return api.respond(req.reply, type, { ...existing.info(), did_create: true });
      return api.respondError(req.reply, type, JsErrors.streamNameExists());
    }
    const limits = limitsError(cfg);
    if (limits !== null) return api.respondError(req.reply, type, limits);
    if (overlapsOthers(cfg)) return api.respondError(req.reply, type, JsErrors.streamSubjectOverlap());
    let stream: Stream;
    try {
      stream = js.createStream(cfg);
    } catch (err) {
      js.log.error(`JetStream: creating stream '${name}': ${(err as Error).message}`);
      return api.respondError(req.reply, type, storeError(err));
    }
    api.respond(req.reply, type, { ...stream.info(), did_create: true });
  });

  reg('STREAM.UPDATE', (req) => {
    if (req.tokens.length !== 3) return;
    const type = 'stream_update_response';
    const name = req.tokens[2]!;
    let next: StreamConfig;
    try {
      next = normalizeStreamConfig(decodeStreamConfig(req.data));
    } catch (err) {
      return api.respondError(req.reply, type, errorOf(err));
    }
    if (next.name !== name) return api.respondError(req.reply, type, JsErrors.streamMismatch());
    const stream = lookup(req, 2, type);
    if (stream === null) return;
    let cfg: StreamConfig;
    try {
      cfg = checkStreamUpdate(stream.config(), next);
    } catch (err) {
      return api.respondError(req.reply, type, errorOf(err));
    }
    if (cfg.num_replicas > 1) return api.respondError(req.reply, type, JsErrors.replicasNotSupported());
    const originError = checkOriginsAgainst(cfg, js.streams);
    if (originError !== null) return api.respondError(req.reply, type, originError);
    const limits = limitsError(cfg, stream);
    if (limits !== null) return api.respondError(req.reply, type, limits);
    if (overlapsOthers(cfg, stream)) return api.respondError(req.reply, type, JsErrors.streamSubjectOverlap());
    try {
      js.updateStream(stream, cfg);
    } catch (err) {
      js.log.error(`JetStream: updating stream '${name}': ${(err as Error).message}`);
      return api.respondError(req.reply, type, storeError(err));
    }
    // Unlike create, nats-server's update answer carries the domain.
    api.respond(req.reply, type, infoBody(stream));
  });

  // ---- info / names / list ---------------------------------------------------------------

  reg('STREAM.INFO', (req) => {
    if (req.tokens.length !== 3) return;
    const type = 'stream_info_response';
    const paging = { total: 0, offset: 0, limit: 0 };
    const body = jsonObject(req.data);
    const f = new Fields(body ?? {});
    const deletedDetails = f.bool('deleted_details');
    const subjectsFilter = f.str('subjects_filter');
    let offset = f.int('offset');
    if (body === null || f.bad) return api.respondError(req.reply, type, JsErrors.invalidJson(), paging);
    const stream = lookup(req, 2, type, paging);
    if (stream === null) return;
    const info = infoBody(stream, subjectsFilter !== '' ? { subjectsFilter, deletedDetails } : { deletedDetails });
    const out: Json = { total: 0, offset: 0, limit: 0 };
    if (subjectsFilter !== '') {
      const state = info['state'] as Json;
      const subjects = state['subjects'] as Record<string, number> | undefined;
      const keys = subjects === undefined ? [] : Object.keys(subjects).sort();
      if (offset < 0) offset = 0;
      if (offset > keys.length) offset = keys.length;
      const page = keys.slice(offset, offset + SUBJECTS_LIMIT);
      if (subjects !== undefined) {
        if (page.length > 0) state['subjects'] = Object.fromEntries(page.map((k) => [k, subjects[k]!]));
        else delete state['subjects'];
      }
      out['total'] = keys.length;
      out['offset'] = offset;
      out['limit'] = SUBJECTS_LIMIT;
    }
    api.respond(req.reply, type, { ...out, ...info });
  });

  /** Names (or infos) of the streams that have a subject overlapping `subject` ('' = all), sorted. */
  const selectStreams = (subject: string): Stream[] => {
    const out: Stream[] = [];
    for (const s of js.streams.values()) {
      if (subject === '' || (s.config().subjects ?? []).some((x) => subjectsOverlap(subject, x))) out.push(s);
    }
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return out;
  };

  const pagedRequest = (req: ApiRequest): { offset: number; subject: string } | null => {
    const body = jsonObject(req.data);
    if (body === null) return null;
    const f = new Fields(body);
    const offset = f.int('offset');
    const subject = f.str('subject');
    return f.bad ? null : { offset: offset < 0 ? 0 : offset, subject };
  };

  reg('STREAM.NAMES', (req) => {
    if (req.tokens.length !== 2) return;
    const type = 'stream_names_response';
    const q = pagedRequest(req);
    if (q === null) return api.respondError(req.reply, type, JsErrors.invalidJson(), { total: 0, offset: 0, limit: 0, streams: null });
    const all = selectStreams(q.subject);
    const offset = Math.min(q.offset, all.length);
    const page = all.slice(offset, offset + NAMES_LIMIT).map((s) => s.name);
    api.respond(req.reply, type, { total: all.length, offset, limit: NAMES_LIMIT, streams: page.length > 0 ? page : null });
  });

  reg('STREAM.LIST', (req) => {
    if (req.tokens.length !== 2) return;
    const type = 'stream_list_response';
    const q = pagedRequest(req);
    if (q === null) return api.respondError(req.reply, type, JsErrors.invalidJson(), { total: 0, offset: 0, limit: 0, streams: [] });
    const all = selectStreams(q.subject);
    const offset = Math.min(q.offset, all.length);
    const page = all.slice(offset, offset + LIST_LIMIT).map((s) => infoBody(s));
    api.respond(req.reply, type, { total: all.length, offset, limit: LIST_LIMIT, streams: page });
  });

  // ---- delete / purge -----------------------------------------------------------------

  reg('STREAM.DELETE', (req) => {
    if (req.tokens.length !== 3) return;
    const type = 'stream_delete_response';
    if (!isEmptyRequest(req.data)) return api.respondError(req.reply, type, JsErrors.notEmptyRequest());
    const stream = lookup(req, 2, type);
    if (stream === null) return;
    try {
      js.deleteStream(stream);
    } catch (err) {
      js.log.error(`JetStream: deleting stream '${stream.name}': ${(err as Error).message}`);
      return api.respondError(req.reply, type, storeError(err));
    }
    api.respond(req.reply, type, { success: true });
  });

  reg('STREAM.PURGE', (req) => {
    if (req.tokens.length !== 3) return;
    const type = 'stream_purge_response';
    const failed = { purged: 0 };
    let purge: { filter?: string; seq?: number; keep?: number } = {};
    if (!isEmptyRequest(req.data)) {
      const body = jsonObject(req.data);
      const f = new Fields(body ?? {});
      const filter = f.str('filter');
      const seq = f.uint('seq');
      const keep = f.uint('keep');
      if (body === null || f.bad) return api.respondError(req.reply, type, JsErrors.invalidJson(), failed);
      if (seq > 0 && keep > 0) return api.respondError(req.reply, type, JsErrors.badRequest(), failed);
      purge = { filter, seq, keep };
    }
    const stream = lookup(req, 2, type, failed);
    if (stream === null) return;
    const cfg = stream.config();
    if (cfg.sealed) return api.respondError(req.reply, type, JsErrors.streamSealed(), failed);
    if (cfg.deny_purge) return api.respondError(req.reply, type, JsErrors.purgeNotPermitted(), failed);
    let purged: number;
    try {
      purged = stream.purge(purge);
    } catch (err) {
      js.log.error(`JetStream: purging stream '${stream.name}': ${(err as Error).message}`);
      return api.respondError(req.reply, type, storeError(err), failed);
    }
    api.respond(req.reply, type, { success: true, purged });
  });

  // ---- single messages ------------------------------------------------------------------

  reg('STREAM.MSG.DELETE', (req) => {
    if (req.tokens.length !== 4) return;
    const type = 'stream_msg_delete_response';
    if (isEmptyRequest(req.data)) return api.respondError(req.reply, type, JsErrors.badRequest());
    const body = jsonObject(req.data);
    const f = new Fields(body ?? {});
    const seq = f.uint('seq');
    f.bool('no_erase');
    if (body === null || f.bad) return api.respondError(req.reply, type, JsErrors.invalidJson());
    const stream = lookup(req, 3, type);
    if (stream === null) return;
    const cfg = stream.config();
    if (cfg.sealed) return api.respondError(req.reply, type, JsErrors.streamSealed());
    if (cfg.deny_delete) return api.respondError(req.reply, type, JsErrors.msgDeleteFailed('message delete not permitted'));
    let reason: string | null;
    try {
      reason = stream.deleteMsg(seq);
    } catch (err) {
      js.log.error(`JetStream: deleting message ${seq} of '${stream.name}': ${(err as Error).message}`);
      return api.respondError(req.reply, type, storeError(err));
    }
    // nats-server answers what the store refused as a plain response: api.errors does not count it.
    if (reason !== null) return api.respond(req.reply, type, { error: JsErrors.msgDeleteFailed(reason) });
    api.respond(req.reply, type, { success: true });
  });

  interface MsgQuery {
    seq: number;
    last: string;
    next: string;
  }

  /** The MSG.GET / DIRECT.GET query: 'empty', 'bad', 'json' (unparsable) or the query. */
  const msgQuery = (data: Buffer): MsgQuery | 'empty' | 'bad' | 'json' => {
    if (data.length === 0) return 'empty';
    const body = jsonObject(data);
    if (body === null) return 'json';
    const f = new Fields(body);
    const q = { seq: f.uint('seq'), last: f.str('last_by_subj'), next: f.str('next_by_subj') };
    if (f.bad) return 'json';
    if (q.seq === 0 && q.last === '' && q.next === '') return 'empty';
    if ((q.seq > 0 && q.last !== '') || (q.last !== '' && q.next !== '')) return 'bad';
    return q;
  };

  const findMsg = (s: Stream, q: MsgQuery): StoredMsg | null => {
    if (q.last !== '') return s.lastBySubject(q.last);
    if (q.next !== '') return s.nextBySubject(q.next, q.seq);
    return s.getMsg(q.seq);
  };

  reg('STREAM.MSG.GET', (req) => {
    if (req.tokens.length !== 4) return;
    const type = 'stream_msg_get_response';
    const stream = lookup(req, 3, type);
    if (stream === null) return;
    const q = msgQuery(req.data);
    if (q === 'json') return api.respondError(req.reply, type, JsErrors.invalidJson());
    if (q === 'empty' || q === 'bad') return api.respondError(req.reply, type, JsErrors.badRequest());
    const m = findMsg(stream, q);
    if (m === null) return api.respondError(req.reply, type, JsErrors.noMessageFound());
    const message: Json = { subject: m.subject, seq: m.seq };
    if (m.hdrLen > 0) message['hdrs'] = m.raw.toString('base64', 0, m.hdrLen);
    if (m.raw.length > m.hdrLen) message['data'] = m.raw.toString('base64', m.hdrLen);
    message['time'] = formatTimeUs(m.tsUs);
    api.respondUncounted(req.reply, type, { message });
  });

  // ---- DIRECT.GET: the stored message itself, with headers; only where allow_direct ------

  const directStatus = (reply: string, code: number, description: string): void => {
    const block = buildHeaderBlock({ code, description });
    api.reply(reply, block.length, block);
  };

  reg('DIRECT.GET', (req) => {
    if (req.tokens.length < 3 || req.reply === '') return;
    const stream = js.streams.get(req.tokens[2]!);
    // Without allow_direct nobody answers (no responders would be a 503; nats-server stays silent).
    if (stream === undefined || !stream.config().allow_direct) return;
    let m: StoredMsg | null;
    if (req.tokens.length > 3) {
      m = stream.lastBySubject(req.tokens.slice(3).join('.'));
    } else {
      const q = msgQuery(req.data);
      if (q === 'empty') return directStatus(req.reply, 408, 'Empty Request');
      if (q === 'json') return directStatus(req.reply, 408, 'Malformed Request');
      if (q === 'bad') return directStatus(req.reply, 408, 'Bad Request');
      m = findMsg(stream, q);
    }
    if (m === null) return directStatus(req.reply, 404, 'Message Not Found');
    const out = withAddedHeaders(m.raw, m.hdrLen, [
      ['Nats-Stream', stream.name],
      ['Nats-Subject', m.subject],
      ['Nats-Sequence', String(m.seq)],
      ['Nats-Time-Stamp', formatTimeUs(m.tsUs)],
    ]);
    api.reply(req.reply, out.hdrLen, out.raw);
  });

  // ---- what a single edge server does not do -------------------------------------------

  const clusterOnly = (type: string) => (req: ApiRequest) => {
    if (req.tokens.length !== 4) return;
    api.respondError(req.reply, type, JsErrors.clusterRequired());
  };
  reg('STREAM.LEADER.STEPDOWN', clusterOnly('stream_leader_stepdown_response'));
  reg('STREAM.PEER.REMOVE', clusterOnly('stream_remove_peer_response'));
  const unsupported = (type: string, n: number) => (req: ApiRequest) => {
    if (req.tokens.length !== n) return;
    api.respondError(req.reply, type, JsErrors.badRequest());
  };
  reg('STREAM.SNAPSHOT', unsupported('stream_snapshot_response', 3));
  reg('STREAM.RESTORE', unsupported('stream_restore_response', 3));
  reg('ACCOUNT.PURGE', unsupported('account_purge_response', 3));
}

function errorOf(err: unknown): ApiError {
  if (err instanceof ApiErrorException) return err.apiError;
  throw err;
}

/** A store failure as nats-server would word it: a full store is a resources error. */
function storeError(err: unknown): ApiError {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_FULL') return JsErrors.storageResourcesExceeded();
  return JsErrors.streamCreate((err as Error).message ?? String(err));
}
