/* Sample RSVP objects and one message of each type, IPv4 and IPv6, for the codec's tests and
 * the tshark test: values a real session would carry (RFC 2205 appendix A, RFC 2210). */

import type { Adspec } from './adspec.js';
import type { ErrorSpec } from './error-spec.js';
import type { FilterSpec, SenderTemplate } from './filter-spec.js';
import type { Flowspec } from './flowspec.js';
import type { Hop } from './hop.js';
import type { Integrity } from './integrity.js';
import type { RsvpMessage } from './message.js';
import type { RsvpObject } from './objects.js';
import type { PolicyData } from './policy-data.js';
import type { Session } from './session.js';
import type { SenderTspec } from './tspec.js';

export const V4 = { receiver: '192.0.2.10', sender: '198.51.100.7', router: '192.0.2.1' };
export const V6 = { receiver: '2001:db8::a', sender: '2001:db8:1::7', router: 'fe80::1' };

export const session4: Session = { kind: 'SESSION', destination: V4.receiver, protocol: 17, flags: 0, port: 5004 };
export const session6: Session = { kind: 'SESSION', destination: V6.receiver, protocol: 17, flags: 1, port: 5004 };
export const hop4: Hop = { kind: 'RSVP_HOP', address: V4.router, lih: 3 };
export const hop6: Hop = { kind: 'RSVP_HOP', address: V6.router, lih: 7 };
export const tmpl4: SenderTemplate = { kind: 'SENDER_TEMPLATE', source: V4.sender, port: 40000 };
export const tmpl6: SenderTemplate = { kind: 'SENDER_TEMPLATE', source: V6.sender, port: 40000 };
export const filter4: FilterSpec = { kind: 'FILTER_SPEC', source: V4.sender, port: 40000 };
export const filter6: FilterSpec = { kind: 'FILTER_SPEC', source: V6.sender, port: 40000 };
/** G.711 over RTP: 200 bytes every 20 ms is 10000 bytes/s */
export const tspec: SenderTspec = { kind: 'SENDER_TSPEC', r: 10000, b: 400, p: Infinity, m: 200, M: 200 };
export const flowCL: Flowspec = { kind: 'FLOWSPEC', service: 'CL', tspec: { r: 10000, b: 400, p: Infinity, m: 200, M: 200 } };
export const flowGS: Flowspec = { kind: 'FLOWSPEC', service: 'GS', tspec: { r: 10000, b: 400, p: 20000, m: 200, M: 200 }, R: 12500, S: 1000 };
export const adspecFull: Adspec = {
  kind: 'ADSPEC',
  general: { breakBit: false, hopCount: 2, pathBw: 12_500_000, minLatency: 150, mtu: 1500 },
  gs: { breakBit: false, terms: { ctot: 400, dtot: 100, csum: 200, dsum: 50 } },
  cl: { breakBit: false },
};
export const adspecBreak: Adspec = {
  kind: 'ADSPEC',
  general: { breakBit: true, hopCount: 1, pathBw: 125_000, minLatency: 0xffffffff, mtu: 1280 },
  gs: { breakBit: true, terms: null },
};
export const error4: ErrorSpec = { kind: 'ERROR_SPEC', node: V4.router, flags: 0x01, code: 1, value: 2 };
export const error6: ErrorSpec = { kind: 'ERROR_SPEC', node: V6.router, flags: 0x02, code: 13, value: 0x8000 };
export const policy: PolicyData = {
  kind: 'POLICY_DATA',
  options: '',
  elements: [
    { pType: 2, attributes: [{ aType: 1, subType: 1, text: 'CN=alice,DC=example,DC=org' }, { aType: 2, subType: 1, text: 'alice' }] },
    { pType: 3, attributes: [{ aType: 1, subType: 1, text: 'APP=ffmpeg,VER=6.0' }, { aType: 2, subType: 1, text: '/usr/bin/ffmpeg' }] },
  ],
};
export const policyRaw: PolicyData = { kind: 'POLICY_DATA', options: '0008cf01', elements: [{ pType: 1, data: '00000007' }] };
export const integrityZero: Integrity = { kind: 'INTEGRITY', flags: 1, keyId: '0000c0000201', sequence: '1732842000000001', digest: '00'.repeat(16) };

/** One sample of every object codec, each c-type. */
export const SAMPLE_OBJECTS: RsvpObject[] = [
  session4, session6, hop4, hop6, { kind: 'TIME_VALUES', refreshMs: 30000 },
  { kind: 'STYLE', flags: 0, style: 'FF' }, { kind: 'STYLE', flags: 0, style: 'WF' }, { kind: 'STYLE', flags: 0, style: 'SE' },
  tmpl4, tmpl6, filter4, filter6, tspec, flowCL, flowGS, adspecFull, adspecBreak, error4, error6,
  { kind: 'SCOPE', senders: [V4.sender, '203.0.113.9'] }, { kind: 'SCOPE', senders: [V6.sender] },
  { kind: 'RESV_CONFIRM', receiver: V4.receiver }, { kind: 'RESV_CONFIRM', receiver: V6.receiver },
  integrityZero, policy, policyRaw,
];

const tv = { kind: 'TIME_VALUES', refreshMs: 30000 } as const;

/** One message of each type over IPv4, the three styles among the Resv-like ones. */
export const SAMPLE_MESSAGES_V4: RsvpMessage[] = [
  { type: 'Path', flags: 0, sendTtl: 64, objects: [session4, hop4, tv, policy, tmpl4, tspec, adspecFull] },
  { type: 'Resv', flags: 0, sendTtl: 64, objects: [session4, hop4, tv, { kind: 'RESV_CONFIRM', receiver: V4.receiver }, { kind: 'STYLE', flags: 0, style: 'FF' }, flowGS, filter4] },
  { type: 'PathErr', flags: 0, sendTtl: 64, objects: [session4, error4, tmpl4, tspec] },
  { type: 'ResvErr', flags: 0, sendTtl: 64, objects: [session4, hop4, error4, { kind: 'STYLE', flags: 0, style: 'SE' }, flowCL, filter4, { kind: 'FILTER_SPEC', source: '203.0.113.9', port: 40002 }] },
  { type: 'PathTear', flags: 0, sendTtl: 64, objects: [session4, hop4, tmpl4] },
  { type: 'ResvTear', flags: 0, sendTtl: 64, objects: [session4, hop4, { kind: 'SCOPE', senders: [V4.sender] }, { kind: 'STYLE', flags: 0, style: 'WF' }] },
  { type: 'ResvConf', flags: 0, sendTtl: 64, objects: [session4, error4, { kind: 'RESV_CONFIRM', receiver: V4.receiver }, { kind: 'STYLE', flags: 0, style: 'WF' }, flowCL] },
];

/** The same over IPv6. */
export const SAMPLE_MESSAGES_V6: RsvpMessage[] = [
  { type: 'Path', flags: 0, sendTtl: 63, objects: [session6, hop6, tv, tmpl6, tspec, adspecBreak] },
  { type: 'Resv', flags: 0, sendTtl: 63, objects: [session6, hop6, tv, { kind: 'STYLE', flags: 0, style: 'SE' }, flowCL, filter6] },
  { type: 'PathErr', flags: 0, sendTtl: 63, objects: [session6, error6] },
  { type: 'ResvErr', flags: 0, sendTtl: 63, objects: [session6, hop6, error6, { kind: 'STYLE', flags: 0, style: 'FF' }, flowGS, filter6] },
  { type: 'PathTear', flags: 0, sendTtl: 63, objects: [session6, hop6, tmpl6, tspec] },
  { type: 'ResvTear', flags: 0, sendTtl: 63, objects: [session6, hop6, { kind: 'STYLE', flags: 0, style: 'FF' }, filter6] },
  { type: 'ResvConf', flags: 0, sendTtl: 63, objects: [session6, error6, { kind: 'RESV_CONFIRM', receiver: V6.receiver }, { kind: 'STYLE', flags: 0, style: 'FF' }, flowGS, filter6] },
];
