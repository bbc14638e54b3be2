import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Components, type Component } from './component.js';
import { QosError } from './errors.js';

function part(name: string, log: string[], o: Partial<Component> & { fail?: boolean } = {}): Component {
  return {
    name,
    start: async () => { log.push(`start ${name}`); if (o.fail) throw new QosError('QOS_ERR_ENVIRONMENT', `${name} cannot start`); },
    stop: async () => { log.push(`stop ${name}`); },
    running: () => log.push(`running ${name}`),
    ...o,
  };
}

test('components start in order, run once all started, and stop in reverse', async () => {
  const log: string[] = [];
  const c = new Components();
  for (const n of ['policy', 'kernel', 'agents']) c.add(part(n, log));
  await c.start();
  await c.stop();
  assert.deepEqual(log, ['start policy', 'start kernel', 'start agents', 'running policy', 'running kernel', 'running agents', 'stop agents', 'stop kernel', 'stop policy']);
  log.length = 0;
  await c.stop(); // nothing left to stop
  assert.deepEqual(log, []);
});

test('a component that fails to start stops those started before it, and the error is the start\'s', async () => {
  const log: string[] = [];
  const c = new Components();
  c.add(part('policy', log));
  c.add(part('kernel', log, { fail: true }));
  c.add(part('agents', log));
  await assert.rejects(c.start(), /kernel cannot start/);
  assert.deepEqual(log, ['start policy', 'start kernel', 'stop policy']);
});

test('every started component is stopped even if one fails to stop; the first failure is thrown', async () => {
  const log: string[] = [];
  const c = new Components();
  c.add(part('a', log));
  c.add(part('b', log, { stop: async () => { log.push('stop b'); throw new Error('b is stuck'); } }));
  c.add(part('c', log));
  await c.start();
  log.length = 0;
  await assert.rejects(c.stop(), /b is stuck/);
  assert.deepEqual(log, ['stop c', 'stop b', 'stop a']);
});

test('routes: exact paths, prefixes, methods; an unknown one is QOS_ERR_NOT_FOUND; two owners of a route are refused', () => {
  const c = new Components();
  const handle = () => ({ json: null });
  c.add({ name: 'rules', routes: [{ method: '*', path: '/v1/rules', prefix: true, handle }] });
  c.add({ name: 'policy', routes: [{ method: 'POST', path: '/v1/reload', handle }] });
  assert.equal(c.route('PUT', '/v1/rules/3').path, '/v1/rules');
  assert.equal(c.route('GET', '/v1/rules').path, '/v1/rules');
  assert.equal(c.route('POST', '/v1/reload').path, '/v1/reload');
  for (const [m, p] of [['GET', '/v1/reload'], ['GET', '/v1/rulesx'], ['GET', '/v1/reload/x']] as const) {
    assert.throws(() => c.route(m, p), (e: unknown) => e instanceof QosError && e.code === 'QOS_ERR_NOT_FOUND' && e.message === `no route ${m} ${p}`);
  }
  assert.throws(() => c.add({ name: 'other', routes: [{ method: 'POST', path: '/v1/reload', handle }] }), /other and policy both route POST \/v1\/reload/);
  assert.throws(() => c.add({ name: 'policy' }), /two components named policy/);
  assert.deepEqual(c.names, ['rules', 'policy']);
});

test('status merges each component\'s fields in order; collect reaches every component', () => {
  const c = new Components();
  let collected = 0;
  c.add({ name: 'a', status: () => ({ policy: { rules: 3 } }), collect: () => collected++ });
  c.add({ name: 'b' });
  c.add({ name: 'c', status: () => ({ flows: 7 }), collect: () => collected++ });
  assert.deepEqual(c.status(), { policy: { rules: 3 }, flows: 7 });
  c.collect();
  assert.equal(collected, 2);
});
