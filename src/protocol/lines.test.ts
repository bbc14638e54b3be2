import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from '../errors.js';
import { LineSplitter, MAX_LINE } from './lines.js';

test('lines come out whole however the stream is cut', () => {
  const text = Buffer.from('VERSION 1\n\nDSCP 34 CACHE 7\nERROR QOS_ERR_PROTOCOL {é}\npartial');
  for (let cut = 0; cut <= text.length; cut++) {
    const s = new LineSplitter();
    const got = [...s.push(text.subarray(0, cut)), ...s.push(text.subarray(cut))];
    assert.deepEqual(got, ['VERSION 1', '', 'DSCP 34 CACHE 7', 'ERROR QOS_ERR_PROTOCOL {é}'], `cut at ${cut}`);
  }
});

test('an unfinished line longer than the bound is refused', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push(Buffer.alloc(MAX_LINE, 'x')), []);
  assert.throws(() => s.push(Buffer.from('x')), (e) => e instanceof QosError && e.code === 'QOS_ERR_MESSAGE_TOO_LONG');
  assert.deepEqual(new LineSplitter(4).push(Buffer.from('abcdefgh\nab')), ['abcdefgh'], 'a complete line is not the bound\'s business');
});
