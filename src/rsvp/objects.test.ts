/* Each RSVP object codec: the round trip over IPv4 and IPv6 samples, byte vectors worked out
 * from RFC 2205 appendix A and RFC 2210, and hostile bytes (truncated, lying lengths, unknown
 * c-types, reserved values) that end in a QosError naming the object and the byte. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from '../errors.js';
import { assertRoundTrip } from '../protocol/roundtrip.js';
import { adspec } from './adspec.js';
import { errorSpec } from './error-spec.js';
import { filterSpec, senderTemplate } from './filter-spec.js';
import { flowspec } from './flowspec.js';
import { hop } from './hop.js';
import { integrity } from './integrity.js';
import type { ObjectCodec } from './object.js';
import { objectLength, type RsvpObject, readObject, writeObject } from './objects.js';
import { policyData } from './policy-data.js';
import { resvConfirm } from './resv-confirm.js';
import { SAMPLE_OBJECTS, adspecBreak, adspecFull, flowCL, flowGS, policy, session4, session6, tspec } from './samples.js';
import { scope } from './scope.js';
import { session } from './session.js';
import { style } from './style.js';
import { timeValues } from './time-values.js';
import { senderTspec } from './tspec.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const CODECS: Record<string, ObjectCodec<never>> = {
  SESSION: session, RSVP_HOP: hop, TIME_VALUES: timeValues, STYLE: style, FILTER_SPEC: filterSpec, SENDER_TEMPLATE: senderTemplate,
  SENDER_TSPEC: senderTspec, FLOWSPEC: flowspec, ADSPEC: adspec, ERROR_SPEC: errorSpec, SCOPE: scope, RESV_CONFIRM: resvConfirm,
  INTEGRITY: integrity, POLICY_DATA: policyData,
} as never;
const codecFor = (o: RsvpObject) => CODECS[o.kind] as unknown as ObjectCodec<RsvpObject>;

function throwsRsvp(f: () => unknown, re: RegExp, code = 'QOS_ERR_RSVP_DECODE'): void {
  assert.throws(f, (e: unknown) => e instanceof QosError && e.code === code && re.test(e.message) ? true : assert.fail(`got ${String(e)}`));
}

test('every object round-trips, each c-type, IPv4 and IPv6', () => {
  for (const o of SAMPLE_OBJECTS) assertRoundTrip(codecFor(o), [o]);
  // the generic object reader and writer agree with each codec
  for (const o of SAMPLE_OBJECTS) {
    const buf = new Uint8Array(objectLength(o) + 4);
    assert.equal(writeObject(o, buf, 2), objectLength(o));
    assert.deepEqual(readObject(buf, 2, buf.length - 2), { value: o, length: objectLength(o) });
  }
});

test('SESSION, RSVP_HOP, STYLE, FILTER_SPEC, ERROR_SPEC, RESV_CONFIRM, SCOPE match the bytes of RFC 2205 appendix A', () => {
  // length 12, class 1, c-type 1; 192.0.2.10; protocol 17; flags 0; port 5004
  assert.equal(hex(session.encode(session4)), '000c0101' + 'c000020a' + '11' + '00' + '138c');
  // c-type 2: 16-byte address, then protocol 17, flags 1 (E_Police), port
  assert.equal(hex(session.encode(session6)), '00180102' + '20010db800000000000000000000000a' + '11' + '01' + '138c');
  assert.equal(hex(hop.encode({ kind: 'RSVP_HOP', address: '192.0.2.1', lih: 3 })), '000c0301c000020100000003');
  // option vectors: WF 10 001, FF 01 010, SE 10 010 (RFC 2205 A.7)
  assert.equal(hex(style.encode({ kind: 'STYLE', flags: 0, style: 'WF' })), '0008080100000011');
  assert.equal(hex(style.encode({ kind: 'STYLE', flags: 0, style: 'FF' })), '000808010000000a');
  assert.equal(hex(style.encode({ kind: 'STYLE', flags: 0, style: 'SE' })), '0008080100000012');
  // FILTER_SPEC c-type 1: address, 2 unused bytes, source port 40000
  assert.equal(hex(filterSpec.encode({ kind: 'FILTER_SPEC', source: '198.51.100.7', port: 40000 })), '000c0a01c633640700009c40');
  assert.equal(hex(senderTemplate.encode({ kind: 'SENDER_TEMPLATE', source: '198.51.100.7', port: 40000 })), '000c0b01c633640700009c40');
  // ERROR_SPEC: node, flags InPlace, code 1 (admission), value 2
  assert.equal(hex(errorSpec.encode({ kind: 'ERROR_SPEC', node: '192.0.2.1', flags: 1, code: 1, value: 2 })), '000c0601c000020101010002');
  assert.equal(hex(resvConfirm.encode({ kind: 'RESV_CONFIRM', receiver: '192.0.2.10' })), '00080f01c000020a');
  assert.equal(hex(scope.encode({ kind: 'SCOPE', senders: ['198.51.100.7', '203.0.113.9'] })), '000c0701c6336407cb007109');
  assert.equal(hex(timeValues.encode({ kind: 'TIME_VALUES', refreshMs: 30000 })), '0008050100007530');
});

test('SENDER_TSPEC and FLOWSPEC match RFC 2210 sections 3.1 and 3.2', () => {
  // r 10000 = 0x461c4000, b 400 = 0x43c80000, p +inf = 0x7f800000 (IEEE single); m 200, M 200 integers
  const bucket = '7f000005' + '461c4000' + '43c80000' + '7f800000' + '000000c8' + '000000c8';
  // version 0, overall length 7 words; service 1 (general), length 6
  assert.equal(hex(senderTspec.encode(tspec)), '00240c02' + '00000007' + '01000006' + bucket);
  // Controlled Load: service 5
  assert.equal(hex(flowspec.encode(flowCL)), '00240902' + '00000007' + '05000006' + bucket);
  // Guaranteed: service 2, 9 words; p 20000 = 0x469c4000; parameter 130: R 12500 = 0x46435000, S 1000
  assert.equal(hex(flowspec.encode(flowGS)), '00300902' + '0000000a' + '02000009' + '7f000005461c400043c80000469c4000000000c8000000c8' + '82000002' + '46435000' + '000003e8');
});

test('ADSPEC matches RFC 2210 section 3.3: general parameters, GS and CL fragments, break bits', () => {
  const general = '01000008' + '04000001' + '00000002' + '06000001' + '4b3ebc20' + '08000001' + '00000096' + '0a000001' + '000005dc';
  assert.equal(hex(adspec.encode(adspecFull)), '00540d02' + '00000013' + general
    + '02000008' + '85000001' + '00000190' + '86000001' + '00000064' + '87000001' + '000000c8' + '88000001' + '00000032' + '05000000');
  // break bits set, an empty GS fragment
  assert.equal(hex(adspec.encode(adspecBreak)), '00300d02' + '0000000a' + '01800008' + '0400000100000001' + '0600000147f42400' + '08000001ffffffff' + '0a00000100000500' + '02800000');
});

test('POLICY_DATA carries user and application identity (RFC 2750 framing, RFC 3182 elements)', () => {
  const b = policyData.encode(policy);
  // data offset 8, no options; AUTH_USER element, length 4 + (4+26 padded to 32) + (4+5 padded to 12)
  assert.equal(hex(b.subarray(0, 12)), `${(b.length).toString(16).padStart(4, '0')}0e01` + '00080000' + '0030' + '0002');
  assert.equal(Buffer.from(b.subarray(16, 42)).toString(), 'CN=alice,DC=example,DC=org');
  assert.equal(hex(b.subarray(12, 16)), '001e0101', 'attribute length 30 (not counting padding), POLICY_LOCATOR, ASCII_DN');
  assert.deepEqual(policyData.decode(b), policy);
  // an element whose length runs past the object, an attribute past its element
  throwsRsvp(() => policyData.decode(bytes('000c0e01 00080000 00080002')), /^RSVP POLICY_DATA, byte 8: policy element length 8 /);
  throwsRsvp(() => policyData.decode(bytes('00100e01 00080000 00080002 00090101')), /^RSVP POLICY_DATA, byte 12: identity attribute length 9 /);
  throwsRsvp(() => policyData.decode(bytes('000c0e01 00100000 00040002')), /^RSVP POLICY_DATA, byte 4: data offset 16 /);
});

test('a truncated object is a decode error naming the object and the byte', () => {
  for (const o of SAMPLE_OBJECTS) {
    const b = codecFor(o).encode(o);
    for (let n = 0; n < b.length; n++) {
      assert.throws(() => codecFor(o).decode(b.subarray(0, n)), (e: unknown) => e instanceof QosError && e.code === 'QOS_ERR_RSVP_DECODE' && /byte \d+/.test(e.message), `${o.kind} cut to ${n}`);
    }
  }
});

test('lying object lengths: too long, not a multiple of 4, shorter than the contents', () => {
  const b = session.encode(session4);
  const lie = (n: number) => { const c = Uint8Array.from(b); c[0] = n >> 8; c[1] = n & 0xff; return c; };
  throwsRsvp(() => session.decode(lie(16)), /^RSVP SESSION, byte 0: object length 16 runs past the end \(12 bytes left\)$/);
  throwsRsvp(() => session.decode(lie(10)), /^RSVP SESSION, byte 0: object length 10 \(RFC 2205 section 3.1.2: a multiple of 4, at least 4\)$/);
  throwsRsvp(() => session.decode(lie(8)), /^RSVP SESSION, byte 8: protocol needs 1 bytes, 0 left$/);
  throwsRsvp(() => session.decode(lie(0)), /object length 0/);
  // a longer object than its contents: the bytes left over are an error too
  const long = new Uint8Array(16); long.set(b); long[1] = 16;
  throwsRsvp(() => session.decode(long), /^RSVP SESSION, byte 12: 4 bytes left over after the last field/);
  // an IntServ overall length that disagrees with the object
  const t = Uint8Array.from(senderTspec.encode(tspec)); t[7] = 6;
  throwsRsvp(() => senderTspec.decode(t), /^RSVP SENDER_TSPEC, byte 6: overall length 6 words, the object holds 7$/);
  const f = Uint8Array.from(flowspec.encode(flowGS)); f[11] = 8;
  throwsRsvp(() => flowspec.decode(f), /^RSVP FLOWSPEC, byte 10: Guaranteed Service data length 8 words, expected 9$/);
});

test('unknown c-types, styles, services and negative floats are refused with their offset', () => {
  const s = Uint8Array.from(session.encode(session4)); s[3] = 3;
  throwsRsvp(() => session.decode(s), /^RSVP SESSION, byte 3: unknown c-type 3$/);
  throwsRsvp(() => style.decode(bytes('0008080100000019')), /^RSVP STYLE, byte 5: option vector 0x000019 is not WF/);
  const cl = Uint8Array.from(flowspec.encode(flowCL)); cl[8] = 3;
  throwsRsvp(() => flowspec.decode(cl), /^RSVP FLOWSPEC, byte 8: service 3 \(5 Controlled Load or 2 Guaranteed\)$/);
  const neg = Uint8Array.from(flowspec.encode(flowCL)); neg[16] = neg[16]! | 0x80;
  throwsRsvp(() => flowspec.decode(neg), /^RSVP FLOWSPEC, byte 16: token rate r is -10000/);
  throwsRsvp(() => session.decode(bytes('000c0301c000020100000003')), /^RSVP SESSION, byte 2: class-num 3, not 1$/);
});

test('values that cannot be encoded are refused, naming the object and field', () => {
  throwsRsvp(() => session.encode({ ...session4, port: 70000 }), /^RSVP SESSION: port is 70000, not an integer from 0 to 65535$/, 'QOS_ERR_RSVP_INVALID');
  throwsRsvp(() => session.encode({ ...session4, destination: '192.0.2.300' }), /destination "192.0.2.300" is not an IPv4 address/, 'QOS_ERR_RSVP_INVALID');
  throwsRsvp(() => senderTspec.encode({ ...tspec, r: 0.1 }), /token rate r is 0.1, which a 32-bit IEEE float cannot hold exactly/, 'QOS_ERR_RSVP_INVALID');
  throwsRsvp(() => scope.encode({ kind: 'SCOPE', senders: ['192.0.2.1', '2001:db8::1'] }), /sender 1 "2001:db8::1" is not of the first one's family/, 'QOS_ERR_RSVP_INVALID');
});

test('IPv6 addresses decode to RFC 5952 text', () => {
  const o = session.decode(session.encode({ ...session6, destination: '2001:DB8:0:0:0:0:0:A' }));
  assert.equal(o.destination, '2001:db8::a');
  assert.equal(hop.decode(hop.encode({ kind: 'RSVP_HOP', address: '::ffff:192.0.2.1', lih: 0 })).address, '::ffff:c000:201');
  assert.equal(hop.decode(hop.encode({ kind: 'RSVP_HOP', address: '1:0:0:2:0:0:0:3', lih: 0 })).address, '1:0:0:2::3');
});

test('hostile: randomly damaged objects decode to a QosError or to a value that encodes and decodes to itself', () => {
  let seed = 2205;
  const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
  let errors = 0, values = 0;
  for (let i = 0; i < 6000; i++) {
    const o = SAMPLE_OBJECTS[i % SAMPLE_OBJECTS.length]!;
    const c = codecFor(o);
    const b = Uint8Array.from(c.encode(o));
    const hits = 1 + Math.floor(rand() * 3);
    // mostly the body; now and then the header's length or c-type
    for (let k = 0; k < hits; k++) b[rand() < 0.15 ? Math.floor(rand() * 4) : 4 + Math.floor(rand() * (b.length - 4))] = Math.floor(rand() * 256);
    let v: RsvpObject;
    try { v = c.decode(b); } catch (e) {
      if (!(e instanceof QosError)) throw e;
      assert.match(e.message, /^RSVP .*, byte \d+: /);
      errors++;
      continue;
    }
    values++;
    assert.deepEqual(c.decode(c.encode(v)), v, `${o.kind} from ${hex(b)}`);
  }
  assert.ok(errors > 500 && values > 500, `errors ${errors}, values ${values}`);
});
