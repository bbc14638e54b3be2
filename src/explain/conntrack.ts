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

/** Conntrack's entries by protocol and ports, each with its original direction's addresses and
 * its mark: read once for all of a process's sockets. */
export type ConntrackIndex = Map<string, { src: string; dst: string; mark: number }[]>;

/** The entries of nf_conntrack's text. The first src/dst/sport/dport of a line are the
 * original direction's (the socket's packets going out), the second the reply's. */
export function conntrackIndex(text: string): ConntrackIndex {
  const out: ConntrackIndex = new Map();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    const first = (k: string) => f.find((x) => x.startsWith(`${k}=`))?.slice(k.length + 1);
    const src = first('src'), dst = first('dst'), sport = first('sport'), dport = first('dport'), mark = first('mark');
    if (!src || !dst || !sport || !dport || mark === undefined || (f[2] !== 'tcp' && f[2] !== 'udp')) continue;
    const key = `${f[2]} ${Number(sport)} ${Number(dport)}`;
    const list = out.get(key) ?? [];
    list.push({ src, dst, mark: Number(mark) });
    out.set(key, list);
  }
  return out;
}

/** The mark of the entry whose original direction is t, or null if conntrack has none. */
export function markOf(ix: ConntrackIndex, t: FiveTuple): number | null {
  const hit = ix.get(`${t.proto} ${t.sport} ${t.dport}`)?.find((e) => (t.src === '*' || same(e.src, t.src)) && same(e.dst, t.dst));
  return hit ? hit.mark : null;
}
