/* Which network namespace the daemon (and so its nftables table) is in: a table acts on the
 * packets of every process in that namespace, so status and the start-up log name it. */

import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface NetnsInfo {
  /** as the kernel names it: net:[4026531840] */
  id: string | null;
  /** its name under /run/netns (what `ip netns identify` prints), if it has one */
  name: string | null;
  /** whether it is the host's (the kernel's initial namespace, or PID 1's); null: unknown */
  host: boolean | null;
}

/** The daemon's network namespace; fields it cannot read are null. */
export function currentNetns(runDir = '/run/netns'): NetnsInfo {
  const self = '/proc/self/ns/net';
  const id = tryOr(() => readlinkSync(self), null);
  const me = tryOr(() => statSync(self), null);
  const init = tryOr(() => statSync('/proc/1/ns/net'), null);
  let name: string | null = null;
  if (me) {
    for (const n of tryOr(() => readdirSync(runDir), [] as string[])) {
      const s = tryOr(() => statSync(join(runDir, n)), null);
      if (s && s.ino === me.ino && s.dev === me.dev) { name = n; break; }
    }
  }
  // Recent kernels give the initial namespace a fixed number (PROC_NET_INIT_INO); others are
  // numbered from 0xf0000000 up. Otherwise compare with PID 1's, when we may read it.
  const host = me?.ino === INIT_NET_INO ? true : me && init ? me.ino === init.ino && me.dev === init.dev : null;
  return { id, name, host };
}

/** include/linux/proc_ns.h: the initial network namespace's inode number. */
const INIT_NET_INO = 0xeffffff9;

function tryOr<T>(fn: () => T, fallback: T): T {
  try { return fn(); } catch { return fallback; }
}

/** One phrase: "net:[4026531840] (the host's)", "net:[4026532290] (named q1c)". */
export function describeNetns(n: NetnsInfo): string {
  const notes = [n.host === true ? "the host's" : null, n.name ? `named ${n.name}` : null].filter(Boolean);
  return `${n.id ?? 'unknown'}${notes.length ? ` (${notes.join(', ')})` : ''}`;
}
