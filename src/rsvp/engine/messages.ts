/* The engine's view of RSVP messages: the objects of a received one picked out by class, with
 * its flow descriptor list read by style (RFC 2205 section 3.1.4: an FF FLOWSPEC may be left
 * out and is then the one before), and the messages it sends built in the object order section
 * 3.1 gives, so the transport's strict encoder takes them as they are. */

import type { Adspec } from '../adspec.js';
import type { ErrorSpec } from '../error-spec.js';
import type { FilterSpec, SenderTemplate } from '../filter-spec.js';
import type { Flowspec } from '../flowspec.js';
import type { Hop } from '../hop.js';
import type { MessageType, RsvpMessage } from '../message.js';
import type { RsvpObject } from '../objects.js';
import type { PolicyData } from '../policy-data.js';
import type { Session } from '../session.js';
import type { StyleName } from '../style.js';
import type { SenderTspec } from '../tspec.js';

/** One flow descriptor: a FLOWSPEC (absent in tears and some errors) and its filters (none for WF). */
export interface Descriptor { flowspec: Flowspec | null; filters: FilterSpec[] }

export interface Picked {
  session?: Session;
  hop?: Hop;
  refreshMs?: number;
  template?: SenderTemplate;
  tspec?: SenderTspec;
  adspec?: Adspec;
  error?: ErrorSpec;
  confirm?: string;
  scope?: string[];
  /** the STYLE's name as it came (an unknown one is kept to be answered with error code 6) */
  style?: string;
  policies: PolicyData[];
  descriptors: Descriptor[];
}

/** The objects of a message by class; the flow descriptors follow STYLE. */
export function pick(m: RsvpMessage): Picked {
  const p: Picked = { policies: [], descriptors: [] };
  let flow: Flowspec | null = null;
  for (const o of m.objects) {
    switch (o.kind) {
      case 'SESSION': p.session ??= o; break;
      case 'RSVP_HOP': p.hop ??= o; break;
      case 'TIME_VALUES': p.refreshMs ??= o.refreshMs; break;
      case 'SENDER_TEMPLATE': p.template ??= o; break;
      case 'SENDER_TSPEC': p.tspec ??= o; break;
      case 'ADSPEC': p.adspec ??= o; break;
      case 'ERROR_SPEC': p.error ??= o; break;
      case 'RESV_CONFIRM': p.confirm ??= o.receiver; break;
      case 'SCOPE': p.scope ??= o.senders; break;
      case 'POLICY_DATA': p.policies.push(o); break;
      case 'STYLE': p.style ??= o.style; break;
      case 'FLOWSPEC':
        flow = o;
        if (p.style !== 'FF' && p.style !== 'SE') p.descriptors.push({ flowspec: o, filters: [] }); // WF: the one FLOWSPEC
        break;
      case 'FILTER_SPEC':
        if (p.style === 'SE' && p.descriptors.length) p.descriptors[0]!.filters.push(o);
        else if (p.style === 'SE' || p.style === 'FF') p.descriptors.push({ flowspec: flow, filters: [o] });
        break;
      default: break;
    }
  }
  return p;
}

const msg = (type: MessageType, sendTtl: number, objects: (RsvpObject | null | undefined | false)[]): RsvpMessage =>
  ({ type, flags: 0, sendTtl, objects: objects.filter((o): o is RsvpObject => !!o) });

const styleObj = (style: StyleName): RsvpObject => ({ kind: 'STYLE', flags: 0, style });

/** The flow descriptor list (RFC 2205 section 3.1.4): FF each FLOWSPEC with its FILTER_SPEC, SE
 * one FLOWSPEC then its FILTER_SPECs, WF the FLOWSPEC alone; `tear` leaves FLOWSPECs out. */
export function flowObjects(style: StyleName, ds: Descriptor[], tear = false): RsvpObject[] {
  const out: RsvpObject[] = [];
  for (const d of ds) {
    if (d.flowspec && !tear && !(style === 'SE' && out.length)) out.push(d.flowspec);
    if (style !== 'WF') out.push(...d.filters);
  }
  return out;
}

export interface PathContent {
  session: Session; template: SenderTemplate; tspec: SenderTspec; adspec: Adspec | null; policies: PolicyData[];
}

export function pathMsg(c: PathContent, hop: Hop, refreshMs: number, ttl: number): RsvpMessage {
  return msg('Path', ttl, [c.session, hop, { kind: 'TIME_VALUES', refreshMs }, ...c.policies, c.template, c.tspec, c.adspec]);
}

export function pathTearMsg(session: Session, hop: Hop, template: SenderTemplate, ttl: number): RsvpMessage {
  return msg('PathTear', ttl, [session, hop, template]);
}

export function pathErrMsg(session: Session, error: ErrorSpec, template?: SenderTemplate, tspec?: SenderTspec): RsvpMessage {
  return msg('PathErr', 64, [session, error, tspec && template, template && tspec]); // the sender descriptor whole, or none
}

export function resvMsg(session: Session, hop: Hop, refreshMs: number, confirm: string | null, policies: PolicyData[], style: StyleName, ds: Descriptor[]): RsvpMessage {
  return msg('Resv', 64, [session, hop, { kind: 'TIME_VALUES', refreshMs }, confirm !== null && { kind: 'RESV_CONFIRM', receiver: confirm }, ...policies, styleObj(style), ...flowObjects(style, ds)]);
}

export function resvTearMsg(session: Session, hop: Hop, style: StyleName, ds: Descriptor[]): RsvpMessage {
  return msg('ResvTear', 64, [session, hop, styleObj(style), ...flowObjects(style, ds, true)]);
}

/** ResvErr carries one flow descriptor (for FF one FLOWSPEC and one FILTER_SPEC: section 3.1.7). */
export function resvErrMsg(session: Session, hop: Hop, error: ErrorSpec, style: StyleName, d: Descriptor | null): RsvpMessage {
  const one = d && style === 'FF' ? { flowspec: d.flowspec, filters: d.filters.slice(0, 1) } : d;
  const flows = one && (style === 'WF' || one.filters.length) && (style !== 'FF' || one.flowspec) ? flowObjects(style, [one]) : [];
  return msg('ResvErr', 64, [session, hop, error, styleObj(style), ...(style === 'SE' && !one?.flowspec ? [] : flows)]);
}

export function resvConfMsg(session: Session, error: ErrorSpec, receiver: string, style: StyleName, ds: Descriptor[]): RsvpMessage {
  return msg('ResvConf', 64, [session, error, { kind: 'RESV_CONFIRM', receiver }, styleObj(style), ...flowObjects(style, ds)]);
}
