/* POST /v1/explain (docs/policy.md, "Why this mark"): `qos explain` answered by the daemon from
 * its own parts: the running policy, its flows, what its eBPF programs and nftables table hold,
 * and its traffic control; the same JSON `qos explain --json` prints (report.ts assembles both).
 * An admin route like the others (root, the daemon's user, --admin-group): it shows what the
 * flow table shows. The body is the CLI's options by their names: { pid, fd, exe, cmdline,
 * user, uid, event, proto, remote, local }. */

import { readlinkSync } from 'node:fs';
import type { Route } from '../component.js';
import type { RunningPolicy } from '../daemon/running-policy.js';
import type { EbpfMarking } from '../ebpf/marking.js';
import type { KernelRules } from '../kernel/manager.js';
import { ruleLines } from '../policy/explain.js';
import type { TrafficControl } from '../tc/control.js';
import { explain, explainInput, type DaemonFlow, type ExplainSources, type LiveState } from './report.js';
import type { TcListing } from './tc-place.js';

export interface DaemonParts {
  policy: RunningPolicy;
  kernel: KernelRules;
  ebpf: EbpfMarking;
  /** absent with --tc off */
  tc?: TrafficControl;
  /** what GET /v1/flows lists */
  flows(): DaemonFlow[];
}

/** The daemon's parts as explain's sources. */
export function daemonSources(d: DaemonParts): ExplainSources {
  // the rules' lines, found once per policy text (a YAML parse of the whole text)
  let memo: { sha: string; lines: number[] } | null = null;
  let netns: string | null = null;
  try { netns = readlinkSync('/proc/self/ns/net'); } catch { /* unknown: no socket is taken as in it */ }
  return {
    policy: async () => {
      const p = d.policy;
      if (memo?.sha !== p.sha256) memo = { sha: p.sha256, lines: ruleLines(p.text) };
      return { doc: p.doc, text: p.text, source: p.source, lines: memo.lines };
    },
    live: async (): Promise<LiveState> => {
      const e = (d.ebpf.status() as { ebpf: LiveState['ebpf'] }).ebpf;
      return { ebpf: { attached: e.attached, files: e.files, rules: e.rules }, kernel: d.kernel.status().active === true };
    },
    flows: async () => d.flows(),
    tc: async () => (d.tc ? d.tc.list() as unknown as TcListing : 'the daemon runs without traffic control (--tc off)'),
    connectionRule: (mark) => d.kernel.connectionRule(mark) ?? 'the daemon has no nftables table installed',
    limit: (pid, fd) => d.ebpf.socketLimit(pid, fd),
    netns,
  };
}

export function explainRoutes(d: DaemonParts): Route[] {
  const sources = daemonSources(d);
  return [{ method: 'POST', path: '/v1/explain', body: true, handle: async (r) => ({ json: await explain(explainInput(r.body), sources, r.uid) }) }];
}
