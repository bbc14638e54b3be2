/* The daemon's RSVP host part through its admin routes, on an engine with a fake network: who
 * may ask for what, the identity the messages carry (from the caller's uid, never the body),
 * the per-uid bound, and bad input refused with a message naming the field. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../clock.js';
import type { RouteRequest } from '../component.js';
import { QosError } from '../errors.js';
import { RsvpEngine } from './engine/engine.js';
import type { Outbound } from './engine/types.js';
import { bucketOf, filterOf, MAX_PER_UID, RsvpHost } from './host.js';
import type { PolicyData } from './policy-data.js';

async function host(): Promise<{ h: RsvpHost; sent: Outbound[] }> {
  const sent: Outbound[] = [];
  const iface = { name: 'eth0', addresses: ['10.0.0.1'], lih: 2 };
  const routes = { lookup: () => ({ ifname: 'eth0', gateway: '10.0.0.254', src: '10.0.0.1' }) };
  const h = new RsvpHost({
    open: async (onEvent) => {
      const engine = new RsvpEngine({ role: 'host', clock: new ManualClock(0), interfaces: [iface], routes, send: (o) => sent.push(o), onEvent });
      return { engine, counts: () => ({ received: 0, sent: sent.length, send_errors: 0, unencodable: 0, undecodable: {}, integrity: {} }), sourceFor: () => '10.0.0.1', close: async () => engine.stop() };
    },
  });
  await h.start();
  return { h, sent };
}

const call = async (h: RsvpHost, uid: number, method: string, path: string, body: Record<string, unknown> = {}) =>
  (await h.routes.find((x) => x.prefix)!.handle({ method, path, url: new URL(`http://x${path}`), body, uid } as RouteRequest) as { json: Record<string, unknown> }).json;

const SESSION = { destination: '10.0.9.2', port: 5004, rate: '275kB', max: 1028 };

test('a sender\'s Path names the caller\'s user from the uid; only root may name another user or an application', async () => {
  const { h, sent } = await host();
  const s = await call(h, 0, 'POST', '/v1/rsvp/senders', { ...SESSION, sport: 40000 });
  assert.equal(s.id, 1);
  const path = sent.find((o) => o.msg.type === 'Path')!;
  assert.equal(path.dst, '10.0.9.2');
  assert.ok(path.routerAlert);
  const pd = path.msg.objects.find((o) => o.kind === 'POLICY_DATA') as PolicyData;
  assert.deepEqual(pd.elements.map((e) => 'attributes' in e ? [e.pType, e.attributes[0]!] : null), [[2, { aType: 2, subType: 1, text: 'root' }]]);
  await assert.rejects(call(h, 1000, 'POST', '/v1/rsvp/senders', { ...SESSION, sport: 40001, user: 'root' }), (e: QosError) => e.code === 'QOS_ERR_FORBIDDEN');
  await assert.rejects(call(h, 1000, 'POST', '/v1/rsvp/reservations', { ...SESSION, senders: ['10.0.0.1:40000'], app: 'x' }), (e: QosError) => e.code === 'QOS_ERR_FORBIDDEN');
  const r = await call(h, 0, 'POST', '/v1/rsvp/reservations', { ...SESSION, senders: ['10.0.0.1:40000'], app: 'ffmpeg', user: 'alice' });
  assert.equal(r.kind, 'reservation');
  // another user may not take it down; root may
  await assert.rejects(call(h, 1000, 'DELETE', `/v1/rsvp/reservations/${String(r.id)}`), (e: QosError) => e.code === 'QOS_ERR_FORBIDDEN');
  assert.deepEqual(await call(h, 0, 'DELETE', `/v1/rsvp/reservations/${String(r.id)}`), { deleted: r.id });
  const before = sent.length;
  assert.deepEqual(await call(h, 0, 'DELETE', `/v1/rsvp/senders/${String(s.id)}`), { deleted: s.id });
  assert.equal(sent.slice(before).find((o) => o.msg.type === 'PathTear')?.dst, '10.0.9.2', 'stopping a sender sends PathTear');
  await assert.rejects(call(h, 0, 'DELETE', '/v1/rsvp/senders/1'), (e: QosError) => e.code === 'QOS_ERR_NOT_FOUND');
  await h.stop();
});

test('one uid holds at most MAX_PER_UID senders; another uid is not affected', async () => {
  const { h } = await host();
  for (let i = 0; i < MAX_PER_UID; i++) await call(h, 1000, 'POST', '/v1/rsvp/senders', { ...SESSION, sport: 40000 + i });
  await assert.rejects(call(h, 1000, 'POST', '/v1/rsvp/senders', { ...SESSION, sport: 41000 }), (e: QosError) => e.code === 'QOS_ERR_CONFLICT' && /at most|the most/.test(e.message));
  assert.equal((await call(h, 1001, 'POST', '/v1/rsvp/senders', { ...SESSION, sport: 41000 })).uid, 1001);
  await h.stop();
});

test('bad input is refused naming what is wrong, and changes nothing', async () => {
  const { h, sent } = await host();
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...SESSION, destination: 'example.org', sport: 1 }, /destination is an IPv4 or IPv6 address/],
    [{ ...SESSION, port: 70000, sport: 1 }, /port is a port number/],
    [{ ...SESSION, rate: 'fast', sport: 1 }, /rate "fast"/],
    [{ ...SESSION, bucket: 100, sport: 1 }, /bucket \(100\) is below max \(1028\)/],
    [{ ...SESSION, protocol: 'sctp', sport: 1 }, /protocol is udp or tcp/],
  ];
  for (const [body, re] of cases) await assert.rejects(call(h, 0, 'POST', '/v1/rsvp/senders', body), (e: QosError) => e.code === 'QOS_ERR_USAGE' && re.test(e.message), JSON.stringify(body));
  await assert.rejects(call(h, 0, 'POST', '/v1/rsvp/reservations', { ...SESSION, style: 'FF' }), /names its senders/);
  await assert.rejects(call(h, 0, 'POST', '/v1/rsvp/reservations', { ...SESSION, style: 'XX', senders: ['10.0.0.1:1'] }), /style is FF, SE or WF/);
  await assert.rejects(call(h, 0, 'POST', '/v1/rsvp/reservations', { ...SESSION, service: 'GS', R: '100kB', senders: ['10.0.0.1:1'] }), /R \(the Guaranteed rate\) is below rate/);
  assert.equal(sent.length, 0);
  assert.deepEqual((await call(h, 0, 'GET', '/v1/rsvp')).held, []);
  await h.stop();
});

test('senders and buckets as people write them', () => {
  assert.deepEqual(filterOf('10.0.0.1:40000'), { kind: 'FILTER_SPEC', source: '10.0.0.1', port: 40000 });
  assert.deepEqual(filterOf('[2001:db8::1]:5'), { kind: 'FILTER_SPEC', source: '2001:db8::1', port: 5 });
  assert.deepEqual(filterOf('2001:db8::1'), { kind: 'FILTER_SPEC', source: '2001:db8::1', port: 0 });
  assert.throws(() => filterOf('host:80'), /IPv4 or IPv6 address/);
  assert.deepEqual(bucketOf({ rate: '2Mbit' }), { r: 250000, b: 25000, p: Infinity, m: 64, M: 1500 });
});
