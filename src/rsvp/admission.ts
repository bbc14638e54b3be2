/* Admission control for the RSVP engine (the role of an ACS or subnet bandwidth manager): a
 * share of each link's rate is reservable, and each user and application may hold at most its
 * quota, summed over every link. A reservation's bandwidth is its Controlled Load Tspec's r or
 * its Guaranteed Rspec's R. Pure bookkeeping: what is admitted is held until released. */

import { bandwidth } from './engine/state.js';
import type { Admission, PolicyIdentity } from './engine/types.js';
import type { Flowspec } from './flowspec.js';

export interface AdmissionConfig {
  /** per interface: its rate (bytes/s) and the share of it reservations may take (0..1). An
   * interface not listed has nothing reservable. */
  links: Record<string, { rate: number; share: number }>;
  /** per-user quota, bytes/s (RFC 3182 AUTH_USER credential) */
  users?: Record<string, number>;
  /** per-application quota, bytes/s (RFC 3182 AUTH_APP credential) */
  apps?: Record<string, number>;
  /** the quota of a user or application not listed (also of a request that names none); none: unlimited */
  default?: { user?: number; app?: number };
}

/** RFC 2205 appendix B, code 1 (admission control failure), the globally defined sub-code
 * form (ss = 00): 2 "Requested bandwidth unavailable". */
export const ADMISSION_BANDWIDTH_UNAVAILABLE = 2;
/** RFC 2750 section 4, code 2 (policy control failure): 4 "Quota or accounting violation". */
export const POLICY_QUOTA_VIOLATION = 4;

const ANONYMOUS = '';

interface Held { ifname: string; bw: number; user: string; app: string }

export class LinkAdmission implements Admission {
  private readonly held = new Map<string, Held>();
  private readonly onLink = new Map<string, number>();
  private readonly byUser = new Map<string, number>();
  private readonly byApp = new Map<string, number>();

  constructor(private readonly config: AdmissionConfig) {}

  admit(req: { key: string; ifname: string; flowspec: Flowspec; previous: Flowspec | null; identity: PolicyIdentity }): { ok: true } | { ok: false; code: number; value: number; reason: string } {
    const bw = bandwidth(req.flowspec);
    const user = req.identity.user ?? ANONYMOUS, app = req.identity.app ?? ANONYMOUS;
    const old = this.held.get(req.key);
    // what the key holds now is given back before the change is judged: a change is judged by its difference
    const minus = (h: Held | undefined, field: 'ifname' | 'user' | 'app', name: string) => (h && h[field] === name ? h.bw : 0);
    const userQuota = this.config.users?.[user] ?? this.config.default?.user ?? Infinity;
    if (use(this.byUser, user) - minus(old, 'user', user) + bw > userQuota) {
      return { ok: false, code: 2, value: POLICY_QUOTA_VIOLATION, reason: `user ${user || '(none)'}: ${bw} bytes/s over the quota of ${userQuota}` };
    }
    const appQuota = this.config.apps?.[app] ?? this.config.default?.app ?? Infinity;
    if (use(this.byApp, app) - minus(old, 'app', app) + bw > appQuota) {
      return { ok: false, code: 2, value: POLICY_QUOTA_VIOLATION, reason: `application ${app || '(none)'}: ${bw} bytes/s over the quota of ${appQuota}` };
    }
    const link = this.config.links[req.ifname];
    const reservable = link ? link.rate * link.share : 0;
    if (use(this.onLink, req.ifname) - minus(old, 'ifname', req.ifname) + bw > reservable) {
      return { ok: false, code: 1, value: ADMISSION_BANDWIDTH_UNAVAILABLE, reason: `${req.ifname}: ${bw} bytes/s more than the ${reservable} reservable is free` };
    }
    this.release(req.key);
    const h: Held = { ifname: req.ifname, bw, user, app };
    this.held.set(req.key, h);
    add(this.onLink, h.ifname, bw); add(this.byUser, user, bw); add(this.byApp, app, bw);
    return { ok: true };
  }

  release(key: string): void {
    const h = this.held.get(key);
    if (!h) return;
    this.held.delete(key);
    add(this.onLink, h.ifname, -h.bw); add(this.byUser, h.user, -h.bw); add(this.byApp, h.app, -h.bw);
  }

  /** Bytes/s held on an interface, by a user, by an application. */
  usage(): { links: Record<string, number>; users: Record<string, number>; apps: Record<string, number> } {
    return { links: Object.fromEntries(this.onLink), users: Object.fromEntries(this.byUser), apps: Object.fromEntries(this.byApp) };
  }
}

const use = (m: Map<string, number>, k: string) => m.get(k) ?? 0;

function add(m: Map<string, number>, k: string, n: number): void {
  const v = use(m, k) + n;
  if (v > 0) m.set(k, v); else m.delete(k);
}
