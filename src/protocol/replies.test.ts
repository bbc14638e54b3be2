import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from '../errors.js';
import { decodeReply, encodeError, encodeReply, encodeVersion, replyCodec } from './replies.js';
import { assertRoundTrip } from './roundtrip.js';
import { everyReply, MALFORMED_REPLIES } from './samples.js';

test('every reply round-trips encode → decode → encode', () => {
  assertRoundTrip(replyCodec, everyReply());
});

test('replies render the directive vocabulary', () => {
  assert.equal(encodeReply(null), '');
  assert.equal(encodeReply({ tos: 48 }), 'TOS 48');
  assert.equal(encodeReply({ dscp: 46, priority: 5 }), 'DSCP 46 PRIORITY 5');
  assert.equal(encodeReply({ deny: 'ECONNREFUSED' }), 'DENY ECONNREFUSED');
  assert.equal(encodeReply({ dscp: 34, override: true }), 'OVERRIDE DSCP 34');
  assert.equal(encodeReply({ dscp: 34 }, 1795287232097000), 'DSCP 34 CACHE 1795287232097000');
  assert.equal(encodeReply(null, 5), 'CACHE 5');
  assert.equal(encodeReply({ deny: 'EPERM' }, 5), 'DENY EPERM CACHE 5');
  assert.equal(encodeReply({ tos: 48, dscp: 12 }), 'TOS 48', 'a raw TOS wins over a DSCP');
  assert.equal(encodeVersion(), 'VERSION 1');
  assert.equal(encodeError(new QosError('QOS_ERR_PROTOCOL', 'empty message')), 'ERROR QOS_ERR_PROTOCOL {empty message}');
});

test('the agent\'s reading: separators, and a later mark replacing an earlier one', () => {
  assert.deepEqual(decodeReply(' \tDSCP 34\r  PRIORITY 2 '), { decision: { dscp: 34, priority: 2 } });
  assert.deepEqual(decodeReply('TOS 48 DSCP 10'), { decision: { dscp: 10 } });
  assert.deepEqual(decodeReply('DSCP 10 TOS 48'), { decision: { tos: 48 } });
  assert.deepEqual(decodeReply('TOS 007'), { decision: { tos: 7 } });
});

test('malformed replies are refused', () => {
  for (const line of MALFORMED_REPLIES) assert.throws(() => decodeReply(line), (e) => e instanceof QosError && e.code === 'QOS_ERR_PROTOCOL', JSON.stringify(line));
});
