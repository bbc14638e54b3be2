import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode, MAX_LINE } from './messages.js';
import { assertRoundTrip } from './roundtrip.js';
import { SAMPLE_MESSAGES as samples } from './samples.js';


test('every message round-trips encode → decode → encode', () => {
  assertRoundTrip({ encode, decode }, samples);
});

test('the agent\'s Cached line carries the call after its generation', () => {
  const m = decode('Cached 42 0 {curl -s x} 99 Connect 5 {2 192.0.2.1 443} {} {}');
  assert.equal(m.type, 'Cached');
  if (m.type === 'Cached') {
    assert.equal(m.generation, 99);
    assert.deepEqual(m.inner, { type: 'Connect', pid: 42, uid: 0, cmd: 'curl -s x', fd: 5, address: { family: 2, host: '192.0.2.1', port: 443 }, sqos: '', gqos: '' });
  }
});

test('the paper\'s Connect line decodes', () => {
  const m = decode('Connect 4242 1000 {netmeeting} 7 {2 192.168.10.10 1503} {} {}');
  assert.equal(m.type, 'Connect');
  if (m.type === 'Connect') assert.deepEqual(m.address, { family: 2, host: '192.168.10.10', port: 1503 });
});

test('hostile lines are refused with precise errors', () => {
  const bad: [string, RegExp][] = [
    ['', /empty message/],
    ['Bogus 1 0 a', /unknown message type/],
    ['Socket 1 0 a 2 1 6', /takes 8 tokens/],
    ['Socket x 0 a 2 1 6 5', /pid is not an integer/],
    ['Socket 0 0 a 2 1 6 5', /pid out of range/],
    ['Socket 1 0 a 2 1 6 99999999999', /fd is not an integer/],
    ['Connect 1 0 a 5 {2 999.1.1.1 80} {} {}', /not an IPv4/],
    ['Connect 1 0 a 5 {2 1.2.3.4} {} {}', /must be a list/],
    ['Connect 1 0 a 5 {2 1.2.3.4 70000} {} {}', /port out of range/],
    ['Connect 1 0 a 5 {10 notv6 80} {} {}', /not an IPv6/],
    ['Connect 1 0 {a 5 {2 1.2.3.4 80} {} {}', /unmatched open brace/],
    ['__proto__ 1 0 a', /unknown message type/],
    ['Cached 1 0 a 7 Close 5', /Cached cannot carry "Close"/],
    ['Cached 1 0 a 7 Cached 1 0 a 7 Socket 2 1 0 5', /Cached cannot carry "Cached"/],
    ['Cached 1 0 a 12345678901234567 Socket 2 1 0 5', /generation is not an integer/],
    ['Cached 1 0 a 7 Socket 2 1 0', /Socket takes 8 tokens/],
    ['x'.repeat(MAX_LINE + 1), /exceeds/],
  ];
  for (const [line, re] of bad) assert.throws(() => decode(line), re, JSON.stringify(line.slice(0, 50)));
});
