/* The admin API answers every error with the HTTP status of its code, from one table
 * (errors.ts httpStatusFor), whichever part of the daemon raised it. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call } from './admin-client.js';
import { httpStatusFor, QosError } from '../errors.js';
import { DaemonChild } from './child.js';

test('an error\'s HTTP status follows its code', () => {
  const s = (code: ConstructorParameters<typeof QosError>[0]) => httpStatusFor(new QosError(code, 'x'));
  assert.deepEqual([s('QOS_ERR_USAGE'), s('QOS_ERR_RULES_INVALID'), s('QOS_ERR_FORBIDDEN'), s('QOS_ERR_NOT_FOUND'), s('QOS_ERR_RULES_STALE'), s('QOS_ERR_ENVIRONMENT'), s('QOS_ERR_KERNEL'), s('QOS_ERR_INTERNAL')],
    [400, 400, 403, 404, 409, 503, 500, 500]);
  assert.equal(httpStatusFor(new Error('not ours')), 500);
});

test('the daemon\'s routes and the kernel rules\' routes answer errors by the same table', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-admin-err-'));
  const d = await new DaemonChild(dir, 'rules: []\n', ['--kernel', 'off', '--nice', 'keep']).start();
  try {
    const code = (r: { body: string }) => (JSON.parse(r.body) as { error: { code: string } }).error.code;
    const unknown = await call(d.admin, 'GET', '/v1/nope');
    assert.deepEqual([unknown.status, code(unknown)], [404, 'QOS_ERR_NOT_FOUND']);
    const bad = await call(d.admin, 'POST', '/v1/rules', 5000, { rule: { match: { remote_port: 70000 }, action: { dscp: 'EF' } } });
    assert.deepEqual([bad.status, code(bad)], [400, 'QOS_ERR_RULES_INVALID']);
    const stale = await call(d.admin, 'POST', '/v1/rules/enable', 5000, { revision: 999 });
    assert.deepEqual([stale.status, code(stale)], [409, 'QOS_ERR_RULES_STALE']);
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
