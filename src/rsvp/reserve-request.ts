/* What a policy's `reserve` action asks (docs/rsvp.md, "Reservations for programs that never
 * asked"): that the daemon signal RSVP for the socket's flow, as the program's own sender
 * (Path with a SENDER_TSPEC), and mark the flow above best effort only once a Resv admits it
 * (seed 003). Made when the policy is loaded, so that a bad one is a policy error with its
 * place, and a decision carries plain data.
 *
 *   reserve: { service: guaranteed, template: H263CIF }
 *   reserve: { service: controlled-load, flowspec: { TokenRate: 2Mbit, TokenBucketSize: 16kB } }
 *   reserve: { characterize: true }          # the TSpec from the live flow (seed 001's ATR)
 *
 * The GQoS FLOWSPEC (seed 002) counts payload bytes; IntServ's TSpec (RFC 2210) counts whole
 * IP datagrams. So M is MaxSduSize plus the IP and transport headers, m is MinimumPolicedSize
 * plus them, and r is the actual token rate (1 + headers / MinimumPolicedSize) × TokenRate
 * when MinimumPolicedSize is given (seed 002's formula), TokenRate otherwise; p likewise. The
 * headers are known only once the socket's protocol and family are: tspecFor(). */

import { QosError } from '../errors.js';
import type { FlowSpec } from '../flowspec/model.js';
import { layer3Overhead } from '../flowspec/overhead.js';
import { flowSpecOf } from '../tc/request.js';

export type ReserveService = 'GS' | 'CL';

export interface ReserveRequest {
  service: ReserveService;
  /** the FLOWSPEC the TSpec comes from; null: from the live flow (characterize) */
  spec: FlowSpec | null;
  characterize: boolean;
  /** the mark once admitted (the action's dscp or tos: seed 003's DCLASS); null: the service's */
  dscp: number | null;
}

export interface ReserveFields { service?: unknown; template?: unknown; flowspec?: unknown; characterize?: unknown }

/** The RSVP service a name gives: guaranteed or controlled-load (GS, CL, as GQoS spells them
 * too, any case, with or without SERVICETYPE_); `what` names where it came from in the error. */
export function reserveServiceNamed(v: unknown, what = 'reserve: service'): ReserveService {
  const key = typeof v === 'string' ? v.trim().toLowerCase().replace(/^servicetype_/, '').replace(/[-_ ]/g, '') : '';
  if (key === 'guaranteed' || key === 'gs') return 'GS';
  if (key === 'controlledload' || key === 'cl') return 'CL';
  throw new QosError('QOS_ERR_USAGE', `${what} is guaranteed or controlled-load (GS or CL), not ${JSON.stringify(v)}`);
}

/** The request a `reserve` action makes. Throws QOS_ERR_USAGE naming what is wrong. */
export function reserveRequestOf(r: ReserveFields, dscp: number | null = null): ReserveRequest {
  if (r.characterize !== undefined && typeof r.characterize !== 'boolean') throw new QosError('QOS_ERR_USAGE', 'reserve: characterize is true or false');
  const characterize = r.characterize === true;
  const given = r.template !== undefined || r.flowspec !== undefined;
  if (characterize && given) throw new QosError('QOS_ERR_USAGE', 'reserve: give a template or flowspec, or characterize: true (the TSpec from the live flow), not both');
  if (!characterize && !given) throw new QosError('QOS_ERR_USAGE', 'reserve: needs a template (qos flowspec templates), a flowspec (TokenRate at least), or characterize: true');
  const service = r.service === undefined ? 'CL' : reserveServiceNamed(r.service);
  let spec: FlowSpec | null = null;
  if (given) {
    spec = flowSpecOf({ template: r.template, flowspec: r.flowspec });
    if (spec.TokenRate === null || spec.TokenRate <= 0) throw new QosError('QOS_ERR_USAGE', 'reserve: the FLOWSPEC needs a TokenRate above 0: a reservation is for a quantity');
  }
  return { service, spec, characterize, dscp };
}

/** IntServ's SENDER_TSPEC (bytes of IP datagrams) for a FLOWSPEC on a socket of this framing. */
export function tspecFor(spec: FlowSpec, f: { proto: 'tcp' | 'udp'; ipv6: boolean }): { r: number; b: number; p: number; m: number; M: number } {
  const h = layer3Overhead(f);
  const minUnit = spec.MinimumPolicedSize;
  const scale = minUnit ? (minUnit + h) / minUnit : 1;
  const r = Math.ceil(spec.TokenRate! * scale);
  const M = (spec.MaxSduSize ?? 1500 - h) + h;
  const m = Math.min(M, minUnit ? minUnit + h : Math.min(64, M));
  const b = Math.max(M, spec.TokenBucketSize ?? M);
  const p = spec.PeakBandwidth ? Math.max(r, Math.ceil(spec.PeakBandwidth * scale)) : Infinity;
  return { r, b, p, m, M };
}
