/* Errors in the CLI's reach are QosErrors, each with its code and so its exit status
 * (errors.ts): no source file throws a plain RangeError, which the CLI can only report as an
 * internal error with a stack trace (exit 70), as `qos characterize` once did for a whole run
 * over one flow of zero bytes. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { SRC, sources } from './source-files.js';

test('no source file throws a plain RangeError (tests aside)', () => {
  const offenders = sources().flatMap((f) => readFileSync(f, 'utf8').split('\n').flatMap((line, i) => (/new RangeError\(/.test(line) ? [`${relative(SRC, f)}:${i + 1}`] : [])));
  assert.deepEqual(offenders, [], 'throw a QosError with the code that says what went wrong');
});
