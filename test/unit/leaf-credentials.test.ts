import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAccount, createUser, fromPublic } from '@nats-io/nkeys';
import { afterAll, describe, expect, it } from 'vitest';
import { isUserSeed, nkeyAuth, readCredentials, signNonce } from '../../src/leaf/credentials.js';
import { RawClient } from '../helpers/raw-client.js';
import { freePort, startServer, stopAllServers } from '../helpers/servers.js';
import { credsText } from '../helpers/creds.js';

const dir = mkdtempSync(join(tmpdir(), 'nats-edge-creds-'));
afterAll(async () => {
  await stopAllServers();
  rmSync(dir, { recursive: true, force: true });
});

const b64u = (s: string): string => Buffer.from(s).toString('base64url');
/** Shaped like an nsc user JWT (header.claims.signature); nothing here checks its claims. */
const FAKE_JWT = `${b64u('{"typ":"JWT","alg":"ed25519-nkey"}')}.${b64u('{"sub":"UFAKE","nats":{"type":"user"}}')}.${b64u('x'.repeat(64))}`;


let n = 0;
function file(text: string): string {
  const f = join(dir, `u${n++}.creds`);
  writeFileSync(f, text);
  return f;
}

const seedText = (kp: { getSeed(): Uint8Array }): string => Buffer.from(kp.getSeed()).toString('latin1');

describe('readCredentials', () => {
  it('takes the first armored block as the JWT and the second as the seed', () => {
    const user = createUser();
    for (const eol of ['\n', '\r\n']) {
      const c = readCredentials(file(credsText(FAKE_JWT, seedText(user), eol)));
      expect(c.jwt).toBe(FAKE_JWT);
      expect(Buffer.from(c.seed).toString('latin1')).toBe(seedText(user));
    }
  });

  it('refuses files without two blocks', () => {
    const seed = seedText(createUser());
    expect(() => readCredentials(file(''))).toThrow('Credentials file malformed');
    expect(() => readCredentials(file(`-----BEGIN NATS USER JWT-----\n${FAKE_JWT}\n------END NATS USER JWT------\n`))).toThrow(
      'Credentials file malformed',
    );
    // A token with a space is not a block.
    expect(() => readCredentials(file(credsText('not a jwt', seed)))).toThrow('Credentials file malformed');
    expect(() => readCredentials(file(`${FAKE_JWT}\n${seed}\n`))).toThrow('Credentials file malformed');
  });

  it('refuses a second block that is not a user seed', () => {
    expect(() => readCredentials(file(credsText(FAKE_JWT, seedText(createAccount()))))).toThrow(/not a user nkey seed/);
    expect(() => readCredentials(file(credsText(FAKE_JWT, 'SUAAAAAAAA')))).toThrow(/not a user nkey seed/);
    expect(() => readCredentials(join(dir, 'missing.creds'))).toThrow(/ENOENT/);
  });
});

describe('signing the nonce', () => {
  const user = createUser();
  const seed = Buffer.from(seedText(user), 'latin1');

  it('signNonce is an ed25519 signature over the nonce bytes, base64url without padding', () => {
    const nonce = 'LUVmPMwuGeTTV-M';
    const sig = signNonce(seed, nonce);
    expect(sig).toMatch(/^[A-Za-z0-9_-]{86}$/);
    const raw = Buffer.from(sig, 'base64url');
    expect(raw.length).toBe(64);
    const pub = fromPublic(user.getPublicKey());
    expect(pub.verify(Buffer.from(nonce), raw)).toBe(true);
    expect(pub.verify(Buffer.from('other-nonce'), raw)).toBe(false);
    expect(fromPublic(createUser().getPublicKey()).verify(Buffer.from(nonce), raw)).toBe(false);
  });

  it('leaves the caller seed intact (nkeys clears the array it signs with)', () => {
    const before = Buffer.from(seed);
    signNonce(seed, 'a');
    nkeyAuth(seed, 'b');
    expect(Buffer.compare(Buffer.from(seed), before)).toBe(0);
  });

  it('nkeyAuth gives the public key and the signature', () => {
    const a = nkeyAuth(seed, 'nonce-1');
    expect(a.nkey).toBe(user.getPublicKey());
    expect(a.sig).toBe(signNonce(seed, 'nonce-1'));
    expect(fromPublic(a.nkey).verify(Buffer.from('nonce-1'), Buffer.from(a.sig, 'base64url'))).toBe(true);
  });

  it('a creds file round-trips into a verifiable signature', () => {
    const c = readCredentials(file(credsText(FAKE_JWT, seedText(user))));
    expect(fromPublic(user.getPublicKey()).verify(Buffer.from('xyz'), Buffer.from(signNonce(c.seed, 'xyz'), 'base64url'))).toBe(true);
  });

  it('isUserSeed', () => {
    expect(isUserSeed(seed)).toBe(true);
    expect(isUserSeed(Buffer.from(seedText(createAccount())))).toBe(false);
    expect(isUserSeed(Buffer.from(user.getPublicKey()))).toBe(false);
  });
});

/**
 * A 2.9.10 hub has no nkey users in leafnodes.authorization ("unknown field nkey"), but with no
 * leafnode authorization of its own it checks leaf CONNECTs against the top-level users, nkeys
 * included: the same nonce signature a 2.10+ leafnode nkey user needs.
 */
describe('against a real nats-server 2.9 hub', () => {
  async function hubWith(userPublicKey: string): Promise<number> {
    const leafPort = await freePort();
    await startServer('nats-server', {
      config: `authorization { users: [ { nkey: "${userPublicKey}" } ] }\nleafnodes { listen: "127.0.0.1:${leafPort}" }\n`,
    });
    return leafPort;
  }

  function leafConnect(auth: { nkey: string; sig: string }, name: string): string {
    const body = { version: '2.11.0', server_id: `N${name.toUpperCase()}`, name, headers: true, remote_account: '$G', protocol: 1, ...auth };
    return `CONNECT ${JSON.stringify(body)}\r\nPING\r\n`;
  }

  it('accepts a leaf CONNECT signed by nkeyAuth and refuses a wrong signature', async () => {
    const user = createUser();
    const seed = Buffer.from(seedText(user), 'latin1');
    const leafPort = await hubWith(user.getPublicKey());

    const good = await RawClient.connect(leafPort);
    const nonce = good.info?.['nonce'];
    expect(typeof nonce).toBe('string');
    good.send(leafConnect(nkeyAuth(seed, nonce as string), 'good'));
    const text = await good.waitFor(/\r\nPONG\r\n|-ERR/, 5000);
    expect(text).not.toContain('-ERR');
    expect(text).toMatch(/^INFO \{.*"connect_info":true/);
    good.close();

    // Signed by another key but claiming this user's nkey: the hub must refuse it.
    const bad = await RawClient.connect(leafPort);
    const impostor = Buffer.from(seedText(createUser()), 'latin1');
    const badAuth = { nkey: user.getPublicKey(), sig: signNonce(impostor, bad.info?.['nonce'] as string) };
    bad.send(leafConnect(badAuth, 'bad'));
    expect(await bad.waitFor('-ERR', 5000)).toContain("-ERR 'Authorization Violation'");
    bad.close();
  });
});
