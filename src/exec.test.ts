/* Running programs (exec.ts) with real programs: exit statuses, stderr in the error, a missing
 * program, stdin, timeouts, the output bound, and long-running children stopped or waited for. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from './errors.js';
import { inNetns, installed, run, runSync, start } from './exec.js';

const isQos = (code: string, re: RegExp) => (e: unknown) => e instanceof QosError && e.code === code && re.test(e.message);

test('a program that succeeds gives its output and status', async () => {
  const r = await run(['sh', '-c', 'echo out; echo err >&2']);
  assert.deepEqual([r.stdout, r.stderr, r.code, r.signal], ['out\n', 'err\n', 0, null]);
  assert.equal(runSync(['sh', '-c', 'echo out']).stdout, 'out\n');
});

test('a failing program is an error naming it, its exit status and its stderr, with the caller\'s code', async () => {
  const argv = ['sh', '-c', 'echo first >&2; echo second >&2; exit 3'];
  await assert.rejects(run(argv), isQos('QOS_ERR_ENVIRONMENT', /^sh -c .* failed \(exit 3\): first \| second$/));
  await assert.rejects(run(argv, { code: 'QOS_ERR_KERNEL' }), isQos('QOS_ERR_KERNEL', /exit 3/));
  assert.throws(() => runSync(argv, { code: 'QOS_ERR_BENCH' }), isQos('QOS_ERR_BENCH', /failed \(exit 3\): first \| second$/));
});

test('exit statuses given as ok, or any, are results, not errors', async () => {
  assert.equal((await run(['sh', '-c', 'exit 3'], { ok: [0, 3] })).code, 3);
  assert.equal(runSync(['sh', '-c', 'exit 9'], { ok: 'any' }).code, 9);
  assert.equal((await run(['sh', '-c', 'kill -KILL $$'], { ok: 'any' })).signal, 'SIGKILL');
  await assert.rejects(run(['sh', '-c', 'kill -KILL $$']), isQos('QOS_ERR_ENVIRONMENT', /killed by SIGKILL/));
});

test('a program that is not installed says so, naming it and its package', async () => {
  await assert.rejects(run(['qosd-no-such-program', 'x'], { pkg: 'qosd-pkg' }), isQos('QOS_ERR_ENVIRONMENT', /^qosd-no-such-program is not installed \(not found on PATH\): install the Debian package qosd-pkg$/));
  assert.throws(() => runSync(['qosd-no-such-program']), isQos('QOS_ERR_ENVIRONMENT', /^qosd-no-such-program is not installed/));
  const c = start(['qosd-no-such-program']);
  await assert.rejects(c.wait(), /qosd-no-such-program is not installed/);
  assert.equal(installed('qosd-no-such-program'), false);
  assert.equal(installed('sh'), true);
  assert.equal(installed('/bin/sh'), true);
});

test('input goes to the program\'s stdin', async () => {
  assert.equal((await run(['cat'], { input: 'hello\n' })).stdout, 'hello\n');
  assert.equal(runSync(['cat'], { input: Buffer.from('bytes') }).stdout, 'bytes');
});

test('env and cwd are the program\'s', async () => {
  const r = await run(['sh', '-c', 'echo "$QOSD_X" && pwd'], { env: { PATH: process.env.PATH, QOSD_X: 'x1' }, cwd: '/' });
  assert.equal(r.stdout, 'x1\n/\n');
});

test('a program past its time is killed and the error says it timed out', async () => {
  await assert.rejects(run(['sleep', '60'], { timeoutMs: 200 }), isQos('QOS_ERR_ENVIRONMENT', /^sleep 60 failed \(timed out after 200 ms\)$/));
  // one that ignores SIGTERM is killed all the same
  await assert.rejects(run(['sh', '-c', 'trap "" TERM; while :; do sleep 1; done'], { timeoutMs: 200 }), /timed out after 200 ms/);
  assert.throws(() => runSync(['sleep', '60'], { timeoutMs: 200 }), /timed out after 200 ms/);
});

test('output past the bound stops the program', async () => {
  await assert.rejects(run(['sh', '-c', 'yes'], { maxOutput: 1000 }), isQos('QOS_ERR_ENVIRONMENT', /printed more than 1000 bytes/));
  assert.throws(() => runSync(['sh', '-c', 'yes'], { maxOutput: 1000 }), /printed more than 1000 bytes/);
});

test('inNetns wraps argv in ip netns exec', () => {
  assert.deepEqual(inNetns('ns1', ['ss', '-t']), ['ip', 'netns', 'exec', 'ns1', 'ss', '-t']);
});

test('a started program is waited for: its status, or an error with its stderr', async () => {
  assert.deepEqual(await start(['sh', '-c', 'exit 0']).wait(), { code: 0, signal: null });
  await assert.rejects(start(['sh', '-c', 'echo broken >&2; exit 4'], { code: 'QOS_ERR_CAPTURE' }).wait(), isQos('QOS_ERR_CAPTURE', /^sh failed \(exit 4\): broken$/));
  const slow = start(['sleep', '60'], { name: 'the generator' });
  await assert.rejects(slow.wait([0], 200), isQos('QOS_ERR_ENVIRONMENT', /^the generator failed \(timed out after 200 ms\)$/));
  assert.equal((await slow.exited).signal, 'SIGKILL');
  const reporter = start(['sh', '-c', 'echo one; echo two'], { keepStdout: true });
  await reporter.wait();
  assert.equal(reporter.stdout, 'one\ntwo\n');
});

test('stop() signals a started program and resolves once it ended; SIGKILL if it ignores the signal', async () => {
  const c = start(['sleep', '60']);
  assert.equal(c.running, true);
  assert.deepEqual(await c.stop(), { code: null, signal: 'SIGTERM' });
  assert.equal(c.running, false);
  const stubborn = start(['sh', '-c', 'trap "" TERM; echo trapped; while :; do sleep 1; done']);
  await stubborn.until('trapped', 30_000, 'stdout');
  assert.equal((await stubborn.stop('SIGTERM', 300)).signal, 'SIGKILL');
});

test('until() waits for a line of output, and fails with the stderr of a program that ended first', async () => {
  const c = start(['sh', '-c', 'echo warming >&2; sleep 0.1; echo "listening on x" >&2; exec sleep 60']);
  await c.until('listening on', 30_000);
  assert.match(c.stderr, /warming\nlistening on x/);
  c.kill();
  await c.exited;
  await assert.rejects(start(['sh', '-c', 'echo no device >&2; exit 1'], { name: 'tcpdump' }).until('listening on', 30_000), isQos('QOS_ERR_ENVIRONMENT', /^tcpdump failed \(exit 1\): no device$/));
});

test('a started program keeps only the end of a long stderr', async () => {
  const c = start(['sh', '-c', 'head -c 200000 /dev/zero | tr "\\0" a >&2; echo END >&2; exit 1']);
  await assert.rejects(c.wait());
  assert.ok(c.stderr.length <= 64 << 10);
  assert.match(c.stderr, /aEND\n$/);
});
