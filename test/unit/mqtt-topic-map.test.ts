import { describe, expect, it } from 'vitest';
import { filterToSubjects, isValidClientId, parseShared, subjectToTopic, topicToSubject, TopicMapError } from '../../src/mqtt/topic-map.js';

// mqtt-bridge.md §1.5 (2.10+ column where versions differ).
const PUBLISH: [string, string][] = [
  ['foo', 'foo'],
  ['foo/bar', 'foo.bar'],
  ['a/b/c', 'a.b.c'],
  ['/foo', '/.foo'],
  ['foo/', 'foo./'],
  ['/', '/./'],
  ['//', '/././'],
  ['foo//bar', 'foo./.bar'],
  ['/foo/bar/', '/.foo.bar./'],
  ['über/straße', 'über.straße'],
  ['$foo/bar', '$foo.bar'],
  ['$SYS/x', '$SYS.x'],
  ['foo/*', 'foo.*'],
  ['foo/>', 'foo.>'],
  ['foo.bar', 'foo//bar'],
  ['spBv1.0/plant1', 'spBv1//0.plant1'],
  ['.', '//'],
  ['./', '//./'],
  ['.//.', '//././/'],
  ['foo../bar/.', 'foo////.bar.//'],
  ['///foo//', '/././.foo././'],
  ['a//b//', 'a./.b././'],
];

// §1.6
const FROM_NATS: [string, string][] = [
  ['foo', 'foo'],
  ['foo.bar', 'foo/bar'],
  ['/.foo', '/foo'],
  ['foo./', 'foo/'],
  ['/./', '/'],
  ['foo./.bar', 'foo//bar'],
  ['a./', 'a/'],
  ['x*y', 'x*y'],
  ['foo//bar', 'foo.bar'],
  ['spBv1//0.plant1', 'spBv1.0/plant1'],
  ['a/b', 'ab'],
  ['a.//.b', 'a/./b'],
];

// §1.7
const FILTERS: [string, string[]][] = [
  ['foo/#', ['foo.>', 'foo']],
  ['foo/+', ['foo.*']],
  ['+', ['*']],
  ['#', ['>']],
  ['/+', ['/.*']],
  ['foo/+/baz', ['foo.*.baz']],
  ['+/+', ['*.*']],
  ['foo//#', ['foo./.>', 'foo./']],
  ['foo/*', ['foo.*']],
  ['foo/>', ['foo.>', 'foo']],
  ['$foo/#', ['$foo.>', '$foo']],
  ['+/bar', ['*.bar']],
  ['a.b/#', ['a//b.>', 'a//b']],
  ['/#', ['/.>', '/']],
  ['foo.bar///+///baz', ['foo//bar././.*././.baz']],
  ['foo/bar.baz/#', ['foo.bar//baz.>', 'foo.bar//baz']],
];

describe('MQTT topic <-> NATS subject', () => {
  it.each(PUBLISH)('topic %j -> subject %j, and back', (topic, subject) => {
    expect(topicToSubject(topic)).toBe(subject);
    expect(subjectToTopic(subject)).toBe(topic);
  });

  it.each(FROM_NATS)('NATS subject %j -> topic %j', (subject, topic) => {
    expect(subjectToTopic(subject)).toBe(topic);
  });

  it.each(FILTERS)('filter %j -> subjects %j', (filter, subjects) => {
    expect(filterToSubjects(filter)).toEqual(subjects);
  });

  it('refuses wildcards, spaces, control characters and bad UTF-8 in topic names', () => {
    for (const [t, kind] of [
      ['foo/+', 'wildcard'],
      ['foo/#', 'wildcard'],
      ['a+/b', 'wildcard'],
      ['foo bar', 'bad-char'],
      ['a\tb', 'bad-char'],
      ['a\nb', 'bad-char'],
      ['a\x7fb', 'bad-char'],
      ['a\u0000b', 'bad-utf8'],
      ['a\ufffdb', 'bad-utf8'],
      ['', 'empty'],
    ] as const) {
      let err: unknown;
      try {
        topicToSubject(t);
      } catch (e) {
        err = e;
      }
      expect(err, t).toBeInstanceOf(TopicMapError);
      expect((err as TopicMapError).kind, t).toBe(kind);
    }
  });

  it('refuses malformed filters', () => {
    for (const f of ['a/#/b', 'a/b+', 'a#', '+a', 'a b', '']) expect(() => filterToSubjects(f), f).toThrow(TopicMapError);
  });

  it('parses shared subscriptions and checks client ids', () => {
    expect(parseShared('$share/g1/a/b')).toEqual({ group: 'g1', filter: 'a/b' });
    expect(parseShared('a/b')).toBeNull();
    expect(parseShared('$share//a')).toBe('invalid');
    expect(parseShared('$share/g')).toBe('invalid');
    expect(parseShared('$share/g+/a')).toBe('invalid');
    expect(isValidClientId('sensor-1_x')).toBe(true);
    for (const id of ['a.b', 'a b', 'a*b', 'a>b']) expect(isValidClientId(id), id).toBe(false);
  });
});
