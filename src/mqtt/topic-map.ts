/**
 * MQTT topic names and filters <-> NATS subjects, exactly as nats-server 2.10+ converts them
 * (mqtt-bridge.md §1): levels joined with '.', an empty level becomes the token '/', a '.'
 * inside a level becomes '//', and in filters '+' -> '*', '#' -> '>'. NATS '*' and '>' inside
 * MQTT topics are not escaped (nats-server does not either).
 */

/** Why a topic or filter was refused; the connection decides the reason code. */
export type TopicError = 'empty' | 'wildcard' | 'bad-char' | 'bad-utf8' | 'bad-filter';

export class TopicMapError extends Error {
  constructor(
    readonly kind: TopicError,
    topic: string,
  ) {
    super(`${kind === 'wildcard' ? 'wildcards not allowed in publish\'s topic' : `invalid MQTT topic (${kind})`}: ${JSON.stringify(topic)}`);
  }
}

const SLASH = 0x2f;
const DOT = 0x2e;
const PLUS = 0x2b;
const HASH = 0x23;

/** Characters nats-server refuses in topics: they would break the NATS protocol line. */
function badChar(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0c || c === 0x7f;
}

/** mqtt-packet decodes invalid UTF-8 as U+FFFD and lets U+0000 through; both are Malformed. */
function badUtf8(c: number): boolean {
  return c === 0 || c === 0xfffd;
}

function convert(topic: string, filter: boolean): string {
  const n = topic.length;
  if (n === 0) throw new TopicMapError('empty', topic);
  let out = '';
  let levelStart = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? topic.charCodeAt(i) : SLASH;
    if (c !== SLASH) {
      if (badUtf8(c)) throw new TopicMapError('bad-utf8', topic);
      if (badChar(c)) throw new TopicMapError('bad-char', topic);
      continue;
    }
    // One level: [levelStart, i)
    if (levelStart > 0) out += '.';
    const len = i - levelStart;
    if (len === 0) {
      out += '/';
    } else {
      const first = topic.charCodeAt(levelStart);
      if (len === 1 && (first === PLUS || first === HASH)) {
        if (!filter) throw new TopicMapError('wildcard', topic);
        if (first === HASH && i !== n) throw new TopicMapError('bad-filter', topic);
        out += first === PLUS ? '*' : '>';
      } else {
        for (let k = levelStart; k < i; k++) {
          const ch = topic.charCodeAt(k);
          if (ch === PLUS || ch === HASH) throw new TopicMapError(filter ? 'bad-filter' : 'wildcard', topic);
          if (ch === DOT) out += '//';
          else out += topic[k];
        }
      }
    }
    levelStart = i + 1;
  }
  return out;
}

/** The NATS subject of an MQTT topic name (PUBLISH, will topic). Throws TopicMapError. */
export function topicToSubject(topic: string): string {
  return convert(topic, false);
}

/**
 * The NATS subscription subjects of an MQTT filter: `foo/#` also needs `foo` itself, which
 * NATS `foo.>` does not match (nats-server adds the same second subscription). Throws TopicMapError.
 */
export function filterToSubjects(filter: string): string[] {
  const subject = convert(filter, true);
  // Any subject ending in `.>` gets the parent too, whether the filter said `foo/#` or wrote the
  // NATS wildcard itself (`foo/>`): nats-server 2.9.10 delivers a NATS publish on `foo` to both.
  if (subject.length > 2 && subject.endsWith('.>')) return [subject, subject.slice(0, -2)];
  return [subject];
}

/** The MQTT topic a NATS subject is delivered under (publisher not an MQTT client). */
export function subjectToTopic(subject: string): string {
  const n = subject.length;
  let out = '';
  let runStart = 0;
  for (let i = 0; i < n; i++) {
    const c = subject.charCodeAt(i);
    if (c === DOT) {
      out += subject.slice(runStart, i) + '/';
      runStart = i + 1;
    } else if (c === SLASH) {
      out += subject.slice(runStart, i);
      const next = i + 1 < n ? subject.charCodeAt(i + 1) : -1;
      if (next === SLASH) {
        out += '.';
        i++;
      } else if (next === DOT) {
        // An empty level: the '/' token followed by its separator.
        out += '/';
        i++;
      }
      // A lone '/' is dropped.
      runStart = i + 1;
    }
  }
  return runStart === 0 ? subject : out + subject.slice(runStart);
}

/** A `$share/<name>/<filter>` subscription split into its group and filter; null when not shared. */
export function parseShared(filter: string): { group: string; filter: string } | null | 'invalid' {
  if (!filter.startsWith('$share/')) return null;
  const rest = filter.slice(7);
  const slash = rest.indexOf('/');
  if (slash <= 0) return 'invalid';
  const group = rest.slice(0, slash);
  if (group.includes('+') || group.includes('#')) return 'invalid';
  const f = rest.slice(slash + 1);
  if (f === '') return 'invalid';
  return { group, filter: f };
}

/** Filters starting with a wildcard do not match topics starting with '$' (MQTT-4.7.2-1). */
export function wildcardFirst(filter: string): boolean {
  const c = filter.charCodeAt(0);
  return c === PLUS || c === HASH;
}

/** Client ids nats-server 2.10+ refuses (CONNACK 2 / 0x85): not valid as a NATS name. */
export function isValidClientId(id: string): boolean {
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (badChar(c) || badUtf8(c) || c === DOT || c === 0x2a || c === 0x3e) return false;
  }
  return true;
}
