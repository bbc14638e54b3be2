/* The running policy's admin routes (docs/policy.md, "Editing the running policy"): read it,
 * check a text with the checker of `qos policy check`, replace it (apply), and its earlier
 * versions (list, read, restore). The CLI's `qos policy show|apply|versions|restore` and the
 * dashboard's Policy page use these, and nothing else. */

import type { Route, RouteRequest } from '../component.js';
import { QosError } from '../errors.js';
import type { RunningPolicy } from './running-policy.js';

function textOf(r: RouteRequest): string {
  const t = r.body.text;
  if (typeof t !== 'string') throw new QosError('QOS_ERR_USAGE', 'the body needs "text": the policy\'s YAML or JSON, as a string');
  return t;
}

function baseOf(r: RouteRequest): string | undefined {
  const b = r.body.base_sha256;
  if (b === undefined || b === null) return undefined;
  if (typeof b !== 'string' || !/^[0-9a-f]{64}$/.test(b)) throw new QosError('QOS_ERR_USAGE', '"base_sha256" is the sha256 of the running policy\'s text (64 hex digits), as GET /v1/policy gives it');
  return b;
}

function versionOf(s: string): number {
  if (!/^[1-9]\d{0,8}$/.test(s)) throw new QosError('QOS_ERR_NOT_FOUND', `no policy version "${s}": versions are numbered from 1 (GET /v1/policy/versions)`);
  return Number(s);
}

/** The routes over a running policy (added to its component's). */
export function policyRoutes(p: RunningPolicy): Route[] {
  return [
    { method: 'GET', path: '/v1/policy', handle: async () => ({ json: await p.describe() }) },
    { method: 'POST', path: '/v1/policy/check', body: true, handle: async (r) => ({ json: await p.check(textOf(r)) }) },
    { method: 'POST', path: '/v1/policy/apply', body: true, handle: async (r) => ({ json: await p.apply(textOf(r), { base: baseOf(r), by: 'api', uid: r.uid }) }) },
    {
      method: '*', path: '/v1/policy/versions', prefix: true, body: true,
      handle: async (r) => {
        const rest = r.path.slice('/v1/policy/versions'.length).split('/').filter(Boolean);
        if (r.method === 'GET' && rest.length === 0) return { json: { dir: p.versions.dir, versions: p.versions.list() } };
        if (r.method === 'GET' && rest.length === 1) return { json: await p.versions.get(versionOf(rest[0]!)) };
        if (r.method === 'POST' && rest.length === 2 && rest[1] === 'restore') {
          const n = versionOf(rest[0]!);
          const { text } = await p.versions.get(n);
          return { json: { ...await p.apply(text, { base: baseOf(r), by: 'api', uid: r.uid }), restored: n } };
        }
        throw new QosError('QOS_ERR_NOT_FOUND', `no route ${r.method} ${r.path} (GET /v1/policy/versions, GET /v1/policy/versions/N, POST /v1/policy/versions/N/restore)`);
      },
    },
  ];
}
