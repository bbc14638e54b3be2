/* `qos explain` for people: the report (report.ts) as lines, from the JSON alone, so the CLI
 * prints the same whether it assembled the report or the daemon did, and the dashboard says
 * each part in the same words. Pure, and nothing of Node's (the browser app bundles it). */

import { dscpName } from '../policy/dscp.js';
import { formatBitRate } from '../units.js';
import type { DecisionJson, ExplainReport, LimitPlace, OwnTos, SocketReport, TcPlace } from './types.js';

const hex = (v: number) => `0x${v.toString(16).padStart(2, '0')}`;
const mark = (m: { dscp: number; pcp: number }) => `${dscpName(m.dscp)}, 802.1p ${m.pcp}`;

/** What a decision does to a socket, in words. */
export function decisionText(d: DecisionJson | null): string {
  if (!d) return 'leave the socket alone';
  if (d.deny) return `refuse with ${d.deny}`;
  return [d.dscp !== undefined ? `DSCP ${dscpName(d.dscp)}` : '', d.tos !== undefined ? `TOS ${d.tos}` : '', d.priority !== undefined ? `priority ${d.priority}` : '', d.override ? 'over the application\'s own' : '', d.tc ? 'a traffic-control flow' : '', d.reserve ? 'an RSVP reservation' : ''].filter(Boolean).join(', ');
}

/** The traffic-control flow a socket's packets fall in, in words. */
export function tcText(p: TcPlace): string {
  if (p.in === 'none') return `none (${p.why})`;
  const f = p.flow, o = f.owner;
  const owner = o.kind === 'policy' ? `, made for pid ${o.pid} fd ${o.fd} by rule ${o.rule}` : o.kind === 'rsvp' ? `, an RSVP reservation's (${o.reservation})` : '';
  return `flow ${f.id}${f.name ? ` (${f.name})` : ''} on ${p.dev}, HTB class ${f.class}, ${f.mode}, ${f.service}${owner}; conforming ${mark(f.conforming)}, non-conforming ${mark(f.nonconforming)}; by filter ${p.filter.id} (${p.filter.exact ? 'exact' : 'with wildcards'}: ${p.filter.match})`;
}

/** The kernel rule a connection's mark names, in words. */
export function limitText(l: LimitPlace): string {
  if (l.in === 'none') return `none: ${l.why}`;
  const rate = (bps: number | null) => (bps === null ? 'not limited' : formatBitRate(bps / 8));
  return `${l.name}: sending ${rate(l.egress_bps)}, receiving ${rate(l.ingress_bps)}, shared by every socket the rule decides`;
}

export function kernelRuleText(k: SocketReport['kernel_rule']): string {
  if ('why' in k) return `unknown (${k.why})`;
  // a packet carrying a DSCP already goes to the override rules alone: its flow is never classified
  if (!k.generation) return `none: the connection mark ${k.mark} says the table never classified the flow (its packets carry a DSCP already, the application's or the agent's, which only override rules change)`;
  const gen = `generation ${k.generation}${k.current ? ', the current one' : ', not the current one: its next packet is classified again'}`;
  if (!k.number) return `none: the connection mark ${k.mark} says no kernel rule took the flow (${gen})`;
  const r = k.rule;
  return `${r ? `${r.origin === 'policy' ? 'policy rule' : `qos rules rule ${r.position}`} ${r.name ?? ''}`.trim() : `rule number ${k.number}, which the table no longer has`} (connection mark ${k.mark}: number ${k.number}, ${gen})`;
}

/** What the application asked for itself and whether the kernel has it, in words. */
export function ownTosText(own: OwnTos | null, kernelTos: number): string {
  if (!own) return 'the application set no TOS of its own (as far as the agent or the eBPF programs saw)';
  const asked = own.asked === null ? 'the application\'s own TOS' : `the application set TOS ${hex(own.asked)} itself`;
  return own.honoured ? `${asked}: honoured, the kernel has it (${own.override ? 'though the rule says override' : 'the rule has no override'})` : `${asked}: not honoured, the kernel has ${hex(kernelTos)} (${own.override ? 'the rule says override' : 'the rule has no override'})`;
}

/** The kernel's mark on a socket now, in words. */
export const kernelMarkText = (k: Pick<SocketReport, 'tos' | 'priority'>): string => `TOS ${hex(k.tos)} (${dscpName(k.tos >> 2)}), priority ${k.priority}`;

/** A socket's first line: its ends and the kernel's mark now, and what the daemon decided. */
function socketLine(k: SocketReport): string {
  const kernel = kernelMarkText(k);
  const f = k.daemon;
  let said = f ? `; decided by the ${f.path ?? 'agent'}${f.rule ? `, rule ${f.rule}` : ''}: ${f.class}` : '';
  if (k.own_tos) said += `; ${ownTosText(k.own_tos, k.tos)}`;
  return `fd ${k.fd} ${k.proto} ${k.state} ${k.local} -> ${k.remote}: ${kernel}${said}`;
}

export function explanationText(r: ExplainReport): string {
  const p = r.program, c = r.call;
  const remote = c.remote ? (c.remote.address.includes(':') ? `[${c.remote.address}]:${c.remote.port}` : `${c.remote.address}:${c.remote.port}`) : null;
  const socketLines = (k: SocketReport) => [`  ${socketLine(k)}`, `    nftables: ${kernelRuleText(k.kernel_rule)}`, `    traffic control: ${tcText(k.tc)}`, `    limit: ${limitText(k.limit)}`];
  return [
    `${c.event} ${c.proto}${remote ? ` to ${remote}` : ''} by ${p.exe} (${p.pid ? `pid ${p.pid}, ` : ''}user ${p.user})`,
    r.decided_by ? `decided by ${r.decided_by === 'default' ? 'the default' : `rule ${r.decided_by}`}${r.line ? ` (${r.policy}:${r.line})` : ''}: ${decisionText(r.decision)}` : 'no rule matches and there is no default: the socket is left alone',
    `enforced by: ${r.path.path} (${r.path.why})`,
    'rules:',
    ...r.rules.map((x) => `  ${x.position} ${x.name}${x.line ? ` (line ${x.line})` : ''}: ${x.result === 'failed' ? x.failed : x.result}`),
    ...(r.sockets ? [`sockets of pid ${p.pid} (the kernel's marks now, by ss --tos):`, ...(r.sockets.length ? r.sockets.flatMap(socketLines) : ['  none'])] : r.sockets_error ? [`sockets: cannot read them: ${r.sockets_error}`] : []),
  ].join('\n');
}
