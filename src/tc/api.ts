/* The traffic control part of the admin API (docs/traffic-control.md), root's only: marking is
 * greedy and subject to policy (seed 003, "How Hosts Mark and Shape Traffic"), so neither the
 * daemon's own user nor the admin group may call it.
 *   GET    /v1/tc                    interfaces, flows and filters
 *   GET    /v1/tc/plan               what the kernel holds, as the tc, nft and ip text that made it
 *   PUT    /v1/tc/interfaces/DEV     { rate?, marks?, nonconforming? }
 *   POST   /v1/tc/flows              { dev, template? | flowspec?, service?, mode?, dscp?, pcp?, name?, proto?, ipv6? }
 *   PUT    /v1/tc/flows/ID           the same fields but dev
 *   DELETE /v1/tc/flows/ID           with its filters
 *   POST   /v1/tc/filters            { flow, family?, src?, dst?, proto?, sport?, dport? }
 *   DELETE /v1/tc/filters/ID
 * Every change takes `dry_run: true`: the answer is then the plan's text, and nothing changes. */

import { QosError } from '../errors.js';
import type { Route, RouteRequest } from '../component.js';
import type { TrafficControl } from './control.js';

function idOf(text: string, what: string): number {
  if (!/^\d{1,7}$/.test(text)) throw new QosError('QOS_ERR_USAGE', `a ${what} is named by its number, not "${text}"`);
  return Number(text);
}

async function answer(tc: TrafficControl, r: RouteRequest): Promise<unknown> {
  if (r.uid !== 0) throw new QosError('QOS_ERR_FORBIDDEN', `traffic control is root's alone (uid ${r.uid} asked): marking is subject to policy`);
  const [, , , kind = '', arg, extra] = r.path.split('/');
  if (extra !== undefined) throw new QosError('QOS_ERR_NOT_FOUND', `no route ${r.method} ${r.path}`);
  const dry = r.body.dry_run === true;
  const { dry_run: _, ...body } = r.body;
  switch (`${r.method} ${kind}${arg === undefined ? '' : '/'}`) {
    case 'GET ': return tc.list();
    case 'GET plan': return { text: tc.planAll() };
    case 'GET flows': return tc.list().flows;
    case 'GET filters': return tc.list().filters;
    case 'GET interfaces': return tc.list().interfaces;
    case 'PUT interfaces/': return tc.setInterface(decodeURIComponent(arg!), body, dry);
    case 'POST flows': return tc.addFlow(body, dry);
    case 'PUT flows/': return tc.modifyFlow(idOf(arg!, 'flow'), body, dry);
    case 'DELETE flows/': return tc.deleteFlow(idOf(arg!, 'flow'), dry);
    case 'POST filters': return tc.addFilter(body as { flow: unknown }, dry);
    case 'DELETE filters/': return tc.deleteFilter(idOf(arg!, 'filter'), dry);
    default: throw new QosError('QOS_ERR_NOT_FOUND', `no route ${r.method} ${r.path}`);
  }
}

export function tcRoutes(tc: TrafficControl): Route[] {
  return [{ method: '*', path: '/v1/tc', prefix: true, body: true, handle: async (r) => ({ json: await answer(tc, r) }) }];
}
