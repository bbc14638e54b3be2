/* nft-text.ts: the documents of a change as the `nft -f` commands a dry run shows, command
 * by command as nft writes them (marks in hex, `==` only after a binary operation), and
 * refused for what it has no text for. That the text makes the same table as the JSON in
 * the kernel: src/e2e/nft-text.test.ts. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctMark, DEFAULT_CT_MASK } from './ctmark.js';
import { NftBackend } from './nft-backend.js';
import { NftFake } from './nft-fake.js';
import { commandText, documentsText } from './nft-text.js';
import { kernelAction, ruleAtoms, type KernelRuleDoc } from './rules.js';

const t = { family: 'inet', table: 'qosd' };

test('each command of a change as nft writes it', () => {
  const cases: [unknown, string][] = [
    [{ add: { table: { family: 'inet', name: 'qosd' } } }, 'add table inet qosd'],
    [{ add: { chain: { ...t, name: 'output', type: 'filter', hook: 'output', prio: -150, policy: 'accept' } } }, 'add chain inet qosd output { type filter hook output priority -150; policy accept; }'],
    [{ flush: { chain: { ...t, name: 'f4' } } }, 'flush chain inet qosd f4'],
    [{ delete: { chain: { ...t, name: 'n7' } } }, 'delete chain inet qosd n7'],
    [{ delete: { map: { ...t, name: 'm4_0_d_v3' } } }, 'delete map inet qosd m4_0_d_v3'],
    [{ add: { map: { ...t, name: 'm6_1_dy_v2', type: ['ipv6_addr', 'inet_service'], map: 'verdict', flags: ['interval'], stmt: [{ counter: null }] } } },
      'add map inet qosd m6_1_dy_v2 { type ipv6_addr . inet_service : verdict; flags interval; counter; }'],
    [{ add: { element: { ...t, name: 'm6_1_dy_v2', elem: [[{ elem: { val: { concat: [{ prefix: { addr: 'fd00::', len: 48 } }, { range: [5000, 5099] }] }, comment: 'r3' } }, { goto: { target: 'n3' } }]] } } },
      'add element inet qosd m6_1_dy_v2 { fd00::/48 . 5000-5099 comment "r3" : goto n3 }'],
    [{ add: { rule: { ...t, chain: 'f4', expr: [{ match: { op: '==', left: { '&': [{ ct: { key: 'mark' } }, 0xff000000] }, right: 0x03000000 } }, { vmap: { key: { '&': [{ ct: { key: 'mark' } }, 0x00ffff00] }, data: '@byid4' } }] } } },
      'add rule inet qosd f4 ct mark & 0xff000000 == 0x03000000 ct mark & 0x00ffff00 vmap @byid4'],
    [{ add: { rule: { ...t, chain: 'f6', expr: [{ match: { op: '!=', left: { payload: { protocol: 'ip6', field: 'dscp' } }, right: 0 } }, { goto: { target: 'o6' } }] } } },
      'add rule inet qosd f6 ip6 dscp != 0 goto o6'],
    [{ add: { rule: { ...t, chain: 'n2', expr: [{ mangle: { key: { ct: { key: 'mark' } }, value: { '|': [{ '&': [{ ct: { key: 'mark' } }, 0xff0000ff] }, 0x200] } } }, { goto: { target: 'g' } }] } } },
      'add rule inet qosd n2 ct mark set ct mark & 0xff0000ff | 0x00000200 goto g'],
    [{ add: { rule: { ...t, chain: 'a4_d40_p3', expr: [{ mangle: { key: { payload: { protocol: 'ip', field: 'dscp' } }, value: 40 } }, { mangle: { key: { meta: { key: 'priority' } }, value: '0:3' } }, { accept: null }] } } },
      'add rule inet qosd a4_d40_p3 ip dscp set 40 meta priority set 0:3 accept'],
    [{ add: { rule: { ...t, chain: 'o4', expr: [{ counter: null }, { goto: { target: 'a4_d46' } }], comment: 'p:voip' } } },
      'add rule inet qosd o4 counter goto a4_d46 comment "p:voip"'],
    [{ add: { rule: { ...t, chain: 'm4_0', expr: [{ mangle: { key: { ct: { key: 'mark' } }, value: { map: { key: { concat: [{ payload: { protocol: 'ip', field: 'daddr' } }, { meta: { key: 'skuid' } }] }, data: '@m4_0_du_v1' } } } }] } } },
      'add rule inet qosd m4_0 ct mark set ip daddr . meta skuid map @m4_0_du_v1'],
    [{ delete: { element: { ...t, name: 'm4_0_d_v1', elem: ['192.0.2.1', { prefix: { addr: '10.0.0.0', len: 8 } }] } } },
      'delete element inet qosd m4_0_d_v1 { 192.0.2.1, 10.0.0.0/8 }'],
  ];
  for (const [cmd, text] of cases) assert.equal(commandText(cmd), text);
});

test("a mark map's keys and data in hex, also in a later change that only adds elements to it", () => {
  const docs = [
    { nftables: [{ metainfo: { json_schema_version: 1 } }, { add: { map: { ...t, name: 'byid4', type: 'mark', map: 'verdict', stmt: [{ counter: null }] } } }, { add: { element: { ...t, name: 'byid4', elem: [[0, { accept: null }], [{ elem: { val: 0x100, comment: 'r1' } }, { goto: { target: 'a4_d34' } }]] } } }] },
    { nftables: [{ metainfo: { json_schema_version: 1 } }, { add: { element: { ...t, name: 'm4_0_d', elem: [['192.0.2.1', 0x10000]] } } }] },
  ];
  assert.equal(documentsText(docs, new Map([['m4_0_d', { type: 'ipv4_addr', map: 'mark' }]])), [
    '# transaction 1 of 2: prepare (2 commands)',
    'add map inet qosd byid4 { type mark : verdict; counter; }',
    'add element inet qosd byid4 { 0x00000000 : accept, 0x00000100 comment "r1" : goto a4_d34 }',
    '# transaction 2 of 2: switch (1 commands)',
    'add element inet qosd m4_0_d { 192.0.2.1 : 0x00010000 }',
    '',
  ].join('\n'));
  const later = { nftables: [{ add: { element: { ...t, name: 'byid4', elem: [[{ elem: { val: 0x300, comment: 'r3' } }, { goto: { target: 'a4_d8' } }]] } } }] };
  assert.match(documentsText([later], new Map([['byid4', { type: 'mark', map: 'verdict' }]])), /^add element inet qosd byid4 \{ 0x00000300 comment "r3" : goto a4_d8 \}$/m);
});

test('the dry run of the nftables backend: its text is its documents, command for command', () => {
  const mark = ctMark(DEFAULT_CT_MASK);
  const b = new NftBackend({ table: 'qosd', ctMark: mark, runner: new NftFake('qosd') });
  const names = { users: new Map([['root', 0]]), groups: new Map<string, number>() };
  const doc = (id: string, d: KernelRuleDoc) => ({ rule: { id, origin: 'rules' as const, atoms: ruleAtoms(d.match, names), action: kernelAction(d.action) }, actionKey: JSON.stringify(kernelAction(d.action)) });
  const plan = b.plan([
    doc('r1', { match: { remote: '192.0.2.7', proto: 'udp', remote_port: 7001 }, action: { dscp: 'AF41' } }),
    doc('r2', { match: { remote: '192.0.2.0/24' }, action: { dscp: 'CS5', override: true } }),
  ]);
  const { documents, commands, text } = b.describe(plan);
  const lines = text.trimEnd().split('\n');
  assert.equal(lines.filter((l) => !l.startsWith('#')).length, commands, 'one line per command');
  assert.deepEqual(lines.filter((l) => l.startsWith('#')), [`# transaction 1 of 2: prepare (${(documents[0] as { nftables: unknown[] }).nftables.length - 1} commands)`, `# transaction 2 of 2: switch (${(documents[1] as { nftables: unknown[] }).nftables.length - 1} commands)`]);
  assert.ok(lines.includes('add element inet qosd byid4 { 0x00000000 : accept, 0x00000100 comment "r1" : goto a4_d34, 0x00000200 comment "r2" : goto a4_d40 }'), text);
  assert.ok(lines.some((l) => /^add element inet qosd m4_0_sdpxy_v\d+ \{ 0\.0\.0\.0\/0 \. 192\.0\.2\.7 \. 17 \. 0-65535 \. 7001 comment "r1" : goto n1/.test(l)), text);
  assert.ok(lines.includes('add rule inet qosd output meta nfproto ipv4 goto f4'), text);
});

test('an expression or command it has no text for is an internal error, not a wrong line', () => {
  assert.throws(() => commandText({ add: { rule: { ...t, chain: 'x', expr: [{ fib: { result: 'oif' } }] } } }), (e: Error & { code?: string }) => e.code === 'QOS_ERR_INTERNAL' && /fib/.test(e.message));
  assert.throws(() => commandText({ replace: { rule: { ...t, chain: 'x', expr: [] } } }), (e: Error & { code?: string }) => e.code === 'QOS_ERR_INTERNAL');
});
