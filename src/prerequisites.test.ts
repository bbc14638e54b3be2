/* A test that cannot run fails, naming the Debian package it needs: never a silent skip. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MissingPrerequisite, requireTools } from './prerequisites.js';

const DIST = dirname(fileURLToPath(import.meta.url));

test('a missing program is named with its Debian package', () => {
  assert.throws(() => requireTools('sh', 'qosd-no-such-tool'), (e: Error) => e instanceof MissingPrerequisite && /`qosd-no-such-tool`/.test(e.message));
  const old = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    assert.throws(() => requireTools('tshark'), /install the Debian package tshark/);
  } finally {
    process.env.PATH = old;
  }
});

test('an end-to-end test file run where its tools are missing fails, naming the package; nothing is skipped', () => {
  // a run of its own, not a part of this one (the runner tells its children by this variable)
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const r = spawnSync(process.execPath, ['--test', join(DIST, 'e2e/resolver.test.js')], { encoding: 'utf8', env: { ...env, PATH: '/nonexistent' }, timeout: 60_000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stdout + r.stderr, /install the Debian package iproute2/);
  assert.match(r.stdout, /^# skipped 0$/m);
  assert.match(r.stdout, /^# fail [1-9]/m);
});
