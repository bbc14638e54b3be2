/* The declarative policy format (docs/policy.md): ordered rules, first match wins, and an
 * optional default. This shape is the contract: extend it, don't change it. */

import { z } from 'zod';
import { dscpValue, ERRNO_NAMES } from './dscp.js';
import { compilePattern } from './glob.js';
import { parseCidr, parsePortSpec } from './net.js';
import { asksTc, tcRequestOf } from '../tc/request.js';
import { reserveRequestOf } from '../rsvp/reserve-request.js';
import { parseRate } from '../units.js';

export const EVENT_NAMES = ['socket', 'connect', 'bind', 'listen', 'accept', 'sendto', 'setsockopt'] as const;
export type EventName = (typeof EVENT_NAMES)[number];

export const oneOrMany = <T extends z.ZodType>(s: T, what: string) =>
  z.union([s, z.array(s).min(1)], { error: `expected ${what}, or a list of them` });
/** A oneOrMany value as a list (undefined: not given). */
export const list = <T>(v: T | T[] | undefined): T[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

const pattern = z.string().min(1).superRefine((p, ctx) => {
  try { compilePattern(p); } catch (e) { ctx.addIssue({ code: 'custom', message: `bad pattern: ${(e as Error).message}` }); }
});
export const cidr = z.string().refine((s) => parseCidr(s) !== undefined, {
  message: 'expected an address or CIDR prefix, e.g. 192.0.2.0/24 or 2001:db8::/32',
});
export const port = z.union([z.number(), z.string()]).refine((v) => parsePortSpec(v) !== undefined, {
  message: 'expected a port 0-65535 or a range "a-b"',
});
export const id = z.number().int().min(0).max(2 ** 32 - 1);

export const dscpField = z.union([z.string(), z.number()]).refine((v) => dscpValue(v) !== undefined, {
  message: 'expected a DSCP name (EF, AF11..AF43, CS0..CS7, LE, VA) or a number 0-63',
});
export const ruleName = z.string().min(1).max(128).regex(/^[\w.:@-]+$/, 'names use letters, digits and _ . : @ -');

export const MatchSchema = z.strictObject({
  event: oneOrMany(z.enum(EVENT_NAMES), `an event (${EVENT_NAMES.join(', ')})`).optional(),
  exe: oneOrMany(pattern, 'a glob or /regex/').optional(),
  cmdline: oneOrMany(pattern, 'a glob or /regex/').optional(),
  user: oneOrMany(z.string().min(1), 'a user name').optional(),
  group: oneOrMany(z.string().min(1), 'a group name').optional(),
  uid: oneOrMany(id, 'a numeric uid').optional(),
  gid: oneOrMany(id, 'a numeric gid').optional(),
  unit: oneOrMany(pattern, 'a unit glob').optional(),
  family: oneOrMany(z.enum(['inet', 'inet6']), 'inet or inet6').optional(),
  type: oneOrMany(z.enum(['stream', 'dgram', 'raw']), 'stream, dgram or raw').optional(),
  proto: oneOrMany(z.enum(['tcp', 'udp']), 'tcp or udp').optional(),
  remote: oneOrMany(cidr, 'an address or CIDR prefix, e.g. 192.0.2.0/24 or 2001:db8::/32').optional(),
  local: oneOrMany(cidr, 'an address or CIDR prefix').optional(),
  remote_port: oneOrMany(port, 'a port 0-65535 or a range "a-b"').optional(),
  local_port: oneOrMany(port, 'a port 0-65535 or a range "a-b"').optional(),
});

/** The slowest and fastest limit (bytes/s): HTB's rate table has no use below 8 kbit/s, and
 * 100 Gbit/s is beyond any link it shapes. */
export const LIMIT_MIN = 1000;
export const LIMIT_MAX = 12.5e9;
const limitRate = z.string().transform((v, ctx) => {
  let r: number;
  try { r = parseRate(v); } catch (e) { ctx.addIssue({ code: 'custom', message: (e as Error).message }); return z.NEVER; }
  if (r < LIMIT_MIN || r > LIMIT_MAX) { ctx.addIssue({ code: 'custom', message: `a limit is from 8kbit to 100Gbit; "${v}" is ${r * 8} bit/s` }); return z.NEVER; }
  return v;
});

export const ActionSchema = z
  .strictObject({
    dscp: dscpField.optional(),
    tos: z.number().int().min(0).max(255).optional(),
    priority: z.number().int().min(0).max(7).optional(),
    deny: z.string().refine((v) => ERRNO_NAMES.includes(v), {
      message: `expected an errno name: ${ERRNO_NAMES.join(', ')}`,
    }).optional(),
    none: z.literal(true).optional(),
    override: z.boolean().optional(),
    // host traffic control for the socket (docs/traffic-control.md, "For unmodified programs")
    service: z.string().optional(),
    template: z.string().optional(),
    flowspec: z.record(z.string(), z.unknown()).optional(),
    mode: z.string().optional(),
    // an RSVP reservation for the socket's flow, marked once admitted (docs/rsvp.md, "Reservations for programs that never asked")
    reserve: z.strictObject({
      service: z.string().optional(),
      template: z.string().optional(),
      flowspec: z.record(z.string(), z.unknown()).optional(),
      characterize: z.boolean().optional(),
    }).optional(),
    // a per-application limit: every socket this rule decides shares it (docs/apps.md)
    limit: z.strictObject({ egress: limitRate.optional(), ingress: limitRate.optional() })
      .refine((l) => l.egress !== undefined || l.ingress !== undefined, { message: 'a limit needs egress, ingress or both, e.g. { egress: 2Mbit, ingress: 10Mbit }' })
      .optional(),
  })
  .superRefine((a, ctx) => {
    const set = (['dscp', 'tos', 'priority', 'deny', 'none', 'service', 'template', 'flowspec', 'mode', 'reserve', 'limit'] as const).filter((k) => a[k] !== undefined);
    if (set.length === 0) ctx.addIssue({ code: 'custom', message: 'action needs one of dscp, tos, priority, deny, none, a flow (service, template, flowspec), reserve, or limit' });
    if (asksTc(a)) {
      try { tcRequestOf(a); } catch (e) { ctx.addIssue({ code: 'custom', message: (e as Error).message }); }
    }
    if (a.reserve !== undefined) {
      try { reserveRequestOf(a.reserve); } catch (e) { ctx.addIssue({ code: 'custom', message: (e as Error).message }); }
      if (asksTc(a)) ctx.addIssue({ code: 'custom', message: 'reserve makes its own flow once the Resv arrives: it cannot be combined with service, template, flowspec or mode (put them inside reserve)' });
    }
    if (a.dscp !== undefined && a.tos !== undefined) ctx.addIssue({ code: 'custom', message: 'give dscp or tos, not both' });
    if ((a.deny !== undefined || a.none !== undefined) && set.length > 1)
      ctx.addIssue({ code: 'custom', message: `${a.deny !== undefined ? 'deny' : 'none'} cannot be combined with ${set.filter((k) => k !== 'deny' && k !== 'none').join(', ') || 'another action'}` });
  });

export const RuleSchema = z.strictObject({
  name: ruleName.optional(),
  match: MatchSchema.default({}),
  action: ActionSchema,
});

/** The whole file; rule-name uniqueness is checked by the loader (load.ts). */
export const PolicySchema = z.strictObject({
  default: ActionSchema.optional(),
  rules: z.array(RuleSchema).default([]),
  /** A policy script beside the rules, relative to the policy file (docs/scripts.md). */
  script: z.string().min(1).regex(/\.(m?js|tcl)$/, 'a script is a JavaScript module (.js, .mjs) or a Tcl file (.tcl)').optional(),
});

export type PolicyDoc = z.infer<typeof PolicySchema>;
export type RuleDoc = z.infer<typeof RuleSchema>;
export type ActionDoc = z.infer<typeof ActionSchema>;
export type MatchDoc = z.infer<typeof MatchSchema>;
