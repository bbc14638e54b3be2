/* `qos explain`: why a program's call gets the decision it gets (policy/explain.ts): the rule
 * that decides with its line, every rule before it with the first condition that failed, and
 * which path enforces it for that program (the agent, eBPF, nftables, or none). The policy is a
 * file (--policy) or the daemon's running one; the program a running process (--pid: also its
 * sockets' marks in the kernel now, kernel/sockets.ts, and what the daemon decided for each) or
 * described (--exe, --user, --cmdline). */

import { readFileSync, readlinkSync } from 'node:fs';
import { isIP } from 'node:net';
import { Command } from 'commander';
import { QosError } from '../../errors.js';
import { adminSocket } from '../../paths.js';
import { print } from '../format.js';
import { positiveInt, wholeNumber } from '../options.js';
import { EVENT_NAMES, type EventName } from '../../policy/schema.js';
import type { KernelSocket } from '../../kernel/sockets.js';

/** "ADDR:PORT" or "[V6]:PORT" */
function endpoint(v: string, name: string): { address: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(v) ?? /^([^:]+):(\d{1,5})$/.exec(v);
  if (!m || !isIP(m[1]!) || Number(m[2]) > 65535) throw new QosError('QOS_ERR_USAGE', `${name} takes ADDRESS:PORT ([ADDRESS]:PORT for IPv6), not "${v}"`);
  return { address: m[1]!, port: Number(m[2]) };
}

/** A socket for people: its ends, the kernel's mark now, and what the daemon decided for it. */
function socketLine(k: KernelSocket & { daemon?: Record<string, unknown> }, dscpName: (v: number) => string): string {
  const mark = `TOS 0x${k.tos.toString(16).padStart(2, '0')} (${dscpName(k.tos >> 2)}), priority ${k.priority}`;
  const f = k.daemon;
  let said = '';
  if (f) {
    const d = f.decision as { dscp?: number; tos?: number; override?: boolean } | null;
    const app = f.appTos as number | null | undefined;
    said = `; decided by the ${f.path ?? 'agent'}${f.rule ? `, rule ${f.rule}` : ''}: ${String(f.class ?? '-')}`;
    if (app !== null && app !== undefined) said += `; the application set TOS 0x${app.toString(16)} itself: ${d?.override ? 'overridden (the rule says override)' : 'kept (the rule has no override)'}`;
    if (f.app_tos_kept === true) said += '; the application\'s own TOS kept (the rule has no override)';
  }
  return `fd ${k.fd} ${k.proto} ${k.state} ${k.local} -> ${k.remote}: ${mark}${said}`;
}

interface Opts { policy?: string; admin: string; pid?: number; fd?: number; exe?: string; cmdline?: string; user?: string; uid?: number; event: string; proto: string; remote?: string; local?: string; json?: boolean }

export function explainCommands(program: Command): void {
  program
    .command('explain')
    .description('say why a call of a program gets its decision: the rule that decides (with its line), each rule before it with the first condition that failed ("exe */zoom did not match /usr/bin/firefox"), and which path enforces it for that program: the agent, eBPF, nftables, or none; with --pid, the marks the kernel has on its sockets now (docs/policy.md, "Why this mark")')
    .option('--policy <file>', 'a policy file (default: the policy the daemon runs, asked on --admin)')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--pid <pid>', 'the program: a running process (its executable, command line, user, and whether it has the agent)', (v) => positiveInt(v, '--pid'))
    .option('--fd <n>', 'with --pid: one of its sockets; its protocol and remote end are the call unless given', (v) => wholeNumber(v, '--fd'))
    .option('--exe <path>', 'the program: its executable (without --pid)')
    .option('--cmdline <text>', 'its command line (without --pid)', '')
    .option('--user <name>', 'the user it runs as (without --pid; default: yours)')
    .option('--uid <n>', 'the uid it runs as (without --pid)', (v) => wholeNumber(v, '--uid'))
    .option('--event <event>', `the call: ${EVENT_NAMES.join(', ')}`, 'connect')
    .option('--proto <tcp|udp>', 'the protocol', 'tcp')
    .option('--remote <addr:port>', 'the remote end')
    .option('--local <addr:port>', 'the local end')
    .option('--json', 'print JSON')
    .action(async (o: Opts) => {
      if (!EVENT_NAMES.includes(o.event as EventName)) throw new QosError('QOS_ERR_USAGE', `--event takes ${EVENT_NAMES.join(', ')}, not "${o.event}"`);
      if (o.proto !== 'tcp' && o.proto !== 'udp') throw new QosError('QOS_ERR_USAGE', `--proto takes tcp or udp, not "${o.proto}"`);
      if (o.pid === undefined && o.exe === undefined) throw new QosError('QOS_ERR_USAGE', 'say which program: --pid PID (a running process) or --exe PATH');
      if (o.fd !== undefined && o.pid === undefined) throw new QosError('QOS_ERR_USAGE', '--fd is one of a process\'s sockets: give --pid too');
      const { parseAddr } = await import('../../policy/net.js');
      const { explainCall } = await import('../../policy/explain.js');
      const { policyFromText } = await import('../../policy/load.js');
      const { systemNames } = await import('../../kernel/rules.js');
      const { policyPlacement } = await import('../../kernel/manager.js');
      const { policyRuleInEbpf } = await import('../../ebpf/rules.js');
      const { resolvePatterns } = await import('../../ebpf/resolve.js');
      // the policy
      let text: string, source: string;
      // with the daemon's policy, whether its eBPF programs and nftables table are in place
      let live: { ebpf: boolean; kernel: boolean } | null = null;
      if (o.policy) {
        try { text = readFileSync(o.policy, 'utf8'); } catch (e) { throw new QosError('QOS_ERR_POLICY_IO', `cannot read ${o.policy}: ${(e as Error).message}`); }
        source = o.policy;
      } else {
        const { callJson } = await import('../../daemon/admin-client.js');
        const p = await callJson<{ text: string; source: string }>(o.admin, 'GET', '/v1/policy');
        text = p.text; source = p.source;
        const s = await callJson<{ ebpf?: { attached: boolean }; kernel?: { active: boolean } }>(o.admin, 'GET', '/v1/status');
        live = { ebpf: s.ebpf?.attached === true, kernel: s.kernel?.active === true };
      }
      const { doc } = await policyFromText(text, source, { anyPath: true });
      // the program
      const names = systemNames();
      const { NameTable } = await import('../../daemon/identity.js');
      const users = new NameTable('/etc/passwd'), groups = new NameTable('/etc/group');
      let who: { pid: number; uid: number; gid: number; user: string; group: string; exe: string; cmdline: string; unit: string; cgroup: string };
      let agent: boolean | null = null;
      if (o.pid !== undefined) {
        const { cgroupOf, cmdlineOf, credsOf } = await import('../../daemon/identity.js');
        const creds = credsOf(o.pid);
        if (!creds) throw new QosError('QOS_ERR_NOT_FOUND', `no process ${o.pid}`);
        let exe = '';
        try { exe = readlinkSync(`/proc/${o.pid}/exe`); } catch { throw new QosError('QOS_ERR_PRIVILEGE', `cannot read /proc/${o.pid}/exe: run qos explain as root or as the process's user`); }
        const { cgroup, unit } = cgroupOf(o.pid);
        who = { pid: o.pid, uid: creds.uid, gid: creds.gid, user: users.get(creds.uid, Date.now()), group: groups.get(creds.gid, Date.now()), exe, cmdline: cmdlineOf(o.pid), unit, cgroup };
        try { agent = readFileSync(`/proc/${o.pid}/maps`, 'utf8').includes('libqosagent.so'); } catch { agent = null; }
      } else {
        const uid = o.uid ?? (o.user !== undefined ? names.users.get(o.user) : process.getuid?.()) ?? 0;
        if (o.user !== undefined && !names.users.has(o.user)) throw new QosError('QOS_ERR_USAGE', `no user ${o.user} on this host`);
        who = { pid: 0, uid, gid: uid, user: o.user ?? users.get(uid, Date.now()), group: groups.get(uid, Date.now()), exe: o.exe!, cmdline: o.cmdline ?? '', unit: '', cgroup: '' };
      }
      // its sockets as the kernel has them now, and as the daemon decided them
      let sockets: (KernelSocket & { daemon?: Record<string, unknown> })[] | null = null, socketsError: string | null = null;
      if (o.pid !== undefined) {
        const { socketsOf } = await import('../../kernel/sockets.js');
        try { sockets = await socketsOf(o.pid); } catch (e) { socketsError = (e as Error).message.split('\n')[0]!; }
        try {
          const { callJson } = await import('../../daemon/admin-client.js');
          const flows = (await callJson<Record<string, unknown>[]>(o.admin, 'GET', '/v1/flows', undefined, 5000)).filter((f) => f.pid === o.pid);
          for (const s of sockets ?? []) {
            const f = flows.find((x) => x.fd === s.fd) ?? flows.find((x) => x.path === 'ebpf' && (x.remote as { port?: number } | null)?.port === Number(s.remote.split(':').pop()));
            if (f) s.daemon = f;
          }
        } catch { /* no daemon: the kernel's view alone */ }
      }
      const socket = o.fd === undefined ? undefined : sockets?.find((s) => s.fd === o.fd);
      if (o.fd !== undefined && !socket) throw new QosError('QOS_ERR_NOT_FOUND', socketsError ? `cannot read process ${o.pid}'s sockets: ${socketsError}` : `process ${o.pid} has no TCP or UDP socket on descriptor ${o.fd}`);
      if (socket && !o.remote && !/\*$/.test(socket.remote)) o.remote = socket.remote;
      if (socket && o.proto === 'tcp') o.proto = socket.proto;
      // the call
      const remote = o.remote ? endpoint(o.remote, '--remote') : undefined, local = o.local ? endpoint(o.local, '--local') : undefined;
      const family = (remote ?? local)?.address.includes(':') ? 'inet6' as const : 'inet' as const;
      const facts = {
        event: o.event as EventName, family, type: o.proto === 'tcp' ? 'stream' as const : 'dgram' as const, proto: o.proto as 'tcp' | 'udp',
        ...(remote ? { remote: { addr: parseAddr(remote.address)!, port: remote.port } } : {}), ...(local ? { local: { addr: parseAddr(local.address)!, port: local.port } } : {}),
      };
      const e = explainCall(doc, who, facts, text);
      // which path enforces the deciding rule for this program
      let path: { path: 'agent' | 'ebpf' | 'nftables' | 'none'; why: string } = { path: 'none', why: 'no rule decides: the default, or nothing' };
      const i = e.rule && e.rule !== 'default' ? doc.rules.findIndex((r, k) => (r.name ?? `rule-${k + 1}`) === e.rule) : -1;
      if (i >= 0) {
        const r = doc.rules[i]!;
        const inEbpf = policyRuleInEbpf(r, i, names).rule;
        const exeFiles = inEbpf?.exe ? [...resolvePatterns(inEbpf.exe).values()].flatMap((x) => x.files.map((f) => f.path)) : [];
        const kernel = policyPlacement({ ...doc, rules: [r] }, names).placements[0]!;
        if (agent) path = { path: 'agent', why: 'the process has the agent loaded: it decides, from this rule' };
        else if (inEbpf && exeFiles.includes(who.exe) && live?.ebpf !== false) path = { path: 'ebpf', why: `${agent === false ? 'the process has no agent; ' : ''}the eBPF programs hold this rule for ${who.exe}${live ? '' : ', if the daemon has them attached (qos status)'}` };
        else if (kernel.where === 'agent+kernel' && live?.kernel !== false) path = { path: 'nftables', why: `${agent === false ? 'the process has no agent; ' : ''}the nftables table holds this rule${live ? '' : ', if the daemon has it installed (qos status)'}` };
        else path = { path: agent === false ? 'none' : 'agent', why: agent === false ? `the process has no agent, and neither eBPF nor nftables can enforce this rule (${inEbpf ? `eBPF: ${who.exe} is not among the files its exe names` : policyRuleInEbpf(r, i, names).reason}; nftables: ${kernel.reason})` : 'only the agent can enforce this rule: the program must run under it (qos run)' };
      } else if (e.rule === 'default') path = { path: agent === false ? 'none' : 'agent', why: 'the policy\'s default is the agent\'s' };
      const out = { policy: source, program: who, agent, sockets, ...(socketsError ? { sockets_error: socketsError } : {}), call: { event: facts.event, proto: facts.proto, remote: remote ?? null, local: local ?? null }, decided_by: e.rule, line: e.line ?? null, decision: e.decision, path, rules: e.rules };
      if (o.json) return print(JSON.stringify(out, null, 2));
      const { dscpName } = await import('../../policy/dscp.js');
      const d = e.decision;
      const what = !d ? 'leave the socket alone' : d.deny ? `refuse with ${d.deny}` : [d.dscp !== undefined ? `DSCP ${dscpName(d.dscp)}` : '', d.tos !== undefined ? `TOS ${d.tos}` : '', d.priority !== undefined ? `priority ${d.priority}` : '', d.tc ? 'a traffic-control flow' : '', d.reserve ? 'an RSVP reservation' : ''].filter(Boolean).join(', ');
      print([
        `${facts.event} ${facts.proto}${remote ? ` to ${o.remote}` : ''} by ${who.exe}${who.pid ? ` (pid ${who.pid}` : ' ('}${who.pid ? ', ' : ''}user ${who.user})`,
        e.rule ? `decided by ${e.rule === 'default' ? 'the default' : `rule ${e.rule}`}${e.line ? ` (${source}:${e.line})` : ''}: ${what}` : 'no rule matches and there is no default: the socket is left alone',
        `enforced by: ${path.path} (${path.why})`,
        'rules:',
        ...e.rules.map((r) => `  ${r.position} ${r.name}${r.line ? ` (line ${r.line})` : ''}: ${r.result === 'failed' ? r.failed : r.result}`),
        ...(sockets ? [`sockets of pid ${who.pid} (the kernel's marks now, by ss --tos):`, ...(sockets.length ? sockets.map((k) => `  ${socketLine(k, dscpName)}`) : ['  none'])] : socketsError ? [`sockets: cannot read them: ${socketsError}`] : []),
      ].join('\n'));
    });
}
