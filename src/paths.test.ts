/* Which policy `qos daemon` runs when given no --policy: /etc/qosd/policy.yaml if anything is
 * there, else the built-in policy; --policy always wins. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QosError } from './errors.js';
import { choosePolicy, DEFAULT_POLICY_FILE } from './paths.js';

function inDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-paths-'));
  try { fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

test('the default policy file is /etc/qosd/policy.yaml', () => {
  assert.equal(DEFAULT_POLICY_FILE, '/etc/qosd/policy.yaml');
});

test('no --policy and no default file: the built-in policy; the file once there: the file', () => {
  inDir((dir) => {
    const file = join(dir, 'policy.yaml');
    assert.deepEqual(choosePolicy(undefined, file), { file: null, origin: 'built-in' });
    writeFileSync(file, 'rules: []\n');
    assert.deepEqual(choosePolicy(undefined, file), { file, origin: 'default' });
  });
});

test('--policy wins over the default file', () => {
  inDir((dir) => {
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, 'rules: []\n');
    assert.deepEqual(choosePolicy('/srv/p.yaml', file), { file: '/srv/p.yaml', origin: 'option' });
  });
});

test('a link at the default path is chosen, not passed over for the built-in policy (reading it refuses it)', () => {
  inDir((dir) => {
    const file = join(dir, 'policy.yaml');
    symlinkSync(join(dir, 'elsewhere.yaml'), file);
    assert.deepEqual(choosePolicy(undefined, file), { file, origin: 'default' });
  });
});

test('a default path that cannot be looked at is an error naming it, not the built-in policy', () => {
  inDir((dir) => {
    writeFileSync(join(dir, 'qosd'), 'a file where a directory should be\n');
    const file = join(dir, 'qosd', 'policy.yaml');
    assert.throws(() => choosePolicy(undefined, file), (e: unknown) => e instanceof QosError && e.code === 'QOS_ERR_POLICY_IO' && e.message.includes(file));
  });
});
