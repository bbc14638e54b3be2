import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Convergence, parseProm, promMax, promSum } from './fleet-figures.js';

// as etcd 3.4 prints them: help and type lines, counters past a million in exponent form, labels
const MEMBER_A = `# HELP etcd_network_client_grpc_sent_bytes_total The total number of bytes sent to grpc clients.
# TYPE etcd_network_client_grpc_sent_bytes_total counter
etcd_network_client_grpc_sent_bytes_total 1.234567e+06
etcd_mvcc_db_total_size_in_bytes 20480
grpc_server_msg_received_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 42
grpc_server_msg_received_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 7
etcd_debugging_lease_ttl_total_bucket{le="+Inf"} 2
`;
const MEMBER_B = `etcd_network_client_grpc_sent_bytes_total 1000
etcd_mvcc_db_total_size_in_bytes 24576
grpc_server_msg_received_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 8
grpc_server_msg_received_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 3
`;

test('a counter is read in exponent form and summed over the members', () => {
  assert.equal(promSum(MEMBER_A, 'etcd_network_client_grpc_sent_bytes_total'), 1_234_567);
  assert.equal(promSum([MEMBER_A, MEMBER_B], 'etcd_network_client_grpc_sent_bytes_total'), 1_235_567);
});

test('only the samples whose labels match are summed', () => {
  assert.equal(promSum([MEMBER_A, MEMBER_B], 'grpc_server_msg_received_total', { grpc_method: 'LeaseKeepAlive' }), 50);
  assert.equal(promSum([MEMBER_A, MEMBER_B], 'grpc_server_msg_received_total', { grpc_method: 'Put', grpc_service: 'etcdserverpb.KV' }), 10);
  assert.equal(promSum([MEMBER_A, MEMBER_B], 'grpc_server_msg_received_total'), 60);
  assert.equal(promSum(MEMBER_A, 'grpc_server_msg_received_total', { grpc_method: 'Range' }), 0, 'a metric present with no matching series is 0');
});

test('a gauge each member has of its own is taken at its largest', () => {
  assert.equal(promMax([MEMBER_A, MEMBER_B], 'etcd_mvcc_db_total_size_in_bytes'), 24576);
});

test('a metric no member has is an error, never a 0', () => {
  assert.throws(() => promSum([MEMBER_A, MEMBER_B], 'etcd_network_client_grpc_sent_bytes'), /no metric etcd_network_client_grpc_sent_bytes/);
});

test('labels with escapes, +Inf and timestamps are read; a line that is not a sample is an error', () => {
  const s = parseProm('x{a="q\\"uote",b="new\\nline"} +Inf 1700000000000\ny NaN\n');
  assert.deepEqual(s[0], { name: 'x', labels: { a: 'q"uote', b: 'new\nline' }, value: Infinity });
  assert.ok(Number.isNaN(s[1]!.value));
  assert.throws(() => parseProm('x{a=1} 2'), /labels not readable/);
  assert.throws(() => parseProm('x one'), /not a Prometheus sample value/);
  assert.throws(() => parseProm('{a="b"} 1'), /not a Prometheus sample/);
});

test('a push has converged at the moment the last node reported it applied', () => {
  const c = new Convergence(['b0', 'b1', 'b2']);
  c.aim(10);
  c.note('b0', 10, 100);
  c.note('b1', 12, 130);
  assert.equal(c.done(), null);
  assert.deepEqual(c.missing(), ['b2']);
  c.note('b2', 9, 140); // still the revision before
  assert.equal(c.done(), null);
  c.note('b2', 10, 170);
  c.note('b0', 10, 900); // a later rewrite of the same status does not move the moment
  assert.equal(c.done(), 170);
  assert.equal(c.first(), 100);
});

test('nodes already past the next target count from when they got there; other nodes are ignored', () => {
  const c = new Convergence(['b0', 'b1']);
  c.aim(5);
  c.note('b0', 7, 50);
  c.note('b1', 5, 60);
  c.note('stranger', 1, 70);
  assert.equal(c.done(), 60);
  c.aim(7);
  assert.deepEqual(c.missing(), ['b1']);
  assert.equal(c.first(), 50);
  c.note('b1', 7, 80);
  assert.equal(c.done(), 80);
});
