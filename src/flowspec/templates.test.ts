/* The codec templates: every value recomputed here from the codec's parameters, apart from the
 * derivation in templates.ts; the values worked by hand; the rules each template keeps; the
 * well-known IP bandwidth of each voice codec from the actual token rate; lookup by name. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';
import { checkFlowSpec } from './parse.js';
import { actualTokenRate } from './overhead.js';
import { TEMPLATES, templateNamed, type Codec } from './templates.js';

const NAMES = ['G711', 'G723.1', 'G729', 'GSM6.10', 'H261QCIF', 'H261CIF', 'H263QCIF', 'H263CIF'];

/** [TokenRate, TokenBucketSize, PeakBandwidth, MaxSduSize, MinimumPolicedSize], by hand:
 * voice: frame bytes = bit rate x frame time / 8 rounded up, packet = frames + 12 (RTP);
 * video: picture = bit rate / 8 / pictures per s rounded up, + 16 (RTP 12, payload header 4)
 * per 1456 bytes of it; MaxSduSize 1500 - 28. */
const BY_HAND: Record<string, (number | null)[]> = {
  G711: [8600, 344, 8600, 172, 172], //     160 + 12 bytes every 20 ms
  'G723.1': [1200, 72, 1200, 36, 36], //     24 + 12 bytes every 30 ms
  G729: [1600, 64, 1600, 32, 32], //         20 + 12 bytes every 20 ms
  'GSM6.10': [2250, 90, 2250, 45, 45], //    33 + 12 bytes every 20 ms
  H261QCIF: [16245, 1472, null, 1472, 1083], // 1067 + 16 bytes, 15 times a second
  H261CIF: [48960, 1632, null, 1472, 816], //   1600 + 2 x 16 bytes, 30 times a second
  H263QCIF: [8250, 1472, null, 1472, 550], //   534 + 16 bytes, 15 times a second
  H263CIF: [32490, 1472, null, 1472, 1083], //  1067 + 16 bytes, 30 times a second
};

/** The template recomputed from its codec alone, by another route: whole packets per second. */
function recompute(c: Codec): (number | null)[] {
  if (c.kind === 'audio') {
    const packetsPerSecond = 1e6 / (c.frameUs * c.framesPerPacket);
    const bytesPerFrame = Math.ceil(c.bitRate / 8 / (1e6 / c.frameUs));
    const packet = bytesPerFrame * c.framesPerPacket + 12;
    const rate = Math.ceil(packet * packetsPerSecond - 1e-9);
    return [rate, packet * 2, rate, packet, packet];
  }
  const picture = Math.ceil(c.bitRate / (8 * c.pictureRate));
  const perPacket = 1500 - 20 - 8 - 12 - c.payloadHeader;
  const packets = Math.ceil(picture / perPacket);
  const sent = picture + packets * (12 + c.payloadHeader);
  return [sent * c.pictureRate, Math.max(sent, 1472), null, 1472, Math.floor(sent / packets)];
}

const values = (name: string) => {
  const s = templateNamed(name).spec;
  return [s.TokenRate, s.TokenBucketSize, s.PeakBandwidth, s.MaxSduSize, s.MinimumPolicedSize];
};

test('the eight templates WSAGetQOSByName named, in its order', () => {
  assert.deepEqual(TEMPLATES.map((t) => t.name), NAMES);
});

test('every template equals its values worked by hand and its recomputation from the codec', () => {
  for (const t of TEMPLATES) {
    assert.deepEqual(values(t.name), BY_HAND[t.name], `${t.name} by hand`);
    assert.deepEqual(values(t.name), recompute(t.codec), `${t.name} recomputed`);
  }
});

test('voice is Guaranteed at a constant rate, video ControlledLoad with no peak (seed 003, 8.1.4)', () => {
  for (const t of TEMPLATES) {
    assert.equal(t.spec.ServiceType, t.codec.kind === 'audio' ? 'Guaranteed' : 'ControlledLoad', t.name);
    if (t.codec.kind === 'audio') assert.equal(t.spec.PeakBandwidth, t.spec.TokenRate, `${t.name}: constant rate, PeakBandwidth = TokenRate (seed 002)`);
    assert.equal(t.spec.Latency, null);
    assert.equal(t.spec.DelayVariation, null);
  }
});

test('every template keeps the rules, and carries at least its codec\'s bit rate', () => {
  for (const t of TEMPLATES) {
    assert.deepEqual(checkFlowSpec(t.spec), [], t.name);
    assert.ok(t.spec.TokenBucketSize! >= t.spec.MaxSduSize! && t.spec.MinimumPolicedSize! <= t.spec.MaxSduSize!, t.name);
    assert.ok(t.spec.TokenRate! * 8 >= t.codec.bitRate, `${t.name}: ${t.spec.TokenRate! * 8} bit/s carries ${t.codec.bitRate}`);
  }
});

test('over UDP/IPv4 the voice templates need the codecs\' well-known IP bandwidths', () => {
  // bytes/s on the wire: (payload + 40 bytes of RTP/UDP/IPv4) x packets per second
  const udp4 = { proto: 'udp', ipv6: false } as const;
  assert.equal(actualTokenRate(templateNamed('G711').spec, udp4), 10_000); // 80 kbit/s
  assert.equal(actualTokenRate(templateNamed('G729').spec, udp4), 3000); // 24 kbit/s
  assert.equal(actualTokenRate(templateNamed('GSM6.10').spec, udp4), 3650); // 29.2 kbit/s
  assert.equal(actualTokenRate(templateNamed('G723.1').spec, udp4), 2134); // 64 bytes x 33.3/s: 17.07 kbit/s, rounded up
});

test('each derivation ends in the template\'s values', () => {
  for (const t of TEMPLATES) {
    for (const f of ['TokenRate', 'TokenBucketSize', 'PeakBandwidth', 'MaxSduSize', 'MinimumPolicedSize', 'Latency', 'DelayVariation'] as const) {
      assert.equal(t.derivation.find((d) => d.name === f)?.value, t.spec[f], `${t.name} ${f}`);
    }
  }
});

test('templates by name in any case, with or without dots; an unknown name lists the known ones', () => {
  assert.equal(templateNamed('h263cif').name, 'H263CIF');
  assert.equal(templateNamed('g.711').name, 'G711');
  assert.equal(templateNamed('gsm610').name, 'GSM6.10');
  assert.equal(templateNamed('G723.1').name, 'G723.1');
  assert.throws(() => templateNamed('H264'), (e: Error & { code?: string }) => e.code === 'QOS_ERR_USAGE' && e.message === `no FLOWSPEC template "H264": the templates are ${NAMES.join(', ')}`);
});

test('docs/flowspec.md shows each template with the values the code derives', () => {
  const doc = readFileSync(join(PACKAGE_ROOT, 'docs', 'flowspec.md'), 'utf8');
  const udp4 = { proto: 'udp', ipv6: false } as const;
  for (const t of TEMPLATES) {
    const s = t.spec;
    const cells = [t.name, s.ServiceType, s.TokenRate, s.TokenBucketSize, s.PeakBandwidth ?? 'not specified', s.MaxSduSize, s.MinimumPolicedSize, actualTokenRate(s, udp4)];
    assert.ok(doc.includes(`| ${cells.join(' | ')} |`), `docs/flowspec.md has the row of ${t.name}: | ${cells.join(' | ')} |`);
  }
});
