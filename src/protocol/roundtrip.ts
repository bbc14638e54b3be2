/* The round trip every codec test runs (STYLE.md "Wire formats"): a value encodes, decodes to
 * itself and encodes to the same bytes again; where the codec has encodingLength, it is the
 * number of bytes written; a binary codec with an offset decodes at one too. For the agent
 * protocol's codecs and the RSVP codec; a helper, not a test file, so tests import it. */

import assert from 'node:assert/strict';

export interface Codec<T, E extends string | Uint8Array = string | Uint8Array> {
  encode(v: T): E;
  decode(bytes: E, offset?: number): T;
  encodingLength?(v: T): number;
}

function byteLength(e: string | Uint8Array): number {
  return typeof e === 'string' ? Buffer.byteLength(e) : e.length;
}

/** Asserts the round trip for each value (the message names the value that failed). */
export function assertRoundTrip<T, E extends string | Uint8Array>(codec: Codec<T, E>, values: Iterable<T>): void {
  let i = 0;
  for (const v of values) {
    const what = `value ${i++}: ${JSON.stringify(v)?.slice(0, 200)}`;
    const bytes = codec.encode(v);
    const back = codec.decode(bytes);
    assert.deepEqual(back, v, `decode(encode(v)) is v, ${what}`);
    assert.deepEqual(codec.encode(back), bytes, `encode(decode(bytes)) is bytes, ${what}`);
    if (codec.encodingLength) assert.equal(codec.encodingLength(v), byteLength(bytes), `encodingLength is the bytes written, ${what}`);
    if (typeof bytes !== 'string' && codec.decode.length >= 2) {
      const at = new Uint8Array(bytes.length + 7).fill(0xa5);
      at.set(bytes, 3);
      assert.deepEqual(codec.decode(at as E, 3), v, `decodes at an offset, ${what}`);
    }
  }
}
