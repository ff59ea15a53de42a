/**
 * Who may connect: checks the credentials of a CONNECT (or of an MQTT CONNECT, or of a leaf's
 * CONNECT) against the authorization block, as nats-server 2.9 does, and hands back the user and
 * the permissions the connection runs with.
 *
 * Modes (exclusive, the config loader refuses mixes): a token; a single user/password; a list of
 * users, each with its own permissions (or the block's default permissions) and allowed
 * connection types; no_auth_user names the user a client becomes when it sends no credentials.
 *
 * Built once per configuration: a reload builds a new Authenticator (and so forgets its cache).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';
import type { AuthorizationOptions, Permissions } from '../config/options.js';
import { CompiledPermissions } from './permissions.js';
import type { PermissionLimits } from './permissions.js';

export type ConnectionType = 'STANDARD' | 'WEBSOCKET' | 'MQTT' | 'LEAFNODE';

/** What the client presented (CONNECT `user`, `pass`, `auth_token`). */
export interface Credentials {
  user?: string;
  pass?: string;
  authToken?: string;
}

export interface AuthResult {
  /** The user the connection runs as; undefined for token auth and when no auth is configured. */
  user?: string;
  /** undefined: no restrictions. A fresh instance per connection (it holds per-connection state). */
  permissions?: CompiledPermissions;
}

/** nats-server's test for a bcrypt hash in the config: `$2a$`, `$2b$`, `$2x$` or `$2y$` + 2-digit cost. */
const BCRYPT_PREFIX = /^\$2[abxy]\$\d{2}\$/;

export function isBcryptHash(secret: string): boolean {
  return BCRYPT_PREFIX.test(secret);
}

/** nats-server's default `authorization.timeout` (without TLS). */
const DEFAULT_AUTH_TIMEOUT_MS = 2000;

/**
 * Successful bcrypt checks remembered. A bcrypt compare at the usual cost 11 takes a few hundred
 * ms of CPU on a Raspberry Pi class board, and clients reconnect in bursts (Wi-Fi flap, broker
 * restart, a fleet of sensors waking together): without the cache every reconnect pays it again.
 * Only successes are cached, so guessing gets no faster.
 */
const VERIFIED_CACHE_MAX = 256;

/** A password or token from the config, ready to be compared. */
interface ConfiguredSecret {
  readonly bcryptHash: string | null;
  /** sha256 of the plain secret (unused for bcrypt). */
  readonly digest: Buffer;
}

interface CompiledUser {
  readonly name: string;
  readonly secret: ConfiguredSecret;
  readonly permissions: Permissions | undefined;
  /** null: every connection type. Upper case, as nats-server normalises them. */
  readonly connectionTypes: ReadonlySet<string> | null;
}

export class Authenticator {
  /**
   * Auth is configured: credentials are checked, the connection must authenticate (CONNECT, or
   * a first op that makes it the no_auth_user) within timeoutMs.
   */
  readonly configured: boolean;
  /**
   * INFO `auth_required`. nats-server 2.9.10 sends false when no_auth_user is set, although it
   * still checks any credentials sent and still runs the auth timer (checked live).
   */
  readonly required: boolean;
  readonly timeoutMs: number;

  private readonly token: ConfiguredSecret | null;
  private readonly single: { readonly user: string; readonly secret: ConfiguredSecret } | null;
  private readonly users: ReadonlyMap<string, CompiledUser> | null;
  private readonly noAuthUser: CompiledUser | null;
  private readonly limits: PermissionLimits;

  /** Keys of successful bcrypt checks, oldest first. */
  private readonly verified = new Set<string>();
  /** bcrypt checks under way, so a burst of identical reconnects runs the compare once. */
  private readonly inflight = new Map<string, Promise<boolean>>();
  /**
   * Keys the cache with an HMAC under a key that lives only in this process, so the cache never
   * holds a plain unsalted hash of a password.
   */
  private readonly cacheKey = randomBytes(32);

  constructor(opts: { authorization?: AuthorizationOptions; noAuthUser?: string; limits?: PermissionLimits }) {
    const a = opts.authorization;
    this.timeoutMs = a?.timeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS;
    this.limits = opts.limits ?? {};
    this.token = null;
    this.single = null;
    this.users = null;
    this.noAuthUser = null;

    if (a?.users !== undefined && a.users.length > 0) {
      const users = new Map<string, CompiledUser>();
      for (const u of a.users) {
        const types = u.allowedConnectionTypes ?? [];
        users.set(u.user, {
          name: u.user,
          secret: configureSecret(u.password),
          // nats-server gives the block's permissions only to users of the list that have none.
          permissions: u.permissions ?? a.defaultPermissions,
          connectionTypes: types.length > 0 ? new Set(types.map((t) => t.toUpperCase())) : null,
        });
      }
      this.users = users;
    } else if (a?.token !== undefined && a.token !== '') {
      this.token = configureSecret(a.token);
    } else if (a?.user !== undefined && a.user !== '') {
      this.single = { user: a.user, secret: configureSecret(a.password ?? '') };
    }
    this.configured = this.users !== null || this.token !== null || this.single !== null;

    const noAuth = opts.noAuthUser ?? '';
    if (noAuth !== '') {
      const u = this.users?.get(noAuth);
      if (u === undefined) {
        // The config loader refuses this too; a wrong Authenticator must not silently open up.
        throw new Error(`no_auth_user: "${noAuth}" not present as user in authorization block`);
      }
      this.noAuthUser = u;
    }
    this.required = this.configured && this.noAuthUser === null;
  }

  /**
   * Check CONNECT credentials. null = 'Authorization Violation'. Never blocks the event loop for
   * a bcrypt compare (bcryptjs works in slices between other callbacks).
   */
  async authenticate(creds: Credentials, connType: ConnectionType): Promise<AuthResult | null> {
    if (!this.configured) return {};
    const users = this.users;
    if (users !== null) {
      const name = creds.user ?? '';
      const sentNothing = name === '' && (creds.pass ?? '') === '' && (creds.authToken ?? '') === '';
      if (sentNothing && this.noAuthUser !== null) {
        // nats-server 2.9.10 re-checks the no_auth_user's own password here, which fails when it
        // is a bcrypt hash (checked live); the client sent nothing to check, so it is not done.
        return this.admit(this.noAuthUser, connType);
      }
      const user = users.get(name);
      if (user === undefined) return null;
      if (!allowsType(user, connType)) return null;
      if (!(await this.checkSecret(user.secret, name, creds.pass ?? ''))) return null;
      return this.result(user);
    }
    if (this.token !== null) {
      return (await this.checkSecret(this.token, '', creds.authToken ?? '')) ? {} : null;
    }
    const single = this.single!;
    if ((creds.user ?? '') !== single.user) return null;
    return (await this.checkSecret(single.secret, single.user, creds.pass ?? '')) ? { user: single.user } : null;
  }

  /**
   * A client that sends another op before CONNECT (a telnet session) while auth is configured:
   * nats-server makes it the no_auth_user on the spot; without one it is an Authorization
   * Violation (null). Synchronous: no secret is checked.
   */
  authenticateWithoutConnect(connType: ConnectionType): AuthResult | null {
    if (!this.configured) return {};
    if (this.noAuthUser === null) return null;
    return this.admit(this.noAuthUser, connType);
  }

  /**
   * For a config reload: the permissions a connection authenticated as `user` now gets.
   * null: the user no longer exists in this configuration (close the connection);
   * undefined: no restrictions.
   */
  permissionsFor(user: string): CompiledPermissions | undefined | null {
    if (this.users !== null) {
      const u = this.users.get(user);
      if (u === undefined) return null;
      return u.permissions === undefined ? undefined : new CompiledPermissions(u.permissions, this.limits);
    }
    if (this.single !== null) return this.single.user === user ? undefined : null;
    return this.configured ? null : undefined;
  }

  private admit(user: CompiledUser, connType: ConnectionType): AuthResult | null {
    return allowsType(user, connType) ? this.result(user) : null;
  }

  private result(user: CompiledUser): AuthResult {
    if (user.permissions === undefined) return { user: user.name };
    return { user: user.name, permissions: new CompiledPermissions(user.permissions, this.limits) };
  }

  private async checkSecret(configured: ConfiguredSecret, user: string, supplied: string): Promise<boolean> {
    const hash = configured.bcryptHash;
    if (hash === null) return timingSafeEqual(sha256(supplied), configured.digest);
    const key = createHmac('sha256', this.cacheKey).update(`${user.length}:${user}`).update(supplied).digest('base64');
    if (this.verified.has(key)) return true;
    let pending = this.inflight.get(key);
    if (pending === undefined) {
      pending = bcryptCompare(supplied, hash);
      this.inflight.set(key, pending);
    }
    let ok: boolean;
    try {
      ok = await pending;
    } finally {
      this.inflight.delete(key);
    }
    if (ok) {
      if (this.verified.size >= VERIFIED_CACHE_MAX) {
        const oldest = this.verified.values().next();
        if (oldest.done !== true) this.verified.delete(oldest.value);
      }
      this.verified.add(key);
    }
    return ok;
  }
}

function allowsType(user: CompiledUser, connType: ConnectionType): boolean {
  return user.connectionTypes === null || user.connectionTypes.has(connType);
}

function configureSecret(secret: string): ConfiguredSecret {
  return isBcryptHash(secret)
    ? { bcryptHash: secret, digest: Buffer.alloc(0) }
    : { bcryptHash: null, digest: sha256(secret) };
}

/** Comparing digests keeps timingSafeEqual's equal lengths without revealing the secret's length. */
function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** bcrypt compare that yields to the event loop; any malformed hash is a mismatch, as in Go. */
async function bcryptCompare(supplied: string, hash: string): Promise<boolean> {
  // Go's bcrypt computes the same hash for every minor version; bcryptjs refuses `$2x$`.
  const normalized = hash.charCodeAt(2) === 0x78 /* x */ ? `$2a${hash.slice(3)}` : hash;
  try {
    return await bcrypt.compare(supplied, normalized);
  } catch {
    return false;
  }
}
