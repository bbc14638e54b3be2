/* What the codec emits, checked by an independent decoder: every sample message (seven types,
 * IPv4 and IPv6) written into a pcap as IP protocol 46, one as UDP 1698 (RFC 2205 appendix C),
 * one with a signed INTEGRITY object, and tshark's fields compared with ours, field by field
 * and in order. And what real routers sent (test/fixtures), read by both. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ipPacket, pcapFile, udpPacket } from '../capture/pcap-write.js';
import { run } from '../exec.js';
import { PACKAGE_ROOT } from '../paths.js';
import { requireTools } from '../prerequisites.js';
import { rsvpInCapture } from './input.js';
import { decode, encode, MESSAGE_TYPES, type RsvpMessage } from './message.js';
import type { RsvpObject } from './objects.js';
import { integrityZero, SAMPLE_MESSAGES_V4, SAMPLE_MESSAGES_V6, V4, V6 } from './samples.js';
import { STYLE_VECTORS } from './style.js';

/** A float as tshark prints it (C's %g). */
function g(x: number): string {
  if (x === Infinity) return 'inf';
  const e = x === 0 ? 0 : Math.floor(Math.log10(Math.abs(x)));
  if (e < -4 || e >= 6) {
    const [m, ex] = x.toExponential(5).split('e') as [string, string];
    const n = Number(ex);
    return `${m.replace(/\.?0+$/, '')}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  return String(Number(x.toPrecision(6)));
}
const h2 = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;
const colons = (hex: string) => hex.match(/../g)!.join(':');
const six = (a: string) => a.includes(':');

/** The fields tshark should show for one object, in its order: [field, show]. */
function objectFields(o: RsvpObject, raw: Uint8Array): [string, string][] {
  switch (o.kind) {
    case 'SESSION': return six(o.destination)
      ? [['rsvp.session.destination_address', o.destination], ['rsvp.session.protocol', `${o.protocol}`], ['rsvp.session.flags', h2(o.flags)], ['rsvp.session.destination_port', `${o.port}`]]
      : [['rsvp.session.ip', o.destination], ['rsvp.session.proto', `${o.protocol}`], ['rsvp.session.flags', h2(o.flags)], ['rsvp.session.port', `${o.port}`]];
    case 'RSVP_HOP': return [[six(o.address) ? 'rsvp.neighbor_address_ipv6' : 'rsvp.hop.neighbor_address_ipv4', o.address], ['rsvp.hop.logical_interface', `${o.lih}`]];
    case 'TIME_VALUES': return [['rsvp.refresh_interval', `${o.refreshMs}`]];
    case 'STYLE': return [['rsvp.style.flags', h2(o.flags)], ['rsvp.style.style', `0x${STYLE_VECTORS[o.style].toString(16).padStart(6, '0')}`]];
    case 'SENDER_TEMPLATE': case 'FILTER_SPEC': return six(o.source)
      ? [['rsvp.template_filter.source_address_ipv6', o.source], ['rsvp.template_filter.source_port', `${o.port}`]]
      : [['rsvp.sender.ip', o.source], ['rsvp.sender.port', `${o.port}`]];
    case 'SENDER_TSPEC': return [['rsvp.tspec.message_format_version', '0'], ['rsvp.tspec.service_header', '1'], ['rsvp.parameter', '127'],
      ['rsvp.tspec.token_bucket_rate', g(o.r)], ['rsvp.tspec.token_bucket_size', g(o.b)], ['rsvp.tspec.peak_data_rate', g(o.p)], ['rsvp.minimum_policed_unit', `${o.m}`], ['rsvp.maximum_packet_size', `${o.M}`]];
    case 'FLOWSPEC': {
      const t = o.tspec;
      const f: [string, string][] = [['rsvp.flowspec.message_format_version', '0'], ['rsvp.flowspec.service_header', o.service === 'GS' ? '2' : '5'], ['rsvp.parameter', '127'],
        ['rsvp.flowspec.token_bucket_rate', g(t.r)], ['rsvp.flowspec.token_bucket_size', g(t.b)], ['rsvp.flowspec.peak_data_rate', g(t.p)], ['rsvp.minimum_policed_unit', `${t.m}`], ['rsvp.maximum_packet_size', `${t.M}`]];
      return o.service === 'GS' ? [...f, ['rsvp.parameter', '130'], ['rsvp.flowspec.rate', g(o.R)], ['rsvp.flowspec.slack_term', `${o.S}`]] : f;
    }
    case 'ADSPEC': {
      const gen = o.general;
      const f: [string, string][] = [['rsvp.adspec.message_format_version', '0'], ['rsvp.adspec.service_header', '1'], ['rsvp.adspec.break_bit', gen.breakBit ? '1' : '0'],
        ['rsvp.adspec.type', '4'], ['rsvp.adspec.uint', `${gen.hopCount}`], ['rsvp.adspec.type', '6'], ['rsvp.adspec.float', g(gen.pathBw)],
        ['rsvp.adspec.type', '8'], ['rsvp.adspec.uint', `${gen.minLatency}`], ['rsvp.adspec.type', '10'], ['rsvp.adspec.uint', `${gen.mtu}`]];
      if (o.gs) {
        f.push(['rsvp.adspec.service_header', '2'], ['rsvp.adspec.break_bit', o.gs.breakBit ? '1' : '0']);
        if (o.gs.terms) for (const [id, v] of [[133, o.gs.terms.ctot], [134, o.gs.terms.dtot], [135, o.gs.terms.csum], [136, o.gs.terms.dsum]] as const) f.push(['rsvp.adspec.type', `${id}`], ['rsvp.adspec.uint', `${v}`]);
      }
      if (o.cl) f.push(['rsvp.adspec.service_header', '5'], ['rsvp.adspec.break_bit', o.cl.breakBit ? '1' : '0']);
      return f;
    }
    case 'ERROR_SPEC': return [[six(o.node) ? 'rsvp.error.error_node_ipv6' : 'rsvp.error.error_node_ipv4', o.node], ['rsvp.error_flags', h2(o.flags)],
      ['rsvp.error_flags.not_guilty', o.flags & 2 ? '1' : '0'], ['rsvp.error_flags.in_place', o.flags & 1 ? '1' : '0'], ['rsvp.error.error_code', `${o.code}`],
      // for "unknown object class" (13) the value is the class-num and c-type, and tshark shows the class
      o.code === 13 ? ['rsvp.class', `${o.value >> 8}`] : ['rsvp.error_value', `${o.value}`]];
    case 'SCOPE': return o.senders.map((a) => [six(a) ? 'rsvp.scope.ipv6_address' : 'rsvp.scope.ipv4_address', a]);
    case 'RESV_CONFIRM': return [[six(o.receiver) ? 'rsvp.confirm.receiver_address_ipv6' : 'rsvp.confirm.receiver_address_ipv4', o.receiver]];
    case 'INTEGRITY': return [['rsvp.integrity.flags', h2(o.flags)], ['rsvp.integrity.key_identifier', colons(o.keyId)], ['rsvp.integrity.sequence_number', o.sequence], ['rsvp.integrity.hash', colons(o.digest)]];
    case 'POLICY_DATA': return [['rsvp.policy.data', colons(Buffer.from(raw.subarray(4)).toString('hex'))]];
    case 'UNKNOWN': return [];
  }
}

/** Every field we expect for a message: the common header, then each object's class, c-type and fields. */
function expected(m: RsvpMessage, bytes: Uint8Array): [string, string][] {
  const f: [string, string][] = [['rsvp.version', '1'], ['rsvp.flags', h2(m.flags)], ['rsvp.msg', `${MESSAGE_TYPES[m.type]}`],
    ['rsvp.message_checksum', `0x${Buffer.from(bytes.subarray(2, 4)).toString('hex')}`], ['rsvp.sending_ttl', `${m.sendTtl}`], ['rsvp.message_length', `${bytes.length}`]];
  let at = 8;
  for (const o of m.objects) {
    const len = (bytes[at]! << 8) | bytes[at + 1]!;
    f.push(['rsvp.length', `${len}`], ['rsvp.object', `${bytes[at + 2]}`], ['rsvp.ctype', `${bytes[at + 3]}`], ...objectFields(o, bytes.subarray(at, at + len)));
    at += len;
  }
  return f;
}

/** The rsvp.* fields of each packet of the pdml, in document order. */
function pdmlFields(pdml: string): [string, string][][] {
  return pdml.split('<packet>').slice(1).map((p) => [...p.matchAll(/<field name="(rsvp\.[^"]*)"[^>]*? show="([^"]*)"/g)].map((x) => [x[1]!, x[2]!.replace(/&quot;/g, '"').replace(/&amp;/g, '&')] as [string, string]));
}

/** Asserts want appears in got in order (other fields may come between). */
function assertInOrder(got: [string, string][], want: [string, string][], what: string): void {
  let i = 0;
  for (const [name, show] of want) {
    const j = got.findIndex(([n], k) => k >= i && n === name);
    assert.ok(j >= 0, `${what}: tshark shows no ${name} (want ${show}) after field ${i}`);
    assert.equal(got[j]![1], show, `${what}: ${name}`);
    i = j + 1;
  }
}

test('tshark decodes every message type we emit, IPv4 and IPv6, protocol 46 and UDP 1698, field by field', async () => {
  requireTools('tshark');
  const key = Buffer.from('the key of two neighbours');
  const signed: RsvpMessage = { ...SAMPLE_MESSAGES_V4[0]!, objects: [integrityZero, ...SAMPLE_MESSAGES_V4[0]!.objects] };
  const cases: { m: RsvpMessage; bytes: Uint8Array; packet: Uint8Array; what: string }[] = [];
  for (const [family, msgs, a] of [['IPv4', SAMPLE_MESSAGES_V4, V4], ['IPv6', SAMPLE_MESSAGES_V6, V6]] as const) {
    for (const m of msgs) {
      const bytes = encode(m);
      cases.push({ m, bytes, packet: ipPacket({ src: a.router, dst: a.receiver, proto: 46, payload: bytes, routerAlert: m.type === 'Path', ttl: m.sendTtl }), what: `${m.type} over ${family}` });
    }
  }
  const path = encode(SAMPLE_MESSAGES_V4[0]!);
  cases.push({ m: SAMPLE_MESSAGES_V4[0]!, bytes: path, packet: udpPacket({ src: V4.sender, dst: V4.receiver, sport: 1698, dport: 1698, payload: path }), what: 'Path over UDP 1698' });
  const sb = encode(signed, key);
  cases.push({ m: decode(sb), bytes: sb, packet: ipPacket({ src: V4.router, dst: V4.receiver, proto: 46, payload: sb }), what: 'Path with INTEGRITY' });

  const dir = mkdtempSync(join(tmpdir(), 'qos-rsvp-'));
  try {
    const file = join(dir, 'rsvp.pcap');
    writeFileSync(file, pcapFile(cases.map((c) => c.packet)));
    const r = await run(['tshark', '-n', '-r', file, '-d', 'udp.port==1698,rsvp', '-T', 'pdml'], { timeoutMs: 60_000 });
    const packets = pdmlFields(r.stdout);
    assert.equal(packets.length, cases.length);
    cases.forEach((c, i) => {
      assertInOrder(packets[i]!, expected(c.m, c.bytes), c.what);
      assert.ok(!packets[i]!.some(([n]) => n === 'rsvp.invalid_length' || n === 'rsvp.obj_unknown'), `${c.what}: tshark finds nothing malformed`);
    });
    assert.match(r.stdout, /Message Checksum: 0x[0-9a-f]{4} \[correct\]/, 'tshark agrees with our checksums');
    assert.doesNotMatch(r.stdout, /\[incorrect|Malformed|Expert Info \(Error/, 'no checksum tshark finds wrong, nothing malformed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('messages captured between real routers (Path, Resv, ResvConf) decode to what tshark shows, field by field, and encode back to the same bytes', async () => {
  requireTools('tshark');
  const file = join(PACKAGE_ROOT, 'test/fixtures/rsvp-path-resv-resvconf.pcap'); // test/fixtures/README.md says where it is from
  const found = await rsvpInCapture(file);
  assert.deepEqual(found.map((f) => decode(f.bytes).type), ['Path', 'Resv', 'ResvConf']);
  const r = await run(['tshark', '-n', '-r', file, '-T', 'pdml'], { timeoutMs: 60_000 });
  const packets = pdmlFields(r.stdout);
  assert.equal(packets.length, found.length);
  found.forEach((f, i) => {
    const m = decode(f.bytes);
    assertInOrder(packets[i]!, expected(m, f.bytes), `captured ${m.type}`);
    assert.deepEqual(encode(m), f.bytes, `captured ${m.type} encodes back to its bytes`);
  });
  const [path, resv] = found.map((f) => decode(f.bytes));
  // the values themselves, as a reader of Wireshark's tree sees them
  assert.deepEqual(path!.objects.find((o) => o.kind === 'SESSION'), { kind: 'SESSION', destination: '10.1.12.1', protocol: 17, flags: 0, port: 16388 });
  assert.deepEqual(path!.objects.find((o) => o.kind === 'SENDER_TSPEC'), { kind: 'SENDER_TSPEC', r: 6000, b: 6000, p: 6000, m: 0, M: 2147483647 });
  assert.deepEqual(resv!.objects.find((o) => o.kind === 'STYLE'), { kind: 'STYLE', flags: 0, style: 'FF' });
});
