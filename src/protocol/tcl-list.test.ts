import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { formatList, parseList, quoteElement } from './tcl-list.js';
import { requireTools } from '../prerequisites.js';
import { assertRoundTrip } from './roundtrip.js';

test('parses the paper\'s message shapes', () => {
  assert.deepEqual(parseList('Socket 12 0 {C:\\Program Files\\conf.exe} 2 2 0 5'), ['Socket', '12', '0', 'C:\\Program Files\\conf.exe', '2', '2', '0', '5']);
  assert.deepEqual(parseList('Connect 1 0 curl 5 {2 192.0.2.1 80} {} {}'), ['Connect', '1', '0', 'curl', '5', '2 192.0.2.1 80', '', '']);
  assert.deepEqual(parseList('a\\ b "c d" {e {f}}'), ['a b', 'c d', 'e {f}']);
});

test('round-trips awkward elements', () => {
  const cases = ['', ' ', 'plain', 'a b', '{', '}', '{x', 'x}', '\\', 'a\\', '"q"', '$x', '[cmd]', '#c', 'a#b', 'tab\there', 'nl\nline', '\x01\x7f', 'é ü 日本', ';'];
  for (const c of cases) {
    assert.deepEqual(parseList(quoteElement(c)), [c], `element ${JSON.stringify(c)}`);
    assert.ok(!quoteElement(c).includes('\n'), 'quoted element stays on one line');
  }
  assert.deepEqual(parseList(formatList(cases)), cases);
});

test('random strings round-trip', () => {
  let seed = 42;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const alphabet = 'ab {}[]$;"\\#\t\n\r x\x00\x05';
  const lists = Array.from({ length: 5000 }, () => Array.from({ length: Math.floor(rnd() * 5) }, () => Array.from({ length: Math.floor(rnd() * 8) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('')));
  assertRoundTrip({ encode: formatList, decode: parseList }, lists);
});

test('refuses malformed lists with a protocol error', () => {
  for (const bad of ['{unclosed', '"unclosed', '{a}b', '"a"b']) {
    assert.throws(() => parseList(bad), (e: Error & { code?: string }) => e.code === 'QOS_ERR_PROTOCOL', bad);
  }
});

test('Tcl itself reads what we format', () => {
  requireTools('tclsh');
  const cases = ['C:\\Program Files\\NetMeetingNT\\conf.exe ', 'a b', '{x', 'nl\nx', '$HOME', '[exec]', '#c', ''];
  const script = `set l [gets stdin]\nforeach e $l { puts x[binary encode hex [encoding convertto utf-8 $e]] }`;
  const r = spawnSync('tclsh', [], { input: `${script.replace(/\n/g, ';')}\n${formatList(cases)}\n`, encoding: 'utf8' });
  // tclsh reads the script from stdin; the list is the next line it gets.
  const got = r.stdout.trim().split('\n').map((h) => Buffer.from(h.slice(1), 'hex').toString('utf8'));
  assert.deepEqual(got, cases);
});
