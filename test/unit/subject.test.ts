import { describe, expect, it } from 'vitest';
import {
  countTokens,
  isValidLiteralSubject,
  isValidSubject,
  subjectHasWildcard,
  subjectIsSubsetOf,
  subjectMatches,
  subjectsOverlap,
} from '../../src/core/subject.js';

// [subject, valid for SUB, valid for pedantic PUB]
const validity: [string, boolean, boolean][] = [
  ['foo', true, true],
  ['foo.bar', true, true],
  ['foo.bar.baz', true, true],
  ['$JS.API.INFO', true, true],
  ['_INBOX.abc123.*', true, false],
  ['*', true, false],
  ['>', true, false],
  ['foo.*', true, false],
  ['foo.>', true, false],
  ['*.*', true, false],
  ['foo.*.bar', true, false],
  ['*.>', true, false],
  // wildcards are whole tokens only
  ['foo*', true, true],
  ['a.b*c', true, true],
  ['fo>o', true, true],
  ['foo.>a', true, true],
  ['foo.a>', true, true],
  ['**', true, true],
  ['>>', true, true],
  ['foo.**.bar', true, true],
  // empty tokens
  ['', false, false],
  ['.', false, false],
  ['..', false, false],
  ['foo..bar', false, false],
  ['.foo', false, false],
  ['foo.', false, false],
  ['foo.bar.', false, false],
  ['.*', false, false],
  ['>.', false, false],
  // '>' not last
  ['foo.>.bar', false, false],
  ['>.foo', false, false],
  ['>.>', false, false],
  // whitespace
  ['foo bar', false, false],
  ['foo\tbar', false, false],
  ['foo\rbar', false, false],
  ['foo\nbar', false, false],
  ['foo\fbar', false, false],
  [' ', false, false],
  ['foo. ', false, false],
  ['foo.\t.bar', false, false],
  // other bytes are opaque
  ['foo-bar.baz_1.ü', true, true],
  ['foo\u0000bar', true, true],
];

describe('isValidSubject / isValidLiteralSubject', () => {
  it.each(validity)('%j: sub=%s pub=%s', (subject, sub, pub) => {
    expect(isValidSubject(subject)).toBe(sub);
    expect(isValidLiteralSubject(subject)).toBe(pub);
  });
});

describe('subjectHasWildcard', () => {
  const table: [string, boolean][] = [
    ['foo', false],
    ['foo.bar', false],
    ['*', true],
    ['>', true],
    ['foo.*', true],
    ['*.foo', true],
    ['foo.*.bar', true],
    ['foo.>', true],
    ['foo*', false],
    ['*foo', false],
    ['fo>o', false],
    ['foo.>a', false],
    ['foo.a*.b', false],
    ['', false],
  ];
  it.each(table)('%j -> %s', (subject, expected) => {
    expect(subjectHasWildcard(subject)).toBe(expected);
  });
});

describe('countTokens', () => {
  const table: [string, number][] = [
    ['', 0],
    ['foo', 1],
    ['foo.bar', 2],
    ['a.b.c.d', 4],
    ['foo.>', 2],
    ['foo..bar', 3],
  ];
  it.each(table)('%j -> %d', (subject, n) => {
    expect(countTokens(subject)).toBe(n);
  });
});

// [filter, published subject, matches]: the literal-'*' rows were checked against nats-server 2.9.10.
const matching: [string, string, boolean][] = [
  ['foo', 'foo', true],
  ['foo', 'bar', false],
  ['foo', 'foo.bar', false],
  ['foo.bar', 'foo', false],
  ['foo.*', 'foo.bar', true],
  ['foo.*', 'foo', false],
  ['foo.*', 'foo.bar.baz', false],
  ['foo.>', 'foo.bar', true],
  ['foo.>', 'foo.bar.baz', true],
  ['foo.>', 'foo', false],
  ['>', 'foo', true],
  ['>', 'foo.bar.baz', true],
  ['*.*', 'a.b', true],
  ['*.*', 'a', false],
  ['*.*', 'a.b.c', false],
  ['*.>', 'a', false],
  ['*.>', 'a.b', true],
  ['foo.*.baz', 'foo.bar.baz', true],
  ['foo.*.baz', 'foo.bar.qux', false],
  ['*.bar.>', 'x.bar.y.z', true],
  ['*.bar.>', 'x.baz.y', false],
  // wildcard tokens published literally match wildcards, not other literals
  ['foo.*', 'foo.*', true],
  ['foo.>', 'foo.*', true],
  ['foo.bar', 'foo.*', false],
  ['foo.bar', 'foo.>', false],
  ['*', '>', true],
  // partial-token wildcards are literal
  ['foo*', 'foo*', true],
  ['foo*', 'foox', false],
  ['*', 'foo*', true],
  ['fo>o', 'fo>o', true],
  ['fo>o', 'foo', false],
  ['foo.>a', 'foo.>a', true],
  ['foo.>a', 'foo.b', false],
  ['foo.*', 'foo.>a', true],
  // published subjects with empty tokens match nothing
  ['>', 'foo..bar', false],
  ['foo.*.bar', 'foo..bar', false],
  ['>', '.foo', false],
  ['>', 'foo.', false],
  ['foo.>', 'foo.bar.', false],
  ['foo.>', 'foo.bar..baz', false],
  ['foo', 'foo.', false],
  ['>', '', false],
  ['', 'foo', false],
];

describe('subjectMatches', () => {
  it.each(matching)('filter %j, subject %j -> %s', (filter, subject, expected) => {
    expect(subjectMatches(filter, subject)).toBe(expected);
  });
});

describe('subjectIsSubsetOf', () => {
  // [subject, filter, every subject matched by `subject` is matched by `filter`]
  const table: [string, string, boolean][] = [
    ['foo', 'foo', true],
    ['foo', 'bar', false],
    ['foo.bar', 'foo.*', true],
    ['foo.bar', 'foo.>', true],
    ['foo.bar', '>', true],
    ['foo.*', 'foo.*', true],
    ['foo.*', 'foo.>', true],
    ['foo.*', '>', true],
    ['foo.*', 'foo.bar', false],
    ['foo.>', 'foo.*', false],
    ['foo.>', 'foo.>', true],
    ['foo.>', '>', true],
    ['foo.>', 'foo.bar.>', false],
    ['foo.bar.>', 'foo.>', true],
    ['foo.bar.>', 'foo.*.>', true],
    ['foo.*.>', 'foo.bar.>', false],
    ['>', 'foo.>', false],
    ['>', '>', true],
    ['*', '>', true],
    ['*', '*', true],
    ['*.*', '*.>', true],
    ['*.>', '*.*', false],
    ['foo', 'foo.>', false],
    ['foo.bar.baz', 'foo.*', false],
    ['foo*', '*', true],
    ['foo..bar', '>', false],
    ['foo', 'foo..bar', false],
  ];
  it.each(table)('%j within %j -> %s', (subject, filter, expected) => {
    expect(subjectIsSubsetOf(subject, filter)).toBe(expected);
  });
});

describe('subjectsOverlap', () => {
  const table: [string, string, boolean][] = [
    ['foo', 'foo', true],
    ['foo', 'bar', false],
    ['foo.*', 'foo.bar', true],
    ['foo.*', '*.bar', true],
    ['foo.*', 'bar.*', false],
    ['foo.>', 'foo', false],
    ['foo.>', 'foo.bar.baz', true],
    ['foo.>', '*.*.baz', true],
    ['foo.*', 'foo.*.baz', false],
    ['>', 'anything.at.all', true],
    ['*.a', 'b.*', true],
    ['*.a', '*.b', false],
    ['foo..bar', 'foo.*.bar', false],
  ];
  it.each(table)('%j and %j -> %s', (a, b, expected) => {
    expect(subjectsOverlap(a, b)).toBe(expected);
    expect(subjectsOverlap(b, a)).toBe(expected);
  });
});

/** Matching by the definition, with split(): the oracle for the fast charCode walks. */
function naiveMatches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  if (filter === '' || f.includes('') || subject === '' || s.includes('')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (f[i] !== '*' && f[i] !== s[i]) return false;
  }
  return f.length === s.length;
}

/** Every subject of 1..maxLen tokens over an alphabet: enough witnesses for small patterns. */
function allLiterals(alphabet: string[], maxLen: number): string[] {
  const out: string[] = [];
  let level = [''];
  for (let n = 1; n <= maxLen; n++) {
    const next: string[] = [];
    for (const prefix of level) for (const t of alphabet) next.push(prefix === '' ? t : `${prefix}.${t}`);
    out.push(...next);
    level = next;
  }
  return out;
}

function allPatterns(maxLen: number): string[] {
  return allLiterals(['a', 'b', '*', '>'], maxLen).filter(isValidSubject);
}

describe('subject relations against brute force', () => {
  const patterns = allPatterns(3);
  // 'c' stands for any token the patterns do not name.
  const witnesses = allLiterals(['a', 'b', 'c'], 4);

  it('subjectMatches agrees with the naive matcher', () => {
    const subjects = [...witnesses, ...allLiterals(['a', '*', '>', ''], 3)];
    let checked = 0;
    for (const f of patterns) {
      for (const s of subjects) {
        expect(subjectMatches(f, s), `${f} ~ ${s}`).toBe(naiveMatches(f, s));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10000);
  });

  it('subjectIsSubsetOf and subjectsOverlap agree with enumeration', () => {
    const matchedBy = new Map<string, Set<string>>();
    for (const p of patterns) matchedBy.set(p, new Set(witnesses.filter((w) => naiveMatches(p, w))));
    for (const a of patterns) {
      const ma = matchedBy.get(a)!;
      for (const b of patterns) {
        const mb = matchedBy.get(b)!;
        let subset = true;
        let overlap = false;
        for (const w of ma) {
          if (mb.has(w)) overlap = true;
          else subset = false;
        }
        expect(subjectIsSubsetOf(a, b), `${a} within ${b}`).toBe(subset);
        expect(subjectsOverlap(a, b), `${a} overlaps ${b}`).toBe(overlap);
      }
    }
  });
});
