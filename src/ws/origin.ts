/**
 * The Origin check of the websocket upgrade, with nats-server's rules: without `same_origin`
 * and `allowed_origins` every origin passes; a request without an Origin header passes (it is
 * not a browser, and any other client could claim any origin); otherwise scheme, host and port
 * must match, a missing port meaning the scheme's default.
 */

interface HostPort {
  host: string;
  port: string;
}

function hostPort(hostAndPort: string, tls: boolean): HostPort | null {
  let host = hostAndPort;
  let port = '';
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0) return null;
    const rest = host.slice(end + 1);
    host = host.slice(1, end);
    if (rest.startsWith(':')) port = rest.slice(1);
    else if (rest !== '') return null;
  } else {
    const i = host.lastIndexOf(':');
    if (i >= 0) {
      if (host.indexOf(':') !== i) return null;
      port = host.slice(i + 1);
      host = host.slice(0, i);
    }
  }
  if (port === '') port = tls ? '443' : '80';
  return { host: host.toLowerCase(), port };
}

interface Allowed {
  scheme: string;
  port: string;
}

export class OriginPolicy {
  private readonly allowed = new Map<string, Allowed>();

  /** `origins` were validated by the config reader (scheme and host present). */
  constructor(
    private readonly sameOrigin: boolean,
    origins: readonly string[],
  ) {
    for (const text of origins) {
      const u = new URL(text);
      const scheme = u.protocol.slice(0, -1);
      const hp = hostPort(u.host, scheme === 'https');
      if (hp !== null) this.allowed.set(hp.host, { scheme, port: hp.port });
    }
  }

  get active(): boolean {
    return this.sameOrigin || this.allowed.size > 0;
  }

  /**
   * null when the request may upgrade, else why not. `host` is the request's Host header,
   * `tls` whether the request came over TLS (for the same-origin default port).
   */
  check(origin: string | undefined, host: string | undefined, tls: boolean): string | null {
    if (!this.active || origin === undefined || origin === '') return null;
    let u: URL;
    try {
      u = new URL(origin);
    } catch {
      return 'invalid origin';
    }
    const scheme = u.protocol.slice(0, -1);
    const o = hostPort(u.host, scheme === 'https');
    if (o === null) return 'invalid origin';
    if (this.sameOrigin) {
      const r = hostPort(host ?? '', tls);
      if (r === null || r.host !== o.host || r.port !== o.port) return 'not same origin';
    }
    if (this.allowed.size > 0) {
      const a = this.allowed.get(o.host);
      if (a === undefined || a.scheme !== scheme || a.port !== o.port) return 'not in the allowed list';
    }
    return null;
  }
}
