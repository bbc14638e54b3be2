/* RSVP messages: the common header and checksum (a hand-worked vector), the round trip of each
 * message type over IPv4 and IPv6, the order RFC 2205 section 3.1 gives (strict on encode,
 * lenient on decode), the unknown-class rules of section 3.10, INTEGRITY's verify-and-reject,
 * and hostile bytes: truncation, lying lengths and random damage end in a QosError or a
 * message, never another exception. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from '../errors.js';
import { inetChecksum } from '../inet-checksum.js';
import { assertRoundTrip } from '../protocol/roundtrip.js';
import { checkOrder, decode, decodeSkippingUnknown, encode, type RsvpMessage, rsvpMessage, verifyIntegrity } from './message.js';
import { UnknownObjectError } from './object.js';
import { hop4, integrityZero, SAMPLE_MESSAGES_V4, SAMPLE_MESSAGES_V6, session4, tmpl4, tspec } from './samples.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const ALL = [...SAMPLE_MESSAGES_V4, ...SAMPLE_MESSAGES_V6];

function fixChecksum(b: Uint8Array): Uint8Array {
  b[2] = 0; b[3] = 0;
  const len = (b[6]! << 8) | b[7]!;
  const s = inetChecksum(b.subarray(0, Math.min(len, b.length)));
  b[2] = s >> 8; b[3] = s & 0xff;
  return b;
}

function throwsRsvp(f: () => unknown, re: RegExp, code = 'QOS_ERR_RSVP_DECODE'): void {
  assert.throws(f, (e: unknown) => (e instanceof QosError && e.code === code && re.test(e.message)) || assert.fail(`got ${String(e)}`));
}

test('a PathTear worked out by hand: common header, objects, checksum', () => {
  const m: RsvpMessage = { type: 'PathTear', flags: 0, sendTtl: 64, objects: [session4, { ...hop4, lih: 0 }] };
  // version 1 flags 0, type 5, checksum, send TTL 64, reserved, length 32. The checksum: the
  // 16-bit words sum to 0x1fcd6, folded 0xfcd7, complemented 0x0328 (RFC 2205 section 3.1.1).
  const want = '1005' + '0328' + '40' + '00' + '0020' + '000c0101c000020a1100138c' + '000c0301c000020100000000';
  assert.equal(hex(encode(m)), want);
  // LIH 3 adds 3 to the sum: the checksum is 3 less
  assert.equal(hex(encode({ ...m, objects: [session4, hop4] })), want.replace('0328', '0325').replace(/00000000$/, '00000003'));
  assert.deepEqual(decode(bytes(want.replace('0328', '0000'))), m, 'a zero checksum means none was sent');
});

test('every message type round-trips over IPv4 and IPv6', () => {
  assertRoundTrip(rsvpMessage, ALL);
  for (const m of ALL) assert.deepEqual(checkOrder(m), [], m.type);
});

test('a wrong checksum is a checksum error with both values', () => {
  const b = Uint8Array.from(encode(SAMPLE_MESSAGES_V4[4]!));
  const good = (b[2]! << 8) | b[3]!;
  b[2] = b[2]! ^ 0x01;
  const bad = (b[2]! << 8) | b[3]!;
  const h4 = (n: number) => n.toString(16).padStart(4, '0');
  throwsRsvp(() => decode(b), new RegExp(`^RSVP PathTear, byte 2: checksum 0x${h4(bad)}, the message's is 0x${h4(good)}$`), 'QOS_ERR_RSVP_CHECKSUM');
  const d = Uint8Array.from(encode(SAMPLE_MESSAGES_V4[4]!)); d[20] = d[20]! ^ 0xff; // damage an object, not the checksum
  throwsRsvp(() => decode(d), /checksum/, 'QOS_ERR_RSVP_CHECKSUM');
});

test('the common header: version, type and length are checked', () => {
  const b = encode(SAMPLE_MESSAGES_V4[4]!);
  const with_ = (i: number, v: number) => { const c = Uint8Array.from(b); c[i] = v; return fixChecksum(c); };
  throwsRsvp(() => decode(with_(0, 0x20)), /^RSVP common header, byte 0: version 2 \(RSVP is 1\)$/);
  throwsRsvp(() => decode(with_(1, 13)), /^RSVP common header, byte 1: message type 13 /);
  throwsRsvp(() => decode(b.subarray(0, 5)), /^RSVP common header, byte 0: needs 8 bytes, 5 there$/);
  throwsRsvp(() => decode(Uint8Array.from(b).subarray(0, b.length - 4)), /message length \d+, only \d+ bytes there/);
  throwsRsvp(() => decode(with_(7, b[7]! + 2)), /message length \d+ \(a multiple of 4, at least 8\)/);
});

test('encode refuses objects out of RFC 2205 order; decode accepts them and says so', () => {
  const m: RsvpMessage = { type: 'Path', flags: 0, sendTtl: 64, objects: [hop4, session4, { kind: 'TIME_VALUES', refreshMs: 30000 }, tmpl4, tspec] };
  throwsRsvp(() => encode(m), /^RSVP Path: Path objects in the order RSVP_HOP SESSION TIME_VALUES SENDER_TEMPLATE SENDER_TSPEC do not follow RFC 2205 section 3.1/, 'QOS_ERR_RSVP_INVALID');
  throwsRsvp(() => encode({ ...m, objects: [session4, hop4] }), /Path objects in the order SESSION RSVP_HOP do not follow/, 'QOS_ERR_RSVP_INVALID');
  // bytes in another order decode, and checkOrder names the problem
  const ordered = encode({ ...m, objects: [session4, hop4, { kind: 'TIME_VALUES', refreshMs: 30000 }, tmpl4, tspec] });
  const swapped = Uint8Array.from(ordered);
  swapped.set(ordered.subarray(20, 32), 8); swapped.set(ordered.subarray(8, 20), 20);
  const d = decode(fixChecksum(swapped));
  assert.deepEqual(d.objects.map((o) => o.kind), ['RSVP_HOP', 'SESSION', 'TIME_VALUES', 'SENDER_TEMPLATE', 'SENDER_TSPEC']);
  assert.equal(checkOrder(d).length, 1);
  // FF flow descriptors: the first FILTER_SPEC needs a FLOWSPEC before it
  const resv = SAMPLE_MESSAGES_V4[1]!;
  throwsRsvp(() => encode({ ...resv, objects: resv.objects.filter((o) => o.kind !== 'FLOWSPEC') }), /Resv objects in the order/, 'QOS_ERR_RSVP_INVALID');
});

test('unknown classes: 0bbbbbbb rejects the message, 10bbbbbb is dropped, 11bbbbbb is kept to forward', () => {
  const base = encode(SAMPLE_MESSAGES_V4[4]!);
  const withObject = (cls: number) => {
    const b = new Uint8Array(base.length + 8);
    b.set(base); b.set([0x00, 0x08, cls, 0x01, 0xde, 0xad, 0xbe, 0xef], base.length);
    b[6] = b.length >> 8; b[7] = b.length & 0xff;
    return fixChecksum(b);
  };
  throwsRsvp(() => decode(withObject(42)), new RegExp(`^RSVP object of class 42, byte ${base.length + 2}: unknown class-num 42 \\(0bbbbbbb: the message is rejected`));
  assert.deepEqual(decode(withObject(150)), SAMPLE_MESSAGES_V4[4], 'class 150 is ignored silently');
  const kept = decode(withObject(200));
  assert.deepEqual(kept.objects.at(-1), { kind: 'UNKNOWN', classNum: 200, cType: 1, body: 'deadbeef' });
  assert.deepEqual(encode(kept), withObject(200), 'forwarded unchanged');
  // a NULL object (class 0) is skipped wherever it is
  assert.deepEqual(decode(withObject(0)), SAMPLE_MESSAGES_V4[4]);
  throwsRsvp(() => encode({ ...kept, objects: [...kept.objects, { kind: 'UNKNOWN', classNum: 100, cType: 1, body: '' }] }), /class-num 100 \(192 to 255/, 'QOS_ERR_RSVP_INVALID');
});

test('decodeSkippingUnknown: the rest of a message rejected for an unknown class (13) or c-type (14), and which one', () => {
  const path = encode(SAMPLE_MESSAGES_V4[0]!);
  assert.equal(SAMPLE_MESSAGES_V4[0]!.type, 'Path');
  const withObject = (cls: number, cType: number) => {
    const b = new Uint8Array(path.length + 8);
    b.set(path); b.set([0x00, 0x08, cls, cType, 0xde, 0xad, 0xbe, 0xef], path.length);
    b[6] = b.length >> 8; b[7] = b.length & 0xff;
    return fixChecksum(b);
  };
  for (const [cls, cType, code, re] of [[42, 1, 13, /unknown class-num 42/], [5, 9, 14, /^RSVP TIME_VALUES, byte \d+: unknown c-type 9$/]] as const) {
    const bytes = withObject(cls, cType);
    throwsRsvp(() => decode(bytes), re); // decode stays strict, its message unchanged
    assert.throws(() => decode(bytes), (e: unknown) => e instanceof UnknownObjectError && e.classNum === cls && e.cType === cType && e.errorCode === code);
    const { message, unknown } = decodeSkippingUnknown(bytes);
    assert.deepEqual(message, SAMPLE_MESSAGES_V4[0], 'everything else is read');
    assert.deepEqual(unknown.map((u) => [u.classNum, u.cType, u.errorCode]), [[cls, cType, code]]);
  }
  assert.deepEqual(decodeSkippingUnknown(path), { message: SAMPLE_MESSAGES_V4[0], unknown: [] });
  const cut = withObject(42, 1).slice(0, path.length + 4);
  cut[6] = cut.length >> 8; cut[7] = cut.length & 0xff;
  throwsRsvp(() => decodeSkippingUnknown(fixChecksum(cut)), /object length 8 runs past the end/, 'QOS_ERR_RSVP_DECODE'); // anything else still throws
});

test('INTEGRITY: a signed message verifies with its key; another key, a changed byte or no key is rejected', () => {
  const key = Buffer.from('a shared secret of the two hops');
  const m: RsvpMessage = { ...SAMPLE_MESSAGES_V4[0]!, objects: [integrityZero, ...SAMPLE_MESSAGES_V4[0]!.objects] };
  const signed = encode(m, key);
  const back = decode(signed);
  assert.equal((back.objects[0] as { digest: string }).digest.length, 32);
  assert.notEqual((back.objects[0] as { digest: string }).digest, '00'.repeat(16));
  assert.deepEqual(encode(back), signed, 'the digest round-trips as bytes');
  const keys = (id: string) => (id === '0000c0000201' ? key : undefined);
  assert.deepEqual(verifyIntegrity(signed, keys), { keyId: '0000c0000201', sequence: '1732842000000001' });
  throwsRsvp(() => verifyIntegrity(signed, () => Buffer.from('another key')), /^RSVP INTEGRITY, byte 28: keyed digest [0-9a-f]{32} is not the message's \(key id 0000c0000201\)$/, 'QOS_ERR_RSVP_INTEGRITY');
  const changed = Uint8Array.from(signed); changed[55] = changed[55]! ^ 1; fixChecksum(changed); // the SESSION port, after the 36-byte INTEGRITY
  decode(changed); // the checksum is right again: only the digest can tell
  throwsRsvp(() => verifyIntegrity(changed, keys), /keyed digest/, 'QOS_ERR_RSVP_INTEGRITY');
  throwsRsvp(() => verifyIntegrity(signed, () => undefined), /unknown key id 0000c0000201/, 'QOS_ERR_RSVP_INTEGRITY');
  throwsRsvp(() => verifyIntegrity(encode(SAMPLE_MESSAGES_V4[0]!), keys), /no INTEGRITY object/, 'QOS_ERR_RSVP_INTEGRITY');
  // hostile bytes: cut short or damaged, verification ends in a QosError too
  for (let n = 0; n < signed.length; n++) assert.throws(() => verifyIntegrity(signed.subarray(0, n), keys), QosError, `cut to ${n}`);
  const lying = Uint8Array.from(signed); lying[9] = 24; fixChecksum(lying); // INTEGRITY's length cut: the rest is garbage
  throwsRsvp(() => verifyIntegrity(lying, keys), /^RSVP .*, byte \d+: /, 'QOS_ERR_RSVP_DECODE');
  // a digest that is not HMAC-MD5's 16 bytes is refused
  const short = encode({ ...m, objects: [{ ...integrityZero, digest: '00000000' }, ...m.objects.slice(1)] }, key);
  throwsRsvp(() => verifyIntegrity(short, keys), /^RSVP INTEGRITY, byte 28: digest of 4 bytes, HMAC-MD5 gives 16$/, 'QOS_ERR_RSVP_INTEGRITY');
});

test('hostile: every truncation and every lying object length is a QosError', () => {
  for (const m of ALL) {
    const b = encode(m);
    for (let n = 0; n < b.length; n++) assert.throws(() => decode(b.subarray(0, n)), QosError, `${m.type} cut to ${n}`);
    // the header's length shortened to cut an object, checksum recomputed
    for (let n = 8; n < b.length; n += 4) {
      const c = Uint8Array.from(b.subarray(0, n)); c[6] = n >> 8; c[7] = n & 0xff;
      let r: unknown;
      try { r = decode(fixChecksum(c)); } catch (e) { r = e; }
      assert.ok(r instanceof QosError || (typeof r === 'object' && r !== null && 'objects' in r), `${m.type} with length ${n}: ${String(r)}`);
    }
    // each object's length field set to lies
    for (let at = 8; at < b.length;) {
      const olen = (b[at]! << 8) | b[at + 1]!;
      for (const lie of [0, 2, 4, olen - 4, olen + 4, olen + 1, 0xfffc]) {
        if (lie === olen || lie < 0) continue;
        const c = Uint8Array.from(b); c[at] = lie >> 8; c[at + 1] = lie & 0xff;
        assert.throws(() => decode(fixChecksum(c)), QosError, `${m.type} object at ${at} with length ${lie}`);
      }
      at += olen;
    }
  }
});

test('hostile: random damage gives a QosError or a message, never another exception', () => {
  let seed = 20;
  const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
  let errors = 0, decoded = 0;
  for (let i = 0; i < 4000; i++) {
    const m = ALL[i % ALL.length]!;
    const b = Uint8Array.from(encode(m));
    const hits = 1 + Math.floor(rand() * 4);
    for (let k = 0; k < hits; k++) b[8 + Math.floor(rand() * (b.length - 8))] = Math.floor(rand() * 256);
    if (i % 2) fixChecksum(b); // half of them get past the checksum to the objects
    try { decode(b); decoded++; } catch (e) {
      if (!(e instanceof QosError)) throw e;
      assert.match(e.message, /^RSVP .*byte \d+: /);
      errors++;
    }
  }
  assert.ok(errors > 1000 && decoded > 50, `errors ${errors}, decoded ${decoded}`);
});
