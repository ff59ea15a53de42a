/**
 * Subject rules: validation, wildcard tests and matching between subjects.
 *
 * Subjects are tokens separated by '.'. A token equal to '*' matches exactly one token, a
 * token equal to '>' matches one or more tokens and may only be last. Anywhere else '*' and
 * '>' are ordinary bytes (`foo*`, `fo>o` are literal tokens).
 *
 * These functions run on every SUB and (matching) on permission checks, so they walk char
 * codes instead of splitting or using regular expressions.
 */

const DOT = 46; // '.'
const STAR = 42; // '*'
const GT = 62; // '>'

/** Whitespace that can never appear in a subject: it would split protocol arguments. */
function isSubjectSpace(c: number): boolean {
  // space, tab, LF, FF, CR
  return c === 32 || c === 9 || c === 10 || c === 12 || c === 13;
}

/**
 * Shared walk for both validity checks. `literal`: additionally refuse wildcard tokens.
 */
function checkSubject(s: string, literal: boolean): boolean {
  const len = s.length;
  if (len === 0) return false;
  let start = 0;
  for (let i = 0; i <= len; i++) {
    const c = i < len ? s.charCodeAt(i) : DOT;
    if (c === DOT) {
      const tlen = i - start;
      if (tlen === 0) return false; // leading, trailing or double '.'
      if (tlen === 1) {
        const t = s.charCodeAt(start);
        if (t === GT) {
          if (literal || i < len) return false; // '>' must be the last token
        } else if (t === STAR && literal) {
          return false;
        }
      }
      start = i + 1;
    } else if (isSubjectSpace(c)) {
      return false;
    }
  }
  return true;
}

/** A valid subscription subject (may contain wildcards). */
export function isValidSubject(s: string): boolean {
  return checkSubject(s, false);
}

/** A valid publish subject, as pedantic connections require: no wildcard tokens. */
export function isValidLiteralSubject(s: string): boolean {
  return checkSubject(s, true);
}

/** True when some token of `s` is exactly '*' or '>'. */
export function subjectHasWildcard(s: string): boolean {
  const len = s.length;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c !== STAR && c !== GT) continue;
    if ((i === 0 || s.charCodeAt(i - 1) === DOT) && (i + 1 === len || s.charCodeAt(i + 1) === DOT)) {
      return true;
    }
  }
  return false;
}

/** Number of tokens; 0 for the empty string. */
export function countTokens(s: string): number {
  const len = s.length;
  if (len === 0) return 0;
  let n = 1;
  for (let i = 0; i < len; i++) if (s.charCodeAt(i) === DOT) n++;
  return n;
}

/** End (exclusive) of the token starting at `start`. */
function tokenEnd(s: string, start: number): number {
  const e = s.indexOf('.', start);
  return e < 0 ? s.length : e;
}

/** Is s[start, end) a single-character wildcard token `w`? */
function isWild(s: string, start: number, end: number, w: number): boolean {
  return end - start === 1 && s.charCodeAt(start) === w;
}

/** Do the tokens a[as, ae) and b[bs, be) hold the same bytes? */
function sameToken(a: string, as: number, ae: number, b: string, bs: number, be: number): boolean {
  const n = ae - as;
  if (n !== be - bs) return false;
  for (let k = 0; k < n; k++) if (a.charCodeAt(as + k) !== b.charCodeAt(bs + k)) return false;
  return true;
}

/**
 * Does the publish subject `subject` match the subscription subject `filter`?
 *
 * Follows the subject index exactly (and so nats-server): wildcards in `filter` match any token,
 * including a '*' or '>' token published literally, while a literal filter token matches only
 * the same bytes. A subject with an empty token (`foo..bar`) matches nothing.
 */
export function subjectMatches(filter: string, subject: string): boolean {
  const fl = filter.length;
  const sl = subject.length;
  if (fl === 0 || sl === 0) return false;
  let fs = 0;
  let ss = 0;
  for (;;) {
    const fe = tokenEnd(filter, fs);
    const se = tokenEnd(subject, ss);
    if (fe === fs) return false;
    if (se === ss) return false;
    if (isWild(filter, fs, fe, GT)) {
      // Rest of the subject must still be made of non-empty tokens.
      return hasNoEmptyToken(subject, se);
    }
    if (!isWild(filter, fs, fe, STAR) && !sameToken(filter, fs, fe, subject, ss, se)) return false;
    const fDone = fe === fl;
    const sDone = se === sl;
    if (fDone || sDone) return fDone && sDone;
    fs = fe + 1;
    ss = se + 1;
  }
}

/** From `from` (at a '.' or the end) on, is there no empty token? */
function hasNoEmptyToken(s: string, from: number): boolean {
  const len = s.length;
  if (from === len) return true;
  // s[from] is '.', so a token must follow it.
  let prevDot = true;
  for (let i = from + 1; i < len; i++) {
    const isDot = s.charCodeAt(i) === DOT;
    if (isDot && prevDot) return false;
    prevDot = isDot;
  }
  return !prevDot;
}

/**
 * Is every subject matched by `subject` (which may hold wildcards) also matched by `filter`?
 * Both must be valid subscription subjects; anything else gives false.
 */
export function subjectIsSubsetOf(subject: string, filter: string): boolean {
  if (!isValidSubject(subject) || !isValidSubject(filter)) return false;
  const sl = subject.length;
  const fl = filter.length;
  let ss = 0;
  let fs = 0;
  for (;;) {
    const se = tokenEnd(subject, ss);
    const fe = tokenEnd(filter, fs);
    if (isWild(filter, fs, fe, GT)) return true; // covers this token and any that follow
    if (isWild(subject, ss, se, GT)) return false; // one-or-more tokens, filter token covers one
    if (isWild(filter, fs, fe, STAR)) {
      // covers any single token, '*' included
    } else if (isWild(subject, ss, se, STAR) || !sameToken(subject, ss, se, filter, fs, fe)) {
      return false;
    }
    const sDone = se === sl;
    const fDone = fe === fl;
    if (sDone || fDone) return sDone && fDone;
    ss = se + 1;
    fs = fe + 1;
  }
}

/** Is there a subject that both `a` and `b` (valid subscription subjects) match? */
export function subjectsOverlap(a: string, b: string): boolean {
  if (!isValidSubject(a) || !isValidSubject(b)) return false;
  const al = a.length;
  const bl = b.length;
  let as = 0;
  let bs = 0;
  for (;;) {
    const ae = tokenEnd(a, as);
    const be = tokenEnd(b, bs);
    if (isWild(a, as, ae, GT) || isWild(b, bs, be, GT)) return true;
    if (!isWild(a, as, ae, STAR) && !isWild(b, bs, be, STAR) && !sameToken(a, as, ae, b, bs, be)) {
      return false;
    }
    const aDone = ae === al;
    const bDone = be === bl;
    if (aDone || bDone) return aDone && bDone;
    as = ae + 1;
    bs = be + 1;
  }
}
