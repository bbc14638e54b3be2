/* The login token and its file: random, mode 0600, never written through a link, read back by
 * `qos dashboard` with errors that name the file. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { QosError } from '../errors.js';
import { newToken, readToken, sameToken, tokenFileFor, writeToken } from './token.js';

test('the token is 32 random bytes in hex, a new one each time', () => {
  const a = newToken();
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.notEqual(a, newToken());
});

test('the token file is beside the admin socket, mode 0600, and read back as written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-token-'));
  try {
    const file = tokenFileFor(join(dir, 'admin.sock'));
    assert.equal(file, join(dir, 'dashboard.token'));
    const t = newToken();
    writeFileSync(file, 'old', { mode: 0o644 });
    writeToken(file, t);
    assert.equal(statSync(file).mode & 0o777, 0o600, 'a file that was there with another mode is replaced at 0600');
    assert.equal(readToken(file), t);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('a symbolic link at the token file is refused, and what it points to is left alone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-token-'));
  try {
    const target = join(dir, 'victim');
    writeFileSync(target, 'keep');
    symlinkSync(target, join(dir, 'dashboard.token'));
    assert.throws(() => writeToken(join(dir, 'dashboard.token'), newToken()), (e: QosError) => e.code === 'QOS_ERR_UNSAFE_PATH');
    assert.equal(readFileSync(target, 'utf8'), 'keep');
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('reading a missing or malformed token file says which file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-token-'));
  try {
    const file = join(dir, 'dashboard.token');
    assert.throws(() => readToken(file), (e: QosError) => e.code === 'QOS_ERR_NOT_FOUND' && e.message.includes(file));
    writeFileSync(file, 'not a token\n');
    chmodSync(file, 0o600);
    assert.throws(() => readToken(file), (e: QosError) => e.code === 'QOS_ERR_ENVIRONMENT' && e.message.includes(file));
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('sameToken is true only for the very token', () => {
  const t = newToken();
  assert.ok(sameToken(t, t));
  assert.ok(!sameToken(t.slice(0, -1), t));
  assert.ok(!sameToken(`${t}0`, t));
  assert.ok(!sameToken('', t));
  assert.ok(!sameToken(t.toUpperCase(), t));
});
