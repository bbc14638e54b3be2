/* What this host offers qosd, probed (docs/doctor.md): nftables and the features the kernel
 * rules use, tc's queueing disciplines, classifiers and actions and an IFB device (tried on a
 * veth pair in a namespace of the probe's own, removed after), cgroup v2, BTF and the eBPF
 * programs (loaded and attached to a cgroup of the probe's own, then removed), the agent library
 * and whether /etc/ld.so.preload names it. Each check says what works, what does not, what in
 * qosd needs it and what to install. `qos doctor` prints them; the daemon runs them at start and
 * `qos status` shows the summary. */

import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroup2Root, loadEbpf } from '../ebpf/marking.js';
import { installed, run, type Result } from '../exec.js';
import { AGENT_LIBRARY, EXE_MARK_OBJECT } from '../paths.js';
import { packageOf } from '../prerequisites.js';

/** One thing checked. */
export interface Check {
  id: string;
  /** what was checked, for people */
  what: string;
  ok: boolean;
  /** qosd needs it (for `for`); false: optional (what it gives is `for`), or, with `unused`,
   * something qosd does not use (`for` says what it uses instead): what this kernel lacks */
  needed: boolean;
  unused?: true;
  for: string;
  detail: string;
  /** what to do when it fails */
  fix?: string;
}

const quiet = { ok: 'any' as const, timeoutMs: 20_000 };
const failed = (r: Result) => r.code !== 0;
export const firstLine = (r: Result) => (r.stderr || r.stdout).trim().split('\n')[0] ?? '';

/** A check from one attempt that makes something: ok if it worked. A failure of something qosd
 * needs gets the fix; of something it does not use, `for` says what it uses instead. */
function tried(id: string, what: string, r: Result, needed: boolean, forText: string, fix: string): Check {
  const ok = !failed(r);
  return { id, what, ok, needed, ...(needed ? {} : { unused: true as const }), for: forText, detail: ok ? 'available' : firstLine(r), ...(!ok && needed ? { fix } : {}) };
}

/** The nftables features the kernel rules and the DSCP counters use, each a rule nft checks
 * (nft -c: the kernel validates the transaction, nothing is made). */
const NFT_FEATURES: [string, string][] = [
  ['ip dscp set', 'ip dscp set ef'],
  ['ip6 dscp set', 'ip6 dscp set ef'],
  ['meta priority set', 'meta priority set 1:10'],
  ['ct mark', 'ct mark set ct mark and 0xffffff00 or 0x1'],
  ['meta skuid', 'meta skuid 0 accept'],
  ['limit rate over', 'limit rate over 1 mbytes/second drop'],
];

async function nftChecks(): Promise<Check[]> {
  const uses = 'kernel rules (qos rules, policy rules on address and port) and the DSCP counters';
  if (!installed('nft')) return [{ id: 'nft', what: 'nftables (nft)', ok: false, needed: true, for: uses, detail: 'nft is not installed', fix: `apt-get install ${packageOf('nft')}` }];
  const v = await run(['nft', '--version'], quiet);
  const out: Check[] = [{ id: 'nft', what: 'nftables (nft)', ok: !failed(v), needed: true, for: uses, detail: v.stdout.trim() || firstLine(v) }];
  const dir = mkdtempSync(join(tmpdir(), 'qosd-doctor-nft-'));
  try {
    for (const [name, rule] of NFT_FEATURES) {
      const f = join(dir, 'check.nft');
      writeFileSync(f, `table inet qosd_doctor_check {\n chain c { type filter hook output priority 0; }\n set s { type inet_service; flags dynamic; counter; }\n map m { type ipv4_addr : verdict; flags interval; }\n}\nadd rule inet qosd_doctor_check c ${rule}\n`);
      const r = await run(['nft', '-c', '-f', f], quiet);
      out.push({ id: `nft:${name}`, what: `nft ${name}`, ok: !failed(r), needed: true, for: uses, detail: failed(r) ? firstLine(r) : 'the kernel takes it', ...(failed(r) ? { fix: 'a kernel with nf_tables and its expression modules (nft_meta, nft_ct, nft_limit), nftables 1.0 or later' } : {}) });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/** Queueing disciplines: those host traffic control uses, then others users ask about. */
const QDISCS: [string, string[], boolean][] = [
  ['htb', ['htb'], true], ['tbf', ['tbf', 'rate', '1mbit', 'burst', '10k', 'latency', '50ms'], true],
  ['netem', ['netem'], false], ['fq_codel', ['fq_codel'], false], ['cake', ['cake'], false], ['fq', ['fq'], false],
  ['sfq', ['sfq'], false], ['prio', ['prio'], false], ['drr', ['drr'], false], ['ets', ['ets', 'bands', '3'], false], ['hfsc', ['hfsc'], false],
];
const ACTIONS: [string, string[], boolean, string][] = [
  ['mirred', ['mirred', 'egress', 'redirect', 'dev', 'PEER'], true, 'ingress limits (packets redirected to an IFB device)'],
  ['police', ['police', 'rate', '1mbit', 'burst', '10k'], false, 'it polices with nft limit rate over'],
  ['skbedit', ['skbedit', 'priority', '1'], false, 'it sets the priority from nftables'],
  ['pedit', ['pedit', 'ex', 'munge', 'ip', 'dsfield', 'set', '0xb8'], false, 'it marks with nftables, the agent or eBPF'],
];

async function tcChecks(): Promise<Check[]> {
  const tcFor = 'host traffic control (qos tc, policy flows, RSVP reservations)';
  if (!installed('tc') || !installed('ip')) return [{ id: 'tc', what: 'tc and ip (iproute2)', ok: false, needed: true, for: tcFor, detail: 'tc or ip is not installed', fix: `apt-get install ${packageOf('ip')}` }];
  const ns = `qosdoc${process.pid}`;
  const inNs = (argv: string[]) => run(['ip', 'netns', 'exec', ns, ...argv], quiet);
  await run(['ip', 'netns', 'del', ns], quiet);
  const made = await run(['ip', 'netns', 'add', ns], quiet);
  // (a service under RestrictNamespaces=yes cannot make one: tc is then not probed, not failed)
  if (failed(made)) return [{ id: 'tc', what: 'tc (probed in a network namespace of its own)', ok: false, needed: false, for: tcFor, detail: `not probed: cannot make a network namespace (${firstLine(made)})`, fix: 'sudo qos doctor probes it' }];
  const out: Check[] = [];
  try {
    const link = await run(['ip', '-n', ns, 'link', 'add', 'q0', 'type', 'veth', 'peer', 'name', 'q1'], quiet);
    if (failed(link)) return [{ id: 'tc', what: 'a veth pair to probe tc on', ok: false, needed: true, for: tcFor, detail: firstLine(link), fix: 'a kernel with veth' }];
    await run(['ip', '-n', ns, 'link', 'set', 'q0', 'up'], quiet);
    for (const [name, args, needed] of QDISCS) {
      const r = await inNs(['tc', 'qdisc', 'add', 'dev', 'q0', 'root', ...args]);
      await inNs(['tc', 'qdisc', 'del', 'dev', 'q0', 'root']);
      out.push(tried(`qdisc:${name}`, `qdisc ${name}`, r, needed, needed ? tcFor : 'it shapes with HTB and TBF', `a kernel with sch_${name}`));
    }
    for (const q of ['clsact', 'ingress'] as const) {
      const r = await inNs(['tc', 'qdisc', 'add', 'dev', q === 'clsact' ? 'q0' : 'q1', q]);
      out.push(tried(`qdisc:${q}`, `qdisc ${q}`, r, true, q === 'clsact' ? 'the 802.1p tagger and ingress limits' : 'ingress limits', `a kernel with sch_${q}`));
    }
    for (const [name, args, needed] of [['u32', ['protocol', 'ip', 'u32', 'match', 'ip', 'dst', '192.0.2.1/32'], true], ['bpf', ['bpf', 'bytecode', '1,6 0 0 0,'], true], ['flower', ['protocol', 'ip', 'flower', 'dst_ip', '192.0.2.1'], false], ['matchall', ['matchall'], false]] as [string, string[], boolean][]) {
      const r = await inNs(['tc', 'filter', 'add', 'dev', 'q0', 'ingress', ...args]);
      out.push(tried(`filter:${name}`, `tc filter ${name}`, r, needed, needed ? (name === 'u32' ? tcFor : 'the 802.1p tagger') : 'it classifies with u32 and nftables', `a kernel with cls_${name}`));
    }
    for (const [name, args, needed, uses] of ACTIONS) {
      const r = await inNs(['tc', 'actions', 'add', 'action', ...args.map((a) => (a === 'PEER' ? 'q1' : a))]);
      out.push(tried(`action:${name}`, `tc action ${name}`, r, needed, uses, `a kernel with act_${name}`));
    }
    const ifb = await run(['ip', '-n', ns, 'link', 'add', 'qi0', 'type', 'ifb'], quiet);
    out.push(tried('ifb', 'IFB device', ifb, true, 'ingress limits', 'a kernel with the ifb module'));
  } finally {
    await run(['ip', 'netns', 'del', ns], quiet);
  }
  return out;
}

async function bpfChecks(): Promise<Check[]> {
  const ebpfFor = 'marking by program in the kernel (--ebpf, docs/ebpf.md)';
  const out: Check[] = [];
  const cg = cgroup2Root();
  out.push({ id: 'cgroup2', what: 'cgroup v2 hierarchy', ok: cg !== null, needed: true, for: ebpfFor, detail: cg ? `mounted at ${cg}` : 'none mounted', ...(cg ? {} : { fix: 'mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with the unified hierarchy)' }) });
  let btf = false;
  try { btf = readFileSync('/sys/kernel/btf/vmlinux').length > 0; } catch { /* none */ }
  out.push({ id: 'btf', what: 'kernel BTF (/sys/kernel/btf/vmlinux)', ok: btf, needed: true, for: ebpfFor, detail: btf ? 'present' : 'absent', ...(btf ? {} : { fix: 'a kernel built with CONFIG_DEBUG_INFO_BTF' }) });
  if (!cg || !btf) return out;
  const dir = join(cg, `qosd-doctor-${process.pid}`);
  let detail = '', ok = false;
  try {
    mkdirSync(dir);
    const n = loadEbpf();
    const h = n.open(EXE_MARK_OBJECT, dir);
    const d = n.describe(h);
    n.close(h);
    ok = true;
    detail = `${d.programs.length} programs loaded and attached to a cgroup of the probe's own (${d.programs.map((p) => p.section).join(', ')}), then removed`;
  } catch (e) {
    detail = (e as Error).message.split('\n')[0]!;
  } finally {
    try { rmdirSync(dir); } catch { /* not made */ }
  }
  out.push({ id: 'ebpf', what: 'the eBPF programs (bpf/exe-mark.bpf.o)', ok, needed: true, for: ebpfFor, detail, ...(ok ? {} : { fix: 'a kernel with CONFIG_CGROUP_BPF and BTF; build with make -C bpf and make -C native (Debian packages clang, libbpf-dev); run as root' }) });
  return out;
}

async function agentChecks(): Promise<Check[]> {
  const out: Check[] = [];
  const r = await run(['sh', '-c', 'exit 0'], { ...quiet, env: { ...process.env, LD_PRELOAD: AGENT_LIBRARY } });
  const loads = !failed(r) && !/cannot be preloaded|cannot open shared object/.test(r.stderr);
  out.push({ id: 'agent', what: `the agent library (${AGENT_LIBRARY})`, ok: loads, needed: true, for: 'marking by the agent (qos run, LD_PRELOAD)', detail: loads ? 'loads into a program (sh)' : firstLine(r) || 'does not load', ...(loads ? {} : { fix: 'build it with npm run build (make -C agent)' }) });
  let preload = '';
  try { preload = readFileSync('/etc/ld.so.preload', 'utf8'); } catch { /* none */ }
  const named = preload.split(/\s+/).some((p) => p.endsWith('libqosagent.so'));
  out.push({ id: 'preload', what: '/etc/ld.so.preload names the agent', ok: named, needed: false, for: 'every dynamically linked program under the agent without qos run (docs/agent.md, system-wide)', detail: named ? 'yes' : 'no: only programs started with qos run (or LD_PRELOAD) have the agent', ...(named ? {} : { fix: 'sudo qos install --preload (docs/agent.md, docs/install.md), if every program should be reached' }) });
  return out;
}

/** Every probe but the self-test; each group's failures are its checks, never an exception.
 * ebpf false: the eBPF programs are not loaded to try them (a daemon knows from its own). */
export async function probeHost(o: { ebpf?: boolean } = {}): Promise<Check[]> {
  const groups = await Promise.all([nftChecks(), tcChecks(), o.ebpf === false ? Promise.resolve([]) : bpfChecks(), agentChecks()]);
  return groups.flat();
}

/** The summary `qos status` shows: what qosd needs and lacks, and what the kernel lacks. */
export function summarize(checks: readonly Check[]): { ok: boolean; needed_missing: string[]; optional_missing: string[]; not_available: string[] } {
  return {
    ok: checks.every((c) => c.ok || !c.needed),
    needed_missing: checks.filter((c) => !c.ok && c.needed).map((c) => `${c.what}: ${c.detail}`),
    optional_missing: checks.filter((c) => !c.ok && !c.needed && !c.unused).map((c) => c.what),
    not_available: checks.filter((c) => !c.ok && c.unused).map((c) => c.what),
  };
}

/** A check as a line for people: ok, FAIL (qosd needs it: why, and the fix), or -- (optional,
 * or not used by qosd). */
export function checkLine(c: Check): string {
  if (c.ok) return `ok   ${c.what}: ${c.detail}`;
  if (c.needed) return `FAIL ${c.what}: ${c.detail}; needed for ${c.for}${c.fix ? `; fix: ${c.fix}` : ''}`;
  if (c.unused) return ` --  ${c.what}: not available (${c.detail}); qosd does not use it: ${c.for}`;
  return ` --  ${c.what}: ${c.detail}; optional, for ${c.for}${c.fix ? `: ${c.fix}` : ''}`;
}
