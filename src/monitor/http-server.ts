/**
 * The monitoring HTTP server: nats-server's endpoints (/varz, /connz, /subsz, /healthz, ...)
 * under the configured base path, answered for any method, pretty-printed JSON or JSONP,
 * 400 with nats-server's plain-text reasons, 404 as Go's `404 page not found`.
 */
import http from 'node:http';
import { posix } from 'node:path';
import { connz } from './connz.js';
import { goJson } from './format.js';
import { healthz } from './healthz.js';
import { QueryError } from './query.js';
import type { MonitorSource } from './source.js';
import { subsz } from './subsz.js';
import { VarzBuilder, type VarzExtension } from './varz.js';

export interface EndpointResult {
  status: number;
  /**
   * A string is sent as it is (Content-Type `contentType`, default text/plain); anything else
   * as JSON, pretty-printed unless `compact`, wrapped as JSONP when the query has `callback`.
   */
  body: unknown | string;
  contentType?: string;
  /** Single-line JSON, as nats-server writes /healthz. */
  compact?: boolean;
}

/**
 * One endpoint. Throw a QueryError (see query.ts) for a bad query value: the client gets 400
 * with its message as plain text.
 */
export type EndpointHandler = (query: URLSearchParams) => EndpointResult | Promise<EndpointResult>;

/**
 * A response that stays open (Server-Sent Events): the headers go out at once, then `open`
 * writes to the sink until the client goes away or the monitor closes.
 */
export interface StreamingResult {
  readonly contentType: string;
  open(sink: ResponseSink): void;
}

/** The open end of a streaming response. */
export interface ResponseSink {
  /** Queues a chunk; false when the client is not keeping up (the chunk is still queued). */
  write(chunk: string): boolean;
  /** Bytes queued for the client and not yet written. */
  readonly queued: number;
  /** Called once, when the client is gone or the monitor closes. */
  onClose(fn: () => void): void;
}

/** An endpoint that may answer with a whole body or with a stream. */
export type StreamingHandler = (query: URLSearchParams) => EndpointResult | StreamingResult;

/** One link of the index page: an endpoint path (without the base path) and its label. */
export interface IndexLink {
  readonly path: string;
  readonly label: string;
}

/**
 * Renders the page at the base path. `links` are relative to the page's directory (which
 * `baseHref` names, relative to the request: '' at `/` or `/mon/`, 'mon/' at `/mon`), so
 * the page works behind a proxy that adds its own prefix.
 */
export type IndexRenderer = (links: readonly IndexLink[], baseHref: string) => string;

export type MonitorLog = (level: 'INF' | 'WRN' | 'ERR', msg: string) => void;

export interface MonitorServerOptions {
  host: string;
  /** 0 or -1: any free port. */
  port: number;
  /** http_base_path; '' or '/' for none. */
  basePath: string;
  log?: MonitorLog;
  /** Contributions of other components to /varz (see VarzExtension). */
  varzExtensions?: VarzExtension[];
}

interface Route {
  /** The name requests are counted under in /varz http_req_stats. */
  readonly statsKey: string;
  readonly handler: EndpointHandler | StreamingHandler;
}

function isStreaming(r: EndpointResult | StreamingResult): r is StreamingResult {
  return 'open' in r;
}

const NOT_FOUND = '404 page not found\n';
const TEXT = 'text/plain; charset=utf-8';
/** JSONP callbacks are echoed into JavaScript: only names and member paths are taken. */
const CALLBACK_NAME = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;

/** Link labels on the index page for the endpoints we know. */
const LABELS: Record<string, string> = {
  '/varz': 'General',
  '/connz': 'Connections',
  '/subsz': 'Subscriptions',
  '/jsz': 'JetStream',
  '/leafz': 'LeafNodes',
  '/mqttz': 'MQTT',
  '/metrics': 'Metrics (Prometheus)',
  '/healthz': 'Health Probe',
};

/** nats-server's normalisation of http_base_path: leading '/', cleaned, '' -> '/'. */
export function normalizeBasePath(p: string): string {
  if (p === '') return '/';
  return posix.normalize(p.startsWith('/') ? p : '/' + p).replace(/(.)\/+$/, '$1');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export class MonitorServer {
  /** /varz builder; other components may also push to `varz.extensions`. */
  readonly varz: VarzBuilder;
  private readonly routes = new Map<string, Route>();
  /** Endpoints in registration order, for the index page (aliases left out). */
  private readonly listed: string[] = [];
  private readonly requestStats = new Map<string, number>();
  private readonly base: string;
  private readonly log: MonitorLog;
  private server: http.Server | undefined;
  private renderIndex: IndexRenderer | null = null;
  private readonly closeHooks: (() => void)[] = [];

  constructor(
    private readonly source: MonitorSource,
    private readonly opts: MonitorServerOptions,
  ) {
    this.base = normalizeBasePath(opts.basePath);
    this.log = opts.log ?? (() => {});
    this.varz = new VarzBuilder(source, () => this.requestStats, opts.varzExtensions);
    this.route('/varz', () => ({ status: 200, body: this.varz.build() }));
    this.route('/connz', (q) => connz(source, q));
    this.route('/subsz', (q) => subsz(source, q));
    this.addRoute('/subscriptionsz', '/subsz', (q) => subsz(source, q));
    this.route('/healthz', (q) => healthz(source, q, this.log));
  }

  /** Later components add their endpoints (/jsz, /leafz, /mqttz, /metrics) here. */
  route(path: string, handler: EndpointHandler): void {
    this.addRoute(path, path, handler);
    if (!this.listed.includes(path)) this.listed.push(path);
  }

  /** An endpoint that may stream (e.g. `/events`); not listed on the index page. */
  streamRoute(path: string, handler: StreamingHandler): void {
    this.addRoute(path, path, handler);
  }

  /** The page at the base path (the default is a list of the endpoints). */
  setIndexPage(render: IndexRenderer): void {
    this.renderIndex = render;
  }

  /** Work to stop when the monitor closes (timers of what feeds its endpoints). */
  onClose(fn: () => void): void {
    this.closeHooks.push(fn);
  }

  /** Add a contribution to /varz. */
  addVarzExtension(extension: VarzExtension): void {
    this.varz.extensions.push(extension);
  }

  /** Requests served per endpoint so far (as /varz http_req_stats shows them). */
  requestCounts(): ReadonlyMap<string, number> {
    return this.requestStats;
  }

  /** Resolves with the bound port. */
  listen(): Promise<number> {
    if (this.server !== undefined) return Promise.reject(new Error('monitor already listening'));
    const server = http.createServer((req, res) => this.serve(req, res));
    this.server = server;
    const host = this.opts.host || '0.0.0.0';
    const port = this.opts.port > 0 ? this.opts.port : 0;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.server = undefined;
        reject(err);
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        server.on('error', (err) => this.log('ERR', `Monitoring server error: ${err.message}`));
        const addr = server.address();
        const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
        this.log('INF', `Starting http monitor on ${host}:${bound}`);
        resolve(bound);
      });
    });
  }

  close(): Promise<void> {
    for (const fn of this.closeHooks.splice(0)) fn();
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private addRoute(path: string, statsKey: string, handler: EndpointHandler | StreamingHandler): void {
    this.routes.set(posix.join(this.base, path), { statsKey, handler });
  }

  private count(statsKey: string): void {
    this.requestStats.set(statsKey, (this.requestStats.get(statsKey) ?? 0) + 1);
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.resume(); // request bodies are never used; let them drain
    const target = req.url ?? '/';
    let path: string;
    let search: string;
    if (target.startsWith('/')) {
      const q = target.indexOf('?');
      path = q < 0 ? target : target.slice(0, q);
      search = q < 0 ? '' : target.slice(q + 1);
    } else {
      try {
        const u = new URL(target);
        path = u.pathname;
        search = u.search.slice(1);
      } catch {
        this.send(res, 404, TEXT, NOT_FOUND, true);
        return;
      }
    }
    try {
      path = decodeURIComponent(path);
    } catch {
      this.send(res, 404, TEXT, NOT_FOUND, true);
      return;
    }
    const query = new URLSearchParams(search);

    if (path === this.base || (this.base !== '/' && path === this.base + '/')) {
      this.count('/');
      this.send(res, 200, 'text/html; charset=utf-8', this.indexPage(path));
      return;
    }
    const route = this.routes.get(path);
    if (route === undefined) {
      this.send(res, 404, TEXT, NOT_FOUND, true);
      return;
    }
    this.count(route.statsKey);
    let result: EndpointResult | StreamingResult | Promise<EndpointResult>;
    try {
      result = route.handler(query);
    } catch (err) {
      this.fail(res, path, err);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (r) => this.respond(res, query, r),
        (err: unknown) => this.fail(res, path, err),
      );
    } else if (isStreaming(result)) {
      this.openStream(res, result);
    } else {
      this.respond(res, query, result);
    }
  }

  private openStream(res: http.ServerResponse, r: StreamingResult): void {
    res.writeHead(200, {
      'Content-Type': r.contentType,
      'Cache-Control': 'no-cache',
      // A reverse proxy must pass events on as they come, not buffer them.
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    r.open({
      write: (chunk) => res.write(chunk),
      get queued() {
        return res.writableLength;
      },
      onClose: (fn) => {
        if (res.destroyed) queueMicrotask(fn);
        else res.once('close', fn);
      },
    });
  }

  private respond(res: http.ServerResponse, query: URLSearchParams, r: EndpointResult): void {
    if (typeof r.body === 'string') {
      this.send(res, r.status, r.contentType ?? TEXT, r.body);
      return;
    }
    const json = goJson(r.body, r.compact !== true);
    const callback = query.get('callback') ?? '';
    if (callback === '') {
      this.send(res, r.status, r.contentType ?? 'application/json', json);
    } else if (CALLBACK_NAME.test(callback)) {
      this.send(res, r.status, 'application/javascript', `${callback}(${json})`);
    } else {
      this.send(res, 400, TEXT, `invalid callback: ${callback}`);
    }
  }

  private fail(res: http.ServerResponse, path: string, err: unknown): void {
    if (err instanceof QueryError) {
      this.send(res, err.status, TEXT, err.message);
      return;
    }
    const msg = err instanceof Error ? err.message : String(err);
    this.log('ERR', `Error answering ${path}: ${msg}`);
    this.send(res, 500, TEXT, msg);
  }

  private send(res: http.ServerResponse, status: number, type: string, body: string, nosniff = false): void {
    if (res.headersSent || res.destroyed) return;
    const headers: http.OutgoingHttpHeaders = {
      'Content-Type': type,
      'Content-Length': Buffer.byteLength(body),
    };
    if (nosniff) headers['X-Content-Type-Options'] = 'nosniff';
    res.writeHead(status, headers);
    res.end(body);
  }

  private indexPage(path: string): string {
    if (this.renderIndex !== null) {
      // Relative to the request: at `/mon` the page's directory is `mon/`, at `/` or `/mon/` it is ''.
      const baseHref = path.endsWith('/') ? '' : `${encodeURIComponent(posix.basename(path))}/`;
      return this.renderIndex(
        this.listed.map((p) => ({ path: p.slice(1), label: LABELS[p] ?? p })),
        baseHref,
      );
    }
    const prefix = this.base === '/' ? '' : this.base;
    const links = this.listed
      .map((p) => `<li><a href="${escapeHtml(prefix + p)}">${escapeHtml(LABELS[p] ?? p)}</a> <code>${escapeHtml(p)}</code></li>`)
      .join('\n');
    const name = escapeHtml(this.source.serverName);
    return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>nats-edge ${name}</title></head>
<body>
<h1>nats-edge</h1>
<p>Server ${name}, version ${escapeHtml(this.source.version)}</p>
<ul>
${links}
</ul>
</body>
</html>
`;
  }
}
