/* A connection's mark as the kernel's connection tracking has it (`qos explain`): the kernel
 * rules' table keeps each flow's classification in the connection mark (docs/kernel-rules.md,
 * "The connection mark"), so the mark says which kernel rule took a socket's flow, read from
 * the kernel rather than worked out from the policy. Found in /proc/PID/net/nf_conntrack, the
 * entries of the process's own network namespace (the kernel's format:
 * net/netfilter/nf_conntrack_standalone.c, ct_seq_show). Pure. */

import { parseAddr } from '../policy/net.js';
import type { FiveTuple } from '../tc/attach.js';

const same = (a: string, b: string) => {
  const x = parseAddr(a), y = parseAddr(b);
  return !!x && !!y && x.every((w, i) => w === y[i]);
};

/** The mark of the entry whose original direction is t (the socket's packets going out), or
 * null if conntrack has none. The first src/dst/sport/dport of a line are the original
 * direction's, the second the reply's. */
export function markOf(text: string, t: FiveTuple): number | null {
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[2] !== t.proto) continue;
    const first = (k: string) => f.find((x) => x.startsWith(`${k}=`))?.slice(k.length + 1);
    const src = first('src'), dst = first('dst'), sport = first('sport'), dport = first('dport'), mark = first('mark');
    if (!src || !dst || mark === undefined || Number(sport) !== t.sport || Number(dport) !== t.dport) continue;
    if ((t.src === '*' || same(src, t.src)) && same(dst, t.dst)) return Number(mark);
  }
  return null;
}
