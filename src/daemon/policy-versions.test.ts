/* The policy versions an apply keeps (policy-versions.ts), on their own: the bound (the oldest
 * go past it, files and index alike, and a new instance reading the directory sees the same),
 * numbering that goes on after a restart, the same text not kept twice, a discarded stage
 * leaving nothing. The daemon's routes over them: policy-api.test.ts. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_VERSIONS, PolicyVersions } from './policy-versions.js';

const who = { by: 'api', uid: 0, source: '/etc/qosd/policy.yaml' };
const text = (i: number) => `rules: [] # ${i}\n`;

test(`past ${MAX_VERSIONS} the oldest versions go, from the directory too; another instance reads the same`, async () => {
  const root = mkdtempSync(join(tmpdir(), 'qosd-versions-'));
  try {
    const dir = join(root, 'policy-versions');
    const v = new PolicyVersions(dir);
    for (let i = 1; i <= MAX_VERSIONS + 2; i++) {
      const s = v.stage(text(i), who);
      assert.equal(s.version, i);
      s.commit();
    }
    const list = v.list();
    assert.equal(list.length, MAX_VERSIONS);
    assert.deepEqual([list[0]!.version, list.at(-1)!.version], [MAX_VERSIONS + 2, 3], 'newest first; 1 and 2 dropped');
    assert.equal(readdirSync(dir).length, MAX_VERSIONS);
    assert.equal((await v.get(3)).text, text(3));
    await assert.rejects(v.get(2), (e: Error & { code?: string }) => e.code === 'QOS_ERR_NOT_FOUND' && /no policy version 2/.test(e.message));
    const again = new PolicyVersions(dir);
    assert.deepEqual(again.list(), list);
    assert.equal(again.stage(text(99), who).version, MAX_VERSIONS + 3, 'numbering goes on');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the same text as the newest is not kept twice; a discarded stage leaves no file', () => {
  const root = mkdtempSync(join(tmpdir(), 'qosd-versions-'));
  try {
    const dir = join(root, 'policy-versions');
    const v = new PolicyVersions(dir, 3);
    v.stage(text(1), who).commit();
    const same = v.stage(text(1), who);
    assert.equal(same.version, 1);
    same.commit();
    assert.equal(v.list().length, 1);
    const s = v.stage(text(2), who);
    s.discard();
    assert.deepEqual(readdirSync(dir), ['000001.policy']);
    for (let i = 2; i <= 5; i++) v.stage(text(i), who).commit();
    assert.deepEqual(v.list().map((m) => m.version), [5, 4, 3], 'a bound of 3 keeps 3');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
