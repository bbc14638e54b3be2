/* `qos doctor` on this machine (docs/doctor.md): what it offers qosd, read by the probes (this
 * kernel lacks netem, fq_codel and cake, which qosd does not use), and the self-test, which marks
 * a real connection and reads the mark back from its packets; a host without nft or tc: each
 * named with its package, exit 69; the daemon's own probe at start, in `qos status`. */

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { callJson } from '../daemon/admin-client.js';
import { whereIs } from '../exec.js';
import { requireE2e, sh, TestDaemon, waitFor, QOS } from './harness.js';

requireE2e();

const dir = mkdtempSync(join(tmpdir(), 'qosd-doctor-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Check { id: string; what: string; ok: boolean; needed: boolean; unused?: true; detail: string; fix?: string }

test('qos doctor reports the qdiscs this kernel lacks as not used by qosd, what qosd needs as working, and passes its self-test', () => {
  const r = sh([process.execPath, QOS, 'doctor', '--json', '--admin', join(dir, 'none.sock')], { timeout: 120_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const j = JSON.parse(r.stdout) as { ok: boolean; checks: Check[] };
  const by = new Map(j.checks.map((c) => [c.id, c]));
  assert.equal(j.ok, true);
  for (const q of ['netem', 'fq_codel', 'cake']) {
    const c = by.get(`qdisc:${q}`)!;
    assert.deepEqual([c.ok, c.needed, c.unused], [false, false, true], `${q}: ${JSON.stringify(c)}`);
    assert.match(c.detail, /unknown/);
  }
  for (const id of ['nft', 'nft:ip dscp set', 'nft:meta priority set', 'nft:limit rate over', 'qdisc:htb', 'qdisc:tbf', 'qdisc:clsact', 'filter:u32', 'action:mirred', 'ifb', 'cgroup2', 'btf', 'ebpf', 'agent']) {
    assert.equal(by.get(id)?.ok, true, `${id}: ${JSON.stringify(by.get(id))}`);
  }
  assert.deepEqual(j.checks.filter((c) => !c.ok && c.needed), [], 'nothing qosd needs is missing');
  const st = by.get('self-test')!;
  assert.equal(st.ok, true, st.detail);
  assert.match(st.detail, /^all [1-9]\d* packets to the listener carried EF/);
  assert.deepEqual([by.get('daemon')?.ok, by.get('daemon')?.needed], [false, false], 'no daemon on that socket: said, not a failure');
  // the text form: one line per check, the self-test's among them, the verdict last
  const t = sh([process.execPath, QOS, 'doctor', '--admin', join(dir, 'none.sock')], { timeout: 120_000 });
  assert.equal(t.status, 0);
  assert.match(t.stdout, /^ -- {2}qdisc netem: not available \(.*\); qosd does not use it: it shapes with HTB and TBF$/m);
  assert.match(t.stdout, /^ok {3}self-test: .*carried EF/m);
  assert.match(t.stdout, /qos doctor: everything qosd needs works here\n$/);
});

test('without nft and tc on PATH: each is a FAIL naming its Debian package, the self-test says why it did not run, exit 69', () => {
  // a PATH with node's directory (/usr/bin) and the shell: no /usr/sbin, where nft and tc are
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const p of ["sh", "cat"]) symlinkSync(whereIs(p)!, join(bin, p));
  const r = sh([process.execPath, QOS, 'doctor', '--admin', join(dir, 'none.sock')], { timeout: 120_000, env: { ...process.env, PATH: `${bin}:${dirname(process.execPath)}` } });
  assert.equal(r.status, 69, r.stdout + r.stderr);
  assert.match(r.stdout, /^FAIL nftables \(nft\): nft is not installed; needed for kernel rules .*; fix: apt-get install nftables$/m);
  assert.match(r.stdout, /^FAIL tc and ip \(iproute2\): tc or ip is not installed; .*fix: apt-get install iproute2$/m);
  // (ip is in /usr/bin, beside node: the self-test lacks only nft)
  assert.match(r.stdout, /^FAIL self-test: .*: not run: it needs nft; .*fix: apt-get install nftables$/m);
  assert.match(r.stdout, /qos doctor: 3 things qosd needs do not work \(FAIL above\)\n$/);
});

test('the daemon probes the host at start and qos status shows it: everything needed works, the qdiscs this kernel lacks named', async () => {
  mkdirSync(join(dir, 'd'));
  const d = await new TestDaemon(join(dir, 'd'), 'rules: []\n', ['--probe', 'on', '--kernel', 'off', '--tc', 'off']).start();
  try {
    type Doc = { checked_at: string | null; ok?: boolean; needed_missing?: string[]; not_available?: string[] };
    const doctor = async () => (await callJson<{ doctor: Doc }>(d.admin, 'GET', '/v1/status')).doctor;
    await waitFor('the probe done', async () => (await doctor()).checked_at !== null);
    const s = await doctor();
    assert.equal(s.ok, true);
    assert.deepEqual(s.needed_missing, []);
    for (const q of ['qdisc netem', 'qdisc fq_codel', 'qdisc cake']) assert.ok(s.not_available!.includes(q), `${q} in ${s.not_available!.join(', ')}`);
    const text = sh([process.execPath, QOS, 'status', '--admin', d.admin]).stdout;
    assert.match(text, /^host {9}probed .*: everything qosd needs works; .*not in this kernel \(qosd does not use them\): .*qdisc netem.* \(qos doctor\)$/m, text);
  } finally {
    await d.stop();
  }
});
