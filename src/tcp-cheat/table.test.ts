/* The cheat's nftables table as data: the connection parsed from the command line, one table
 * name per connection, the rule that drops only the receiver's ACKs, and its drop count read
 * back from nft's own JSON listing. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from '../errors.js';
import { droppedCount, parseEndpoint, planTable, tableName } from './table.js';

const conn = { sender: { addr: '10.77.1.1', port: 40009 }, receiver: { addr: '10.77.2.2', port: 5001 } };

test('an endpoint is an IPv4 address and a port; anything else is a usage error naming the option', () => {
  assert.deepEqual(parseEndpoint('10.77.1.1:40009', '--sender'), { addr: '10.77.1.1', port: 40009 });
  for (const bad of ['10.77.1.1', '10.77.1.1:0', '10.77.1.1:65536', '10.77.1.256:80', '[fd00::1]:80', 'host:80', ':80', '10.77.1.1:8x']) {
    assert.throws(() => parseEndpoint(bad, '--sender'), (e: unknown) => e instanceof QosError && e.code === 'QOS_ERR_USAGE' && e.message.includes('--sender') && e.message.includes(bad), bad);
  }
});

test('each connection has its own table, the same one every time (a new cheat finds what a killed one left)', () => {
  assert.equal(tableName(conn), tableName({ sender: { ...conn.sender }, receiver: { ...conn.receiver } }));
  assert.match(tableName(conn), /^qosd_tcpcheat_[0-9a-f]{8}$/);
  assert.notEqual(tableName(conn), tableName({ ...conn, sender: { ...conn.sender, port: 40010 } }));
  assert.notEqual(tableName(conn), tableName({ sender: conn.receiver, receiver: conn.sender }), 'the direction counts');
});

test('the table drops, in the forward hook, the receiver-to-sender packets of the connection that are not SYN, FIN or RST, and counts them', () => {
  const doc = planTable(conn);
  const name = tableName(conn);
  assert.deepEqual(doc.nftables[1], { add: { table: { family: 'inet', name } } });
  assert.deepEqual(doc.nftables[2], { add: { chain: { family: 'inet', table: name, name: 'real_acks', type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } } });
  const rule = (doc.nftables[3] as { add: { rule: { expr: unknown[] } } }).add.rule;
  const text = JSON.stringify(rule.expr);
  for (const part of ['"field":"saddr"}},"right":"10.77.2.2"', '"field":"daddr"}},"right":"10.77.1.1"', '"field":"sport"}},"right":5001', '"field":"dport"}},"right":40009',
    '{"&":[{"payload":{"protocol":"tcp","field":"flags"}},["syn","fin","rst"]]},"right":0', '{"counter":null},{"drop":null}']) assert.ok(text.includes(part), `${part} in ${text}`);
  assert.equal(doc.nftables.length, 4, 'one table, one chain, one rule');
});

test('the drop count is read from nft -j list, and a table without the rule is an error', () => {
  // nft 1.0.6's listing of the table planTable made, after 359 drops
  const listing = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "${tableName(conn)}", "handle": 3}}, {"chain": {"family": "inet", "table": "${tableName(conn)}", "name": "real_acks", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}, {"rule": {"family": "inet", "table": "${tableName(conn)}", "chain": "real_acks", "handle": 2, "comment": "real ACKs of the cheated connection", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.77.2.2"}}, {"match": {"op": "!", "left": {"payload": {"protocol": "tcp", "field": "flags"}}, "right": ["fin", "syn", "rst"]}}, {"counter": {"packets": 359, "bytes": 17576}}, {"drop": null}]}}]}`;
  assert.equal(droppedCount(listing), 359);
  const noRule = JSON.stringify({ nftables: [{ table: { family: 'inet', name: tableName(conn) } }] });
  assert.throws(() => droppedCount(noRule), (e: unknown) => e instanceof QosError && e.code === 'QOS_ERR_KERNEL');
});
