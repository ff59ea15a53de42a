/**
 * Leafnode credentials (leafnode.md §4): reading a `.creds` file (user JWT + nkey seed) and
 * signing the hub's INFO nonce with an nkey seed. The seed travels as bytes so a caller can
 * zero it; nkeys' KeyPair.clear() zeroes the array it was built from, so each signature is made
 * from a copy that is cleared straight after (a real copy: Buffer#slice would share the bytes).
 */
import { readFileSync } from 'node:fs';
import { fromSeed } from '@nats-io/nkeys';

/**
 * One armored block: a dashed banner line, a single token line, a dashed closing line. Banners,
 * comments and blank lines around the blocks are ignored; the first block is the user JWT and
 * the second the seed.
 */
const ARMORED = /\s*-{3,}[^\n]*-{3,}\r?\n([A-Za-z0-9_\-.=]+)\r?\n-{3,}[^\n]*-{3,}(?:\r?\n|$)/g;

const MALFORMED = 'Credentials file malformed';

/** Reads a `.creds` file; throws Error('Credentials file malformed') when it lacks the two blocks. */
export function readCredentials(path: string): { jwt: string; seed: Uint8Array } {
  const raw = readFileSync(path);
  try {
    const text = raw.toString('latin1');
    ARMORED.lastIndex = 0;
    const first = ARMORED.exec(text);
    const second = first === null ? null : ARMORED.exec(text);
    ARMORED.lastIndex = 0;
    if (first === null || second === null) throw new Error(MALFORMED);
    const seed = Buffer.from(second[1]!, 'latin1');
    if (!isUserSeed(seed)) {
      seed.fill(0);
      throw new Error(`${MALFORMED}: the second block is not a user nkey seed`);
    }
    return { jwt: first[1]!, seed };
  } finally {
    raw.fill(0);
  }
}

/** True when `seed` decodes as an nkey seed of a user (SU...). */
export function isUserSeed(seed: Uint8Array): boolean {
  if (seed.length < 2 || seed[0] !== 0x53 /* S */ || seed[1] !== 0x55 /* U */) return false;
  try {
    const kp = fromSeed(Uint8Array.from(seed));
    const ok = kp.getPublicKey().startsWith('U');
    kp.clear();
    return ok;
  } catch {
    return false;
  }
}

/** base64url (no padding) of the ed25519 signature over the nonce's bytes as received. */
export function signNonce(seed: Uint8Array, nonce: string): string {
  const kp = fromSeed(Uint8Array.from(seed));
  try {
    return Buffer.from(kp.sign(Buffer.from(nonce, 'utf8'))).toString('base64url');
  } finally {
    kp.clear();
  }
}

/** The CONNECT fields of nkey auth: the public user key and the nonce signature. */
export function nkeyAuth(seed: Uint8Array, nonce: string): { nkey: string; sig: string } {
  const kp = fromSeed(Uint8Array.from(seed));
  try {
    const sig = Buffer.from(kp.sign(Buffer.from(nonce, 'utf8'))).toString('base64url');
    return { nkey: kp.getPublicKey(), sig };
  } finally {
    kp.clear();
  }
}
