/* Quantities as people write them: each unit's factor, bare numbers in the caller's unit, and
 * text that is not a quantity refused with the text quoted. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDurationUs, parseRate, parseSize } from './units.js';

/** Each [text, expected] pair through the parser. */
function table<T>(parse: (text: string) => T, cases: [string, T][]): void {
  for (const [text, want] of cases) assert.equal(parse(text), want, text);
}

test('a rate is bytes per second: bits in powers of 1000, bytes, "/s" allowed', () => {
  table(parseRate, [['1000', 1000], ['1.5Mbit', 187_500], ['64kbit', 8000], ['8 bit', 1], ['200kB', 200_000], ['2MB/s', 2_000_000], ['1Gbit', 125_000_000], ['1e3 B', 1000]]);
});

test('a rate that is not one is refused, quoting it and naming the units', () => {
  for (const bad of ['', 'fast', '-1kbit', '1.5mbps', '1 Kbit', '10 MiB', '1..5Mbit']) {
    assert.throws(() => parseRate(bad), (e: Error & { code?: string }) => e.code === 'QOS_ERR_USAGE' && e.message.includes(`"${bad}"`) && /kbit/.test(e.message), bad);
  }
});

test('a size is bytes: kB in powers of 1000, KiB in powers of 1024', () => {
  table(parseSize, [['1500', 1500], ['1.5kB', 1500], ['64KiB', 65_536], ['1MiB', 1_048_576], ['2 MB', 2_000_000], ['200B', 200]]);
  for (const bad of ['1kbit', 'big', '1 kb', '-3']) assert.throws(() => parseSize(bad), /size ".*": a number of bytes/, bad);
});

test('a duration is microseconds; a bare number is in the unit the caller names', () => {
  table((t) => parseDurationUs(t, 'us'), [['20ms', 20_000], ['1.5s', 1_500_000], ['2m', 120_000_000], ['400', 400], ['250µs', 250]]);
  table((t) => parseDurationUs(t, 's'), [['250us', 250], ['30', 30_000_000]]);
  assert.throws(() => parseDurationUs('20 min', 'us'), /duration "20 min": a number of microseconds/);
  assert.throws(() => parseDurationUs('soon', 's'), /a number of seconds/);
});
