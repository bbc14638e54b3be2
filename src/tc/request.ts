/* What a policy action asks of traffic control for a socket (`service:`, `template:`,
 * `flowspec:`, `mode:`; docs/traffic-control.md, "For unmodified programs"): a FLOWSPEC and a
 * mode, made when the policy is loaded, so that a bad one is a policy error with its place and
 * a decision carries plain data (the engine comes back from its worker as data). */

import { QosError } from '../errors.js';
import type { FlowSpec } from '../flowspec/model.js';
import { parseFlowSpec } from '../flowspec/parse.js';
import { templateNamed } from '../flowspec/templates.js';
import { serviceTypeNamed, SERVICE_TYPE_NAMES } from '../flowspec/model.js';
import { flowProblems, MODES, SERVICE_DEFAULTS, type TcMode } from './model.js';

export interface TcRequest { spec: FlowSpec; mode: TcMode }

export interface TcActionFields { service?: string; template?: string; flowspec?: Record<string, unknown>; mode?: string }

/** Whether an action asks for a flow. */
export function asksTc(a: TcActionFields): boolean {
  return a.service !== undefined || a.template !== undefined || a.flowspec !== undefined || a.mode !== undefined;
}

/** The FLOWSPEC a request gives: the template's (else `base`, a flow's own when it is changed),
 * the fields over it, the service type over both; each checked by the seed's rules. Throws
 * QOS_ERR_USAGE naming what is wrong. For a policy action and a `qos tc` request alike. */
export function flowSpecOf(a: { template?: unknown; flowspec?: unknown; service?: unknown }, base?: FlowSpec): FlowSpec {
  if (a.template !== undefined) {
    if (typeof a.template !== 'string') throw new QosError('QOS_ERR_USAGE', 'template is a template\'s name (qos flowspec templates)');
    base = templateNamed(a.template).spec;
  }
  let spec = a.flowspec !== undefined ? parseFlowSpec(a.flowspec, { base, path: 'flowspec' }) : base;
  if (!spec) throw new QosError('QOS_ERR_USAGE', 'a flow needs a FLOWSPEC: give template (qos flowspec templates) or flowspec fields (TokenRate at least)');
  if (a.service !== undefined) {
    const t = typeof a.service === 'string' ? serviceTypeNamed(a.service) : undefined;
    if (!t) throw new QosError('QOS_ERR_USAGE', `service: no service type ${JSON.stringify(a.service)}; the service types are ${SERVICE_TYPE_NAMES.join(', ')}`);
    spec = parseFlowSpec({ ServiceType: t }, { base: spec, path: 'flowspec' });
  }
  return spec;
}

/** The flow an action asks for: its FLOWSPEC (flowSpecOf) and the mode given or the service's.
 * Throws QOS_ERR_USAGE naming what is wrong. */
export function tcRequestOf(a: TcActionFields): TcRequest {
  const spec = flowSpecOf(a);
  if (a.mode !== undefined && !MODES.includes(a.mode as TcMode)) throw new QosError('QOS_ERR_USAGE', `mode must be ${MODES.join(', ')}, not "${a.mode}"`);
  const mode = (a.mode as TcMode | undefined) ?? SERVICE_DEFAULTS[spec.ServiceType].mode;
  const problems = flowProblems({ spec, mode, dscp: null, pcp: null });
  if (problems.length) throw new QosError('QOS_ERR_USAGE', problems.join('; '));
  return { spec, mode };
}
