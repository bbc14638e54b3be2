/* Human-readable renderings of daemon answers (the --json forms print the data as is). */

import { columns } from '../columns.js';
import { DEFAULT_POLICY_FILE } from '../paths.js';
import { formatBitRate } from '../units.js';

type Rec = Record<string, unknown>;

function ep(e: unknown): string {
  if (!e || typeof e !== 'object') return '-';
  const { address, port } = e as { address: string; port: number };
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function cls(d: unknown): string {
  if (!d || typeof d !== 'object') return '-';
  const x = d as { tos?: number; dscp?: number; priority?: number; deny?: string };
  if (x.deny) return `deny ${x.deny}`;
  const parts = [];
  if (x.tos !== undefined) parts.push(`tos ${x.tos}`);
  if (x.dscp !== undefined) parts.push(`dscp ${x.dscp}`);
  if (x.priority !== undefined) parts.push(`prio ${x.priority}`);
  return parts.join(' ') || '-';
}

/** Why the daemon runs the policy it runs (daemon.ts PolicyOrigin). */
const ORIGIN: Record<string, string> = { option: ' (--policy)', default: ' (the default file)', 'built-in': ` (no ${DEFAULT_POLICY_FILE})`, fleet: ' (the fleet\'s: qos fleet push)' };

export function formatStatus(s: Rec): string {
  const p = s.policy as Rec;
  const err = p.last_error as { message: string; at: string } | null;
  return [
    `daemon       pid ${s.pid}, up ${s.uptime_s} s, protocol ${s.version}`,
    `agents       ${s.agents_connected} connected on ${s.agent_socket}${s.agent_timeout_ms === undefined ? '' : `, waiting ${s.agent_timeout_ms} ms for each answer unless told otherwise`}`,
    `policy       ${p.source}${ORIGIN[String(p.origin)] ?? ''}: ${p.rules} rules, loaded ${p.loaded_at}`,
    ...(err ? [`policy error ${err.at}: ${err.message} (previous policy in force)`] : []),
    `flows        ${s.flows}`,
    `decisions    ${s.decisions_total}`,
    ...(s.kernel ? formatKernel(s.kernel as Rec) : []),
    ...(s.ebpf ? formatEbpf(s.ebpf as Rec) : []),
    ...(s.doctor ? [formatDoctor(s.doctor as Rec)] : []),
    ...(s.tc ? [formatTc(s.tc as Rec)] : []),
    ...(s.fleet ? formatFleet(s.fleet as Rec) : []),
    ...(s.dashboard ? [`dashboard    ${(s.dashboard as Rec).url} (qos dashboard prints the URL to log in with)`] : []),
  ].join('\n');
}

/** This node in its fleet: etcd, what it runs from it, what it refused. */
function formatFleet(f: Rec): string[] {
  const pad = '             ';
  const v = (x: unknown) => { const a = x as { key: string; revision: number } | null; return a ? `${a.key}@${a.revision}` : 'none yet'; };
  const applied = f.applied as Rec;
  const refused = f.refused as Record<string, { key: string; revision: number; error: string } | null>;
  const groups = (f.groups as string[]).join(',');
  const etcd = f.etcd_error as { error: string; at: string } | null;
  return [
    `fleet        node ${f.node}${groups ? ` (groups ${groups})` : ''} of ${f.fleet} ${f.prefix}: ${f.connected ? `connected, revision ${f.revision}` : `not connected${etcd ? ` since ${etcd.at}: ${etcd.error}` : ''}; enforcing what it last applied`}`,
    `${pad}policy ${v(applied.policy)}, rules ${v(applied.rules)}`,
    ...Object.entries(refused).filter(([, r]) => r).map(([k, r]) => `${pad}refused ${k} ${r!.key}@${r!.revision}: ${r!.error}`),
  ];
}

/** Per-executable marking: where the programs are attached and what they hold, or why not; the
 * per-application counting and limits (docs/apps.md). */
function formatEbpf(e: Rec): string[] {
  if (!e.attached) return [`ebpf         not attached${e.mode === 'off' ? '' : ` (--ebpf ${e.mode})`}: ${e.problem}`];
  const rules = e.rules as string[], files = e.files as string[], notes = e.notes as string[];
  const out = [`ebpf         ${(e.programs as unknown[]).length} programs on cgroup ${e.cgroup}, generation ${e.generation}: ${rules.length} exe rules${rules.length ? ` (${rules.join(', ')})` : ''} naming ${files.length} files; ${e.sockets_decided} sockets decided, ${e.calls_refused} calls refused${notes.length ? `; ${notes.length} notes (qos status --json)` : ''}`];
  const st = e.stats as Rec | null, l = e.limits as Rec | undefined;
  if (st) out.push(`apps         ${st.programs} programs counted (qos top)`);
  const limits = (l?.limits as Rec[] | undefined) ?? [];
  if (l && (limits.length || l.problem)) {
    const rate = (bps: unknown) => (typeof bps === 'number' ? formatBitRate(bps / 8) : '-');
    out.push(`limits       ${l.problem ? `not in place: ${l.problem}` : `${limits.length} on ${l.ifb} (${limits.map((x) => `${x.name}: out ${rate(x.egress_bps)}, in ${rate(x.ingress_bps)}`).join('; ')}), on ${(l.interfaces as string[]).join(', ') || 'no interface'}; ${l.sockets_tagged} sockets of the agent's tagged`}`);
  }
  return out;
}

/** The host probe at start (qos doctor's, without its self-test). */
function formatDoctor(d: Rec): string {
  if (!d.checked_at) return `host         ${d.probing ? 'being probed' : 'not probed (--probe off)'}`;
  const needed = d.needed_missing as string[], optional = d.optional_missing as string[], na = d.not_available as string[];
  return `host         probed ${d.checked_at}: ${needed.length ? `${needed.length} things qosd needs do not work: ${needed.join('; ')}` : 'everything qosd needs works'}`
    + `${optional.length ? `; optional, not set up: ${optional.join(', ')}` : ''}${na.length ? `; not in this kernel (qosd does not use them): ${na.join(', ')}` : ''} (qos doctor)`;
}

/** Host traffic control: what is under it, and the sockets policy put in flows. */
function formatTc(t: Rec): string {
  const policy = Number(t.sockets_attached) || Number(t.sockets_not_attached) || Number(t.sockets_over_user_bound)
    ? `; sockets by policy ${t.sockets_attached} attached, ${t.sockets_not_attached} not, ${t.sockets_over_user_bound} past a user's bound` : '';
  const absent = (t.absent as Array<{ dev: string; since: string; why: string }> | undefined) ?? [];
  const last = t.last_link_event as { at: string; dev: string; what: string; from?: string; why?: string } | null | undefined;
  const pad = '             ';
  return [
    `tc           ${t.interfaces} interfaces, ${t.flows} flows, ${t.filters} filters (qos tc flows)${policy}`,
    ...absent.map((a) => `${pad}${a.dev} absent since ${a.since} (${a.why}): ${a.dev}'s flows wait for it`),
    ...(last ? [`${pad}last interface change: ${last.dev} ${last.what}${last.from ? ` (was ${last.from})` : ''} at ${last.at}${last.why ? `: ${last.why}` : ''}`] : []),
  ].join('\n');
}

/** What the kernel table is, where, and on whom it acts; or why there is none. */
export function formatKernel(k: Rec): string[] {
  const pad = '             ';
  if (!k.active) return [`kernel       none${k.mode === 'off' ? '' : ` (--kernel ${k.mode})`}: ${k.problem}`];
  const ns = k.namespace as { id: string | null; name: string | null; host: boolean | null } | null;
  const where = `network namespace ${ns?.id ?? 'unknown'}${ns?.host ? " (the host's)" : ''}${ns?.name ? ` (named ${ns.name})` : ''}`;
  const bits = `connection-mark bits ${k.ct_mask} (rule number ${k.ct_rule_bits}, generation ${k.ct_generation_bits}; at most ${k.max_rules} rules)`;
  if (!k.installed) return [`kernel       no table: no policy rule the kernel can express and no \`qos rules\` (--kernel ${k.mode}; would use ${bits})`];
  const policy = k.policy_kernel_rules as string[];
  return [
    `kernel       table ${k.table} in ${where}, hook ${k.hook} priority ${k.priority}, ${bits}`,
    `${pad}${policy.length} policy rules${policy.length ? ` (${policy.join(', ')})` : ''} and ${k.rule_set_in_kernel} \`qos rules\` rules mark ${k.acts_on}; --kernel off: none`,
  ];
}

export function formatFlows(flows: Rec[]): string {
  // PATH: which part decided: the agent (a socket call it asked about) or eBPF (a connect or
  // first send of a program its exe rules name; no descriptor, no local end)
  const rows = flows.map((f) => [String(f.path ?? 'agent'), String(f.pid), String(f.fd ?? '-'), String(f.proto ?? f.type ?? '-'), ep(f.local), ep(f.remote), cls(f.decision), String(f.rule ?? '-'), String(f.exe)]);
  const head = ['PATH', 'PID', 'FD', 'PROTO', 'LOCAL', 'REMOTE', 'MARK', 'RULE', 'EXE'];
  return columns([head, ...rows]).join('\n');
}

export function formatDecision(r: Rec): string {
  return `${r.time} ${r.event} pid=${r.pid} user=${r.user} fd=${r.fd} remote=${ep(r.remote)} rule=${r.rule ?? '-'} -> ${shownReply(String(r.reply ?? ''))}${r.cached ? ' (cached)' : ''} ${r.exe}`;
}

/** A reply as a user reads it: without the agent's cache token (CACHE <generation>, which only
 * says the agent may reuse the answer). */
function shownReply(reply: string): string {
  return reply.replace(/(^| )CACHE \d+$/, '') || '(none)';
}

/** Prints S on standard output as one or more whole lines. */
export function print(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : s + '\n');
}
