/* Editing the running policy through the admin API (policy-api.ts) of a real daemon: apply
 * changes what decides and the file, and keeps the replaced text as a version; a bad text, a
 * stale base or a versions directory that is a link changes nothing, on disk or running;
 * restore is an apply, checked again; 50 versions kept; the built-in policy is not editable.
 * And the CLI on the same routes. No namespace or nftables table: --kernel off, --tc off. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, callJson } from './admin-client.js';
import { DaemonChild, QOS_CLI } from './child.js';
import { LineClient } from './line-client.js';
import { requireRoot, requireTools } from '../prerequisites.js';

const ARGS = ['--kernel', 'off', '--tc', 'off', '--nice', 'keep'];
const policyWith = (dscp: string, extra = '') => `${extra}rules:\n  - { name: web, match: { event: connect, remote_port: 443 }, action: { dscp: ${dscp} } }\n`;
/** a syntax error on line 3: the flow map is never closed */
const BAD = 'rules:\n  - name: web\n    match: { event: connect, remote_port: 443\n    action: { dscp: EF }\n';
const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const qos = (...args: string[]) => spawnSync(process.execPath, [QOS_CLI, ...args], { encoding: 'utf8' });

interface Running { text: string; sha256: string; editable: boolean; rules: number; generation: number; file_differs: boolean; source: string }
interface ApiError { error: { code: string; message: string; problems?: { line?: number; col?: number; message: string; file?: string }[] } }

/** The DSCP the daemon answers a Connect to port 443 with (a new descriptor each time). */
let fd = 10;
async function dscpFor(agent: LineClient): Promise<string> {
  agent.sock.write(`Connect 1 0 curl ${fd++} {2 192.0.2.8 443} {} {}\n`);
  return /^DSCP (\d+)/.exec((await agent.next()) ?? '')?.[1] ?? 'none';
}

async function withDaemon(policy: string | null, fn: (d: DaemonChild, dir: string) => Promise<void>, args = ARGS): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-policy-api-'));
  const d = await new DaemonChild(dir, policy, args).start();
  try { await fn(d, dir); } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('apply: the running policy and the file change, the replaced text is kept as a version, and the file watcher does not reload a second time', async () => {
  requireRoot('the policy file is given another group');
  await withDaemon(policyWith('AF41'), async (d, dir) => {
    const agent = new LineClient(d.socket);
    assert.equal(await dscpFor(agent), '34');
    const before = await callJson<Running>(d.admin, 'GET', '/v1/policy');
    assert.equal(before.text, policyWith('AF41'));
    assert.equal(before.sha256, sha(before.text));
    assert.equal(before.editable, true);
    assert.equal(before.file_differs, false);

    // the file's group and mode are the administrator's: an apply keeps them
    chownSync(d.policyFile, 0, 65534);
    chmodSync(d.policyFile, 0o640);
    const checked = await callJson<{ ok: boolean; rules: number; problems: unknown[] }>(d.admin, 'POST', '/v1/policy/check', { text: policyWith('EF') });
    assert.deepEqual(checked, { ok: true, rules: 1, problems: [] });
    const r = await callJson<{ ok: boolean; version: number; generation: number; sha256: string; rules: number }>(d.admin, 'POST', '/v1/policy/apply', { text: policyWith('EF'), base_sha256: before.sha256 });
    assert.equal(r.ok, true);
    assert.equal(r.version, 1);
    assert.equal(r.sha256, sha(policyWith('EF')));
    assert.equal(await dscpFor(agent), '46', 'the next decision is the new policy\'s');
    assert.equal(readFileSync(d.policyFile, 'utf8'), policyWith('EF'));
    const st = statSync(d.policyFile);
    assert.deepEqual([st.mode & 0o777, st.uid, st.gid], [0o640, 0, 65534], 'the file keeps its mode, owner and group');

    const versions = await callJson<{ versions: { version: number; sha256: string; by: string; size: number }[] }>(d.admin, 'GET', '/v1/policy/versions');
    assert.deepEqual(versions.versions.map((v) => [v.version, v.sha256, v.by, v.size]), [[1, before.sha256, 'api', Buffer.byteLength(before.text)]]);
    const v1 = await callJson<{ text: string }>(d.admin, 'GET', '/v1/policy/versions/1');
    assert.equal(v1.text, before.text);
    const vdir = join(dir, 'policy-versions');
    assert.equal(statSync(vdir).mode & 0o777, 0o700);
    for (const f of readdirSync(vdir)) assert.equal(statSync(join(vdir, f)).mode & 0o777, 0o600, f);

    // the watcher sees the write; it must not make a second reload (a new generation)
    await new Promise((res) => setTimeout(res, 1500));
    const after = await callJson<Running>(d.admin, 'GET', '/v1/policy');
    assert.equal(after.generation, r.generation);
    assert.equal(d.log.match(/policy reloaded/g)?.length, 1, d.log);
    agent.sock.destroy();
  });
});

test('a text with a syntax error is refused with its line and column (as qos policy check gives them), and neither the file nor what runs changes; a stale base is refused', async () => {
  await withDaemon(policyWith('AF41'), async (d, dir) => {
    const agent = new LineClient(d.socket);
    const before = await callJson<Running>(d.admin, 'GET', '/v1/policy');

    writeFileSync(join(dir, 'bad.yaml'), BAD);
    const cli = qos('policy', 'check', join(dir, 'bad.yaml'));
    assert.equal(cli.status, 65);
    const [, line, col] = /bad\.yaml:(\d+):(\d+): /.exec(cli.stderr)!;

    const checked = await callJson<{ ok: boolean; problems: { line: number; col: number; message: string }[] }>(d.admin, 'POST', '/v1/policy/check', { text: BAD });
    assert.equal(checked.ok, false);
    assert.deepEqual([checked.problems[0]!.line, checked.problems[0]!.col], [Number(line), Number(col)]);

    const refused = await call(d.admin, 'POST', '/v1/policy/apply', 30_000, { text: BAD, base_sha256: before.sha256 });
    assert.equal(refused.status, 400);
    const e = (JSON.parse(refused.body) as ApiError).error;
    assert.equal(e.code, 'QOS_ERR_POLICY_INVALID');
    assert.deepEqual([e.problems![0]!.line, e.problems![0]!.col], [Number(line), Number(col)]);
    assert.equal(readFileSync(d.policyFile, 'utf8'), policyWith('AF41'), 'the file is unchanged');
    assert.equal((await callJson<Running>(d.admin, 'GET', '/v1/policy')).sha256, before.sha256);
    assert.equal(await dscpFor(agent), '34', 'the old policy still decides');

    const stale = await call(d.admin, 'POST', '/v1/policy/apply', 30_000, { text: policyWith('EF'), base_sha256: sha('not the running text') });
    assert.equal(stale.status, 409);
    assert.equal((JSON.parse(stale.body) as ApiError).error.code, 'QOS_ERR_POLICY_STALE');
    assert.equal(readFileSync(d.policyFile, 'utf8'), policyWith('AF41'));
    assert.equal(await dscpFor(agent), '34');
    assert.deepEqual((await callJson<{ versions: unknown[] }>(d.admin, 'GET', '/v1/policy/versions')).versions, [], 'no version kept for a refused apply');

    // the CLI on the same route: the problem named by the file given, exit 65; stale: 75
    const applied = qos('policy', 'apply', join(dir, 'bad.yaml'), '--admin', d.admin);
    assert.equal(applied.status, 65, applied.stderr);
    assert.match(applied.stderr, new RegExp(`bad\\.yaml:${line}:${col}: `));
    writeFileSync(join(dir, 'ef.yaml'), policyWith('EF'));
    assert.equal(qos('policy', 'apply', join(dir, 'ef.yaml'), '--admin', d.admin, '--base', sha('x')).status, 75);
    agent.sock.destroy();
  });
});

test('restore puts a version back and is checked again: a version whose script no longer compiles is refused', async () => {
  await withDaemon(policyWith('AF41'), async (d, dir) => {
    const agent = new LineClient(d.socket);
    writeFileSync(join(dir, 'p.js'), "export function Connect(ev) { return { dscp: 'CS1' }; }\n");
    const scripted = policyWith('AF41', 'script: p.js\n');
    const r1 = await callJson<{ version: number }>(d.admin, 'POST', '/v1/policy/apply', { text: scripted }, 30_000);
    assert.equal(r1.version, 1);
    assert.equal((await callJson<Running>(d.admin, 'GET', '/v1/policy')).text, scripted);
    const r2 = await callJson<{ version: number }>(d.admin, 'POST', '/v1/policy/apply', { text: policyWith('EF') }, 30_000);
    assert.equal(r2.version, 2, 'the scripted policy kept as version 2');
    assert.equal(await dscpFor(agent), '46');

    // version 1 (no script) comes back through the CLI
    const restored = qos('policy', 'restore', '1', '--admin', d.admin, '--json');
    assert.equal(restored.status, 0, restored.stderr);
    assert.equal((JSON.parse(restored.stdout) as { restored: number; version: number }).restored, 1);
    assert.equal(await dscpFor(agent), '34');
    assert.equal(readFileSync(d.policyFile, 'utf8'), policyWith('AF41'));

    // version 2 names p.js, which is broken now: checked again, refused, nothing changes
    writeFileSync(join(dir, 'p.js'), "export function Connect(ev) { return { dscp: 'CS1' } \n}}\n");
    const refused = await call(d.admin, 'POST', '/v1/policy/versions/2/restore', 30_000, {});
    assert.equal(refused.status, 400, refused.body);
    const e = (JSON.parse(refused.body) as ApiError).error;
    assert.equal(e.code, 'QOS_ERR_POLICY_INVALID');
    assert.equal(e.problems![0]!.file, join(dir, 'p.js'), 'the problem is in the script, and says so');
    assert.equal(await dscpFor(agent), '34');
    assert.equal(readFileSync(d.policyFile, 'utf8'), policyWith('AF41'));
    assert.equal((await call(d.admin, 'GET', '/v1/policy/versions/99')).status, 404);
    agent.sock.destroy();
  });
});

test('each apply keeps the replaced policy as the next version, listed newest first by the API and qos policy versions (the bound of 50: policy-versions.test.ts)', async () => {
  await withDaemon(policyWith('AF41'), async (d, dir) => {
    for (let i = 0; i < 3; i++) await callJson(d.admin, 'POST', '/v1/policy/apply', { text: policyWith(String(i + 1)) }, 30_000);
    const { versions } = await callJson<{ versions: { version: number }[] }>(d.admin, 'GET', '/v1/policy/versions');
    assert.deepEqual(versions.map((v) => v.version), [3, 2, 1]);
    assert.equal(readdirSync(join(dir, 'policy-versions')).length, 3);
    assert.equal((await callJson<{ text: string }>(d.admin, 'GET', '/v1/policy/versions/1')).text, policyWith('AF41'));
    assert.equal((await callJson<{ text: string }>(d.admin, 'GET', '/v1/policy/versions/3')).text, policyWith('2'));
    const listed = qos('policy', 'versions', '--admin', d.admin);
    assert.equal(listed.status, 0, listed.stderr);
    assert.equal(listed.stdout.trim().split('\n').length, 4, 'a heading and 3 versions');
  });
});

test('the built-in policy cannot be applied over: a clear error naming --policy FILE', async () => {
  await withDaemon(null, async (d) => {
    const p = await callJson<Running>(d.admin, 'GET', '/v1/policy');
    assert.equal(p.editable, false);
    assert.equal(p.source, '<built-in>');
    const r = await call(d.admin, 'POST', '/v1/policy/apply', 30_000, { text: policyWith('EF') });
    assert.equal(r.status, 409);
    const e = (JSON.parse(r.body) as ApiError).error;
    assert.equal(e.code, 'QOS_ERR_POLICY_READONLY');
    assert.match(e.message, /--policy FILE/);
    assert.equal((await callJson<Running>(d.admin, 'GET', '/v1/policy')).sha256, p.sha256);
    const show = qos('policy', 'show', '--admin', d.admin);
    assert.equal(show.status, 0);
    assert.match(show.stdout, /built-in policy: start the daemon with --policy FILE/);
  });
});

test('a symbolic link in place of the versions directory: apply refused, nothing written through it, the file and the running policy unchanged', async () => {
  await withDaemon(policyWith('AF41'), async (d, dir) => {
    const agent = new LineClient(d.socket);
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere, { mode: 0o700 });
    symlinkSync(elsewhere, join(dir, 'policy-versions'));
    const r = await call(d.admin, 'POST', '/v1/policy/apply', 30_000, { text: policyWith('EF') });
    const e = (JSON.parse(r.body) as ApiError).error;
    assert.equal(e.code, 'QOS_ERR_UNSAFE_PATH', r.body);
    assert.match(e.message, /symbolic link/);
    assert.deepEqual(readdirSync(elsewhere), []);
    assert.equal(readFileSync(d.policyFile, 'utf8'), policyWith('AF41'));
    assert.equal(await dscpFor(agent), '34');
    assert.equal((await call(d.admin, 'GET', '/v1/policy/versions')).status, r.status, 'listing is refused too');
    agent.sock.destroy();
  });
});

test('a text that checks but another part refuses (the kernel rules: more rules than the connection mark can number): the file is put back, the policy still runs, no version kept', async () => {
  requireRoot('the kernel rules install an nftables table');
  requireTools('nft');
  const one = 'rules:\n  - { name: a, match: { proto: tcp, remote_port: 443 }, action: { dscp: AF41 } }\n';
  const two = `${one}  - { name: b, match: { proto: tcp, remote_port: 8443 }, action: { dscp: EF } }\n`;
  // one bit of the mark for the rule number: one kernel rule at most
  await withDaemon(one, async (d) => {
    const before = await callJson<Running>(d.admin, 'GET', '/v1/policy');
    assert.deepEqual(await callJson(d.admin, 'POST', '/v1/policy/check', { text: two }), { ok: true, rules: 2, problems: [] }, 'the text itself is good');
    const r = await call(d.admin, 'POST', '/v1/policy/apply', 30_000, { text: two });
    const e = (JSON.parse(r.body) as ApiError).error;
    assert.equal(r.status, 400, r.body);
    assert.equal(e.code, 'QOS_ERR_RULES_INVALID');
    assert.match(e.message, /at most 1 rules/);
    assert.equal(readFileSync(d.policyFile, 'utf8'), one, 'the previous text is back in the file');
    const p = await callJson<Running & { last_error: { message: string } }>(d.admin, 'GET', '/v1/policy');
    assert.equal(p.text, one);
    assert.equal(p.file_differs, false);
    assert.match(p.last_error.message, /at most 1 rules/);
    assert.equal(p.generation, before.generation, 'the running policy was not replaced');
    assert.deepEqual((await callJson<{ versions: unknown[] }>(d.admin, 'GET', '/v1/policy/versions')).versions, []);
  }, ['--kernel', 'on', '--ct-mask', '0x1ff', '--ct-generation-bits', '8', '--tc', 'off', '--nice', 'keep']);
});
