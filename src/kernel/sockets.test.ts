/* ss --tos lines to a process's sockets (pure). */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endOf, parseSs } from './sockets.js';

test('a process\'s TCP and UDP sockets with their TOS and priority; other processes\' and other protocols\' left out', () => {
  const text = [
    'udp ESTAB  0      0      127.0.0.1:38528    127.0.0.1:9     users:(("python3",pid=8918,fd=5)) tos:0x88 class_id:0x5',
    'tcp LISTEN 1      128    127.0.0.1:45061      0.0.0.0:*     users:(("python3",pid=8918,fd=4)) tos:0 class_id:0     ',
    'tcp ESTAB  0      0      127.0.0.1:42412    127.0.0.1:45061 users:(("python3",pid=8918,fd=3),("python3",pid=8920,fd=7)) tos:0xb8 class_id:0x4',
    'tcp ESTAB  0      0      [::1]:80    [::1]:5000 users:(("nginx",pid=77,fd=9)) tos:0x20 class_id:0',
    'raw UNCONN 0 0 0.0.0.0:1 0.0.0.0:* users:(("ping",pid=8918,fd=6))',
  ].join('\n');
  assert.deepEqual(parseSs(text, 8918), [
    { proto: 'tcp', state: 'ESTAB', fd: 3, local: '127.0.0.1:42412', remote: '127.0.0.1:45061', tos: 0xb8, priority: 4 },
    { proto: 'tcp', state: 'LISTEN', fd: 4, local: '127.0.0.1:45061', remote: '0.0.0.0:*', tos: 0, priority: 0 },
    { proto: 'udp', state: 'ESTAB', fd: 5, local: '127.0.0.1:38528', remote: '127.0.0.1:9', tos: 0x88, priority: 5 },
  ]);
  assert.deepEqual(parseSs(text, 8920).map((s) => s.fd), [7], 'a socket shared by two processes is each one\'s');
  assert.deepEqual(parseSs(text, 1), []);
});

test('an end as ss prints it: the address the packets carry (v4-mapped dotted, scope dropped) and the port; none without a port', () => {
  assert.deepEqual(endOf('10.0.0.1:80'), { address: '10.0.0.1', port: 80 });
  assert.deepEqual(endOf('[2001:db8::1]:443'), { address: '2001:db8::1', port: 443 });
  assert.deepEqual(endOf('[::ffff:10.0.0.1]:5004'), { address: '10.0.0.1', port: 5004 });
  assert.deepEqual(endOf('127.0.0.53%lo:53'), { address: '127.0.0.53', port: 53 });
  assert.deepEqual(endOf('[fe80::1%eth0]:22'), { address: 'fe80::1', port: 22 });
  assert.equal(endOf('0.0.0.0:*'), null);
  assert.equal(endOf('*:*'), null);
  assert.equal(endOf('[::]:*'), null);
});
