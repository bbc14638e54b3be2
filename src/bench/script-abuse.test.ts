/* The script-abuse scenario runs end to end and reports every figure (tiny sizes: this checks
 * the function `qos bench hostile` calls, not the speed; the figures are judged by running the
 * benchmark). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scriptAbuseP99 } from './script-abuse.js';

for (const lang of ['js', 'tcl'] as const) {
  test(`scriptAbuseP99 (${lang}) measures a user beside another abusing the script, and alone`, { timeout: 120_000 }, async () => {
    const r = await scriptAbuseP99({ lang, durationMs: 300, abuserConns: 4 });
    assert.ok(r.requests > 0 && r.abuser_requests > 0, JSON.stringify(r));
    for (const k of ['p50_ms', 'p99_ms', 'max_ms', 'alone_p50_ms', 'alone_p99_ms', 'script_decided_ratio'] as const) assert.ok(r[k] >= 0, k);
    assert.ok(r.p50_ms <= r.p99_ms && r.p99_ms <= r.max_ms);
    assert.ok(Object.values(r.results).reduce((a, b) => a + b, 0) > 0, 'the script was called');
  });
}
