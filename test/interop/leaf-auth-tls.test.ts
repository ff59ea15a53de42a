/**
 * Leafnode remotes that authenticate and encrypt against a real nats-server 2.9 hub: TLS (by a
 * `tls://` URL, or a `nats-leaf://` URL toward a hub whose INFO says tls_required), user/password
 * and token in the URL, a bare nkey seed, and a `.creds` file against a hub in operator mode
 * whose JWTs this file writes itself. Every case that nats-server 2.9 can be configured for runs
 * with nats-server as the leaf too, so the assertions are proven on the real thing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, credsAuthenticator, type ConnectionOptions, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { createAccount, createOperator, createUser, type KeyPair } from '@nats-io/nkeys';
import { makeTestCerts, type TestCerts } from '../fixtures/certs.js';
import { serverKinds, startServer, within, type RunningServer, type ServerKind } from '../helpers/servers.js';
import {
  hubLeafz,
  logTimes,
  startHub,
  startLeaf,
  stopLeafTestServers,
  waitForHubInterest,
  waitForLeafLink,
  waitForLeafSawHubInterest,
  type Hub,
  type LeafStartOptions,
} from '../helpers/leaf.js';
import { credsText } from '../helpers/creds.js';

const HOST = '127.0.0.1';
const TOKEN = 's3cret-token';

// ---- JWTs for a hub in operator mode ---------------------------------------------------------

/** No limit, as the JWT library writes it (-1); a missing limit would decode as 0 = nothing allowed. */
const NO_LIMIT = -1;

interface Claims {
  jti: string;
  iat: number;
  iss: string;
  sub: string;
  name: string;
  nats: Record<string, unknown>;
}

function encodeJwt(issuer: KeyPair, claims: Claims): string {
  const head = Buffer.from(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' })).toString('base64url');
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const sig = Buffer.from(issuer.sign(Buffer.from(`${head}.${body}`, 'ascii'))).toString('base64url');
  return `${head}.${body}.${sig}`;
}

function claims(issuer: KeyPair, subject: KeyPair, name: string, nats: Record<string, unknown>): Claims {
  return {
    // The server does not check the jti's form; a random id keeps every JWT distinct.
    jti: randomBytes(26).toString('hex').toUpperCase(),
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    sub: subject.getPublicKey(),
    name,
    nats,
  };
}

function operatorJwt(op: KeyPair, systemAccount: KeyPair): string {
  return encodeJwt(op, claims(op, op, 'test-operator', { system_account: systemAccount.getPublicKey(), type: 'operator', version: 2 }));
}

function accountJwt(op: KeyPair, acc: KeyPair, name: string): string {
  const limits = { subs: NO_LIMIT, data: NO_LIMIT, payload: NO_LIMIT, imports: NO_LIMIT, exports: NO_LIMIT, wildcards: true, conn: NO_LIMIT, leaf: NO_LIMIT };
  return encodeJwt(op, claims(op, acc, name, { limits, default_permissions: { pub: {}, sub: {} }, type: 'account', version: 2 }));
}

/** A user JWT whose `iss` is `claimedIssuer` (normally the signer itself). */
function userJwt(signer: KeyPair, user: KeyPair, name: string, claimedIssuer: KeyPair = signer): string {
  const c = claims(claimedIssuer, user, name, { pub: {}, sub: {}, subs: NO_LIMIT, data: NO_LIMIT, payload: NO_LIMIT, type: 'user', version: 2 });
  return encodeJwt(signer, c);
}

/** The .creds text of `user`, with its user JWT. */
function userCreds(jwt: string, user: KeyPair): string {
  return credsText(jwt, new TextDecoder().decode(user.getSeed()));
}

interface OperatorSetup {
  /** Top-level hub config: operator, system account, MEMORY resolver with both accounts preloaded. */
  hubConfig: string;
  accountKey: string;
  leafCreds: string;
  hubClientCreds: Uint8Array;
  /** Issued by an account the hub does not know. */
  strangerCreds: string;
  /** Claims the hub's account as issuer but is signed by another account's key. */
  forgedCreds: string;
}

function makeOperatorSetup(dir: string): OperatorSetup {
  const op = createOperator();
  const sys = createAccount();
  const app = createAccount();
  const stranger = createAccount();
  const leafUser = createUser();
  const hubUser = createUser();
  const strangerUser = createUser();
  const forgedUser = createUser();
  const opFile = join(dir, 'operator.jwt');
  writeFileSync(opFile, operatorJwt(op, sys));
  const hubConfig = [
    `operator: ${JSON.stringify(opFile)}`,
    `system_account: ${sys.getPublicKey()}`,
    'resolver: MEMORY',
    'resolver_preload: {',
    `  ${sys.getPublicKey()}: ${JSON.stringify(accountJwt(op, sys, 'SYS'))}`,
    `  ${app.getPublicKey()}: ${JSON.stringify(accountJwt(op, app, 'APP'))}`,
    '}',
  ].join('\n');
  const write = (name: string, text: string): string => {
    const file = join(dir, name);
    writeFileSync(file, text, { mode: 0o600 });
    return file;
  };
  return {
    hubConfig,
    accountKey: app.getPublicKey(),
    leafCreds: write('leaf.creds', userCreds(userJwt(app, leafUser, 'leaf'), leafUser)),
    hubClientCreds: new TextEncoder().encode(userCreds(userJwt(app, hubUser, 'hub-client'), hubUser)),
    strangerCreds: write('stranger.creds', userCreds(userJwt(stranger, strangerUser, 'stranger'), strangerUser)),
    forgedCreds: write('forged.creds', userCreds(userJwt(stranger, forgedUser, 'forged', app), forgedUser)),
  };
}

// ---- helpers -----------------------------------------------------------------------------------

/** Reads the first INFO line of `port` (the hub's leaf port) and closes. */
function readInfo(port: number): Promise<Record<string, unknown>> {
  return new Promise((resolveInfo, reject) => {
    const sock = tcpConnect({ host: HOST, port });
    let buf = '';
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      const end = buf.indexOf('\r\n');
      if (end < 0) return;
      sock.destroy();
      if (!buf.startsWith('INFO ')) reject(new Error(`not an INFO: ${buf.slice(0, 80)}`));
      else resolveInfo(JSON.parse(buf.slice(5, end)) as Record<string, unknown>);
    });
    sock.on('error', reject);
  });
}

/** Polls the process log until `re` matches (a log has no event to await); throws with the log tail. */
async function waitForLog(srv: RunningServer, re: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = re.exec(srv.logs());
    if (m !== null) return m[0];
    if (Date.now() >= deadline) throw new Error(`${srv.kind} log never matched ${String(re)} within ${timeoutMs} ms; tail:\n${srv.logs().split('\n').slice(-15).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A leaf whose remote dials exactly `url` (startLeaf always writes a nats-leaf:// URL). */
function startLeafAt(kind: ServerKind, url: string, remoteExtra = ''): Promise<RunningServer> {
  const config = ['server_name: leaf', 'leafnodes {', '  remotes: [', `    { url: ${JSON.stringify(url)}${remoteExtra !== '' ? `, ${remoteExtra}` : ''} }`, '  ]', '}'].join('\n');
  return startServer(kind, { config });
}

function firstMessage(nc: NatsConnection, subject: string): Promise<Msg> {
  return new Promise((resolveMsg) => {
    nc.subscribe(subject, {
      max: 1,
      callback: (err, m) => {
        if (err === null) resolveMsg(m);
      },
    });
  });
}

describe.each(serverKinds())('leafnode auth and TLS: leaf is %s, hub is nats-server 2.9', (kind: ServerKind) => {
  let work = '';
  let certs: TestCerts;
  let jwt: OperatorSetup;
  const open: NatsConnection[] = [];

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'nats-edge-leafauth-'));
    certs = makeTestCerts(work);
    jwt = makeOperatorSetup(work);
  });

  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close().catch(() => undefined))));
    await stopLeafTestServers();
  });

  async function client(srv: RunningServer, opts: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
    const nc = await connect({ servers: srv.url, reconnect: false, ...opts });
    open.push(nc);
    return nc;
  }

  /** Pub/sub crosses the link both ways, payloads intact. */
  async function assertCrosses(hub: Hub, hubNc: NatsConnection, leafNc: NatsConnection): Promise<void> {
    const down = firstMessage(leafNc, 'auth.down');
    await leafNc.flush();
    await waitForHubInterest(hub, 'auth.down');
    hubNc.publish('auth.down', 'from hub');
    expect((await within(down, 5000, 'hub → leaf message')).string()).toBe('from hub');

    const up = firstMessage(hubNc, 'auth.up');
    await waitForLeafSawHubInterest(hubNc, leafNc);
    leafNc.publish('auth.up', 'from leaf');
    expect((await within(up, 5000, 'leaf → hub message')).string()).toBe('from leaf');
  }

  /** The leaf keeps serving its own clients while its uplink is refused. */
  async function assertServesLocally(leaf: RunningServer): Promise<void> {
    const a = await client(leaf);
    const b = await client(leaf);
    const got = firstMessage(a, 'local.x');
    a.subscribe('local.svc', {
      callback: (_e, m) => {
        m.respond(`ok:${m.string()}`);
      },
    });
    await a.flush();
    b.publish('local.x', 'here');
    expect((await within(got, 3000, 'local delivery')).string()).toBe('here');
    expect((await b.request('local.svc', 'ping', { timeout: 3000 })).string()).toBe('ok:ping');
  }

  function hubTls(): string {
    return `  tls { cert_file: ${JSON.stringify(certs.serverCert)}, key_file: ${JSON.stringify(certs.serverKey)} }`;
  }

  it('TLS: a tls:// remote with the hub CA links and pub/sub crosses', { timeout: 30000 }, async () => {
    const hub = await startHub({ leafnodes: hubTls() });
    const leaf = await startLeafAt(kind, `tls://${HOST}:${hub.leafPort}`, `tls { ca_file: ${JSON.stringify(certs.caFile)} }`);
    await waitForLeafLink(hub, 10000);
    const [hubNc, leafNc] = await Promise.all([client(hub), client(leaf)]);
    await assertCrosses(hub, hubNc, leafNc);
  });

  it('TLS: with a CA that did not sign the hub certificate the link never comes up, the leaf logs a certificate error and serves locally', { timeout: 30000 }, async () => {
    const hub = await startHub({ leafnodes: hubTls() });
    // makeTestCerts also writes a second, unrelated CA: it signed nothing the hub presents.
    const wrongCa = join(work, 'other-ca.pem');
    const leaf = await startLeafAt(kind, `tls://${HOST}:${hub.leafPort}`, `tls { ca_file: ${JSON.stringify(wrongCa)} }`);
    // nats-server: "x509: certificate signed by unknown authority"; Node: "unable to verify the first certificate".
    const line = await waitForLog(leaf, /^.*certificate.*$/im, 10000);
    expect(line).toMatch(/certificate/i);
    // The hub saw handshakes fail at least twice: the leaf keeps retrying and never links.
    const hubTlsErrors = /TLS (leafnode )?handshake error/i;
    const deadline = Date.now() + 10000;
    while (logTimes(hub.logs(), hubTlsErrors).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(logTimes(hub.logs(), hubTlsErrors).length).toBeGreaterThanOrEqual(2);
    expect((await hubLeafz(hub)).leafnodes).toBe(0);
    await assertServesLocally(leaf);
  });

  it('TLS: a nats-leaf:// remote with tls { ca_file } links to a hub whose INFO says tls_required', { timeout: 30000 }, async () => {
    const hub = await startHub({ leafnodes: hubTls() });
    const info = await readInfo(hub.leafPort);
    expect(info['tls_required']).toBe(true);
    const leaf = await startLeaf(kind, hub.leafPort, { remote: `tls { ca_file: ${JSON.stringify(certs.caFile)} }` });
    await waitForLeafLink(hub, 10000);
    const [hubNc, leafNc] = await Promise.all([client(hub), client(leaf)]);
    await assertCrosses(hub, hubNc, leafNc);
  });

  it('user and password in the URL link', { timeout: 30000 }, async () => {
    const hub = await startHub({ leafnodes: '  authorization { users: [ { user: leafu, password: "p@ss w0rd" } ] }' });
    const leaf = await startLeaf(kind, hub.leafPort, { userinfo: `leafu:${encodeURIComponent('p@ss w0rd')}` });
    await waitForLeafLink(hub, 10000);
    const [hubNc, leafNc] = await Promise.all([client(hub), client(leaf)]);
    await assertCrosses(hub, hubNc, leafNc);
  });

  it('token: a password-less URL user matches a password-less leafnode user; a wrong token is refused', { timeout: 30000 }, async () => {
    // 2.9 has no leafnode token setting; a user without password is how a token is configured.
    const hub = await startHub({ leafnodes: `  authorization { users: [ { user: ${JSON.stringify(TOKEN)} } ] }` });
    const bad = await startLeaf(kind, hub.leafPort, { userinfo: 'not-the-token', name: 'bad' });
    await waitForLog(bad, /authorization violation/i, 10000);
    await waitForLog(hub, /authentication error/i, 1000);
    expect((await hubLeafz(hub)).leafnodes).toBe(0);
    await bad.stop();

    const leaf = await startLeaf(kind, hub.leafPort, { userinfo: TOKEN });
    await waitForLeafLink(hub, 10000);
    const [hubNc, leafNc] = await Promise.all([client(hub), client(leaf)]);
    await assertCrosses(hub, hubNc, leafNc);
  });

  // nats-server 2.9's remote block has no `nkey`/`seed` (its config parser stops with
  // `unknown field "nkey"`), so this case is nats-edge's alone.
  it.runIf(kind === 'nats-edge')('nkey: a remote with a user seed links to a 2.9 hub that lists the nkey user at top level; a different seed is refused', { timeout: 30000 }, async () => {
    const good = createUser();
    const other = createUser();
    const seedOf = (kp: KeyPair): string => new TextDecoder().decode(kp.getSeed());
    // A 2.9 hub only takes nkey users for leafs from the top-level authorization (its leafnodes
    // authorization has no nkey); top-level users then also guard the client port.
    const hub = await startHub({
      config: `authorization { users: [ { nkey: ${good.getPublicKey()} }, { user: hubc, password: hubp } ] }`,
    });
    const bad = await startLeaf(kind, hub.leafPort, { remote: `nkey: ${JSON.stringify(seedOf(other))}`, name: 'bad' });
    await waitForLog(bad, /authorization violation/i, 10000);
    expect((await hubLeafz(hub)).leafnodes).toBe(0);
    await bad.stop();

    const leaf = await startLeaf(kind, hub.leafPort, { remote: `nkey: ${JSON.stringify(seedOf(good))}` });
    await waitForLeafLink(hub, 10000);
    const [hubNc, leafNc] = await Promise.all([client(hub, { user: 'hubc', pass: 'hubp' }), client(leaf)]);
    await assertCrosses(hub, hubNc, leafNc);
  });

  it('.creds: links to an operator-mode hub (MEMORY resolver) bound to the issuing account; foreign creds are refused', { timeout: 40000 }, async () => {
    const hub = await startHub({ config: jwt.hubConfig });
    const refused: LeafStartOptions[] = [
      { remote: `credentials: ${JSON.stringify(jwt.strangerCreds)}`, name: 'stranger' },
      { remote: `credentials: ${JSON.stringify(jwt.forgedCreds)}`, name: 'forged' },
    ];
    const bad = await Promise.all(refused.map((o) => startLeaf(kind, hub.leafPort, o)));
    await Promise.all(bad.map((b) => waitForLog(b, /authorization violation/i, 10000)));
    expect((await hubLeafz(hub)).leafnodes).toBe(0);
    await Promise.all(bad.map((b) => b.stop()));

    const leaf = await startLeaf(kind, hub.leafPort, { remote: `credentials: ${JSON.stringify(jwt.leafCreds)}` });
    const link = await waitForLeafLink(hub, 10000);
    expect(link.account).toBe(jwt.accountKey);
    const [hubNc, leafNc] = await Promise.all([client(hub, { authenticator: credsAuthenticator(jwt.hubClientCreds) }), client(leaf)]);
    await assertCrosses(hub, hubNc, leafNc);
  });
});
