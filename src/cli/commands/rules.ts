/* `qos rules ...`: the kernel rule set through the daemon's admin API (kernel/api.ts). */

import { Command } from 'commander';
import { QosError } from '../../errors.js';
import { adminSocket } from '../../paths.js';
import { callJson } from '../../daemon/admin-client.js';
import { print } from '../format.js';

/** Edits of 10,000 rules take a second or two; listing counters of them too. */
const TIMEOUT_MS = 120_000;

const csv = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);
const one = <T>(xs: T[]): T | T[] => (xs.length === 1 ? xs[0]! : xs);
const num = (v: string) => (/^\d+$/.test(v) ? Number(v) : v);

interface RuleFlags {
  rule?: string; name?: string; family?: string; proto?: string; remote?: string; local?: string; remotePort?: string; localPort?: string;
  uid?: string; gid?: string; user?: string; group?: string; dscp?: string; tos?: string; priority?: string; override?: boolean;
}

/** The rule the flags describe (or --rule JSON). */
function ruleFromFlags(o: RuleFlags): unknown {
  if (o.rule) {
    try { return JSON.parse(o.rule); } catch (e) { throw new QosError('QOS_ERR_USAGE', `--rule is not JSON: ${(e as Error).message}`); }
  }
  const match: Record<string, unknown> = {};
  const set = (k: string, v: string | undefined, f: (x: string) => unknown = (x) => x) => { if (v !== undefined) match[k] = one(csv(v).map(f)); };
  set('family', o.family); set('proto', o.proto, num); set('remote', o.remote); set('local', o.local);
  set('remote_port', o.remotePort, num); set('local_port', o.localPort, num);
  set('uid', o.uid, Number); set('gid', o.gid, Number); set('user', o.user); set('group', o.group);
  const action: Record<string, unknown> = {};
  if (o.dscp !== undefined) action.dscp = num(o.dscp);
  if (o.tos !== undefined) action.tos = Number(o.tos);
  if (o.priority !== undefined) action.priority = Number(o.priority);
  if (o.override) action.override = true;
  return { ...(o.name ? { name: o.name } : {}), match, action };
}

function ruleOptions(c: Command): Command {
  return c
    .option('--name <name>', 'a name to refer to the rule by')
    .option('--family <f>', 'inet or inet6')
    .option('--proto <p>', 'tcp, udp, icmp, icmpv6, sctp, udplite or a number (comma-separated list)')
    .option('--remote <cidr>', 'destination address or prefix (list)')
    .option('--local <cidr>', 'source address or prefix (list)')
    .option('--remote-port <ports>', 'destination port or range a-b (list)')
    .option('--local-port <ports>', 'source port or range (list)')
    .option('--uid <ids>', "the sending socket's uid (list)").option('--gid <ids>', "the sending socket's gid (list)")
    .option('--user <names>', 'user name(s)').option('--group <names>', 'group name(s)')
    .option('--dscp <v>', 'DSCP name (EF, AF41, CS1...) or 0-63').option('--tos <n>', 'TOS byte 0-255 (its DSCP bits)')
    .option('--priority <n>', 'socket priority 0-7').option('--override', 're-mark packets that already carry a DSCP')
    .option('--rule <json>', 'the whole rule as JSON instead: {"match":{...},"action":{...}}');
}

function editOptions(c: Command): Command {
  return c
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--revision <n>', 'refuse the edit if the set is no longer at this revision (from `qos rules list`)', (v) => {
      if (!/^\d+$/.test(v)) throw new QosError('QOS_ERR_USAGE', `--revision takes a whole number, not "${v}"`);
      return Number(v);
    })
    .option('--dry-run', 'print the nftables documents (prepare, then switch: a JSON array) instead of applying them')
    .option('--nft', 'with --dry-run: print them as nft text instead (the `nft -f` commands, one transaction after the other)')
    .option('--json', 'print JSON');
}

interface EditOpts { admin: string; revision?: number; dryRun?: boolean; nft?: boolean; json?: boolean }
interface EditReport { revision: number; applied: boolean; apply_ms: number; commands: number; layers: Record<string, number>; dry_run?: unknown; nft?: string }

async function edit(o: EditOpts, method: string, path: string, body: Record<string, unknown>, what: string): Promise<void> {
  if (o.nft && !o.dryRun) throw new QosError('QOS_ERR_USAGE', '--nft goes with --dry-run (it prints what the edit would apply)');
  const r = await callJson<EditReport>(o.admin, method, path, { ...body, ...(o.revision !== undefined ? { revision: o.revision } : {}), ...(o.dryRun ? { dry_run: true } : {}) }, TIMEOUT_MS);
  if (o.dryRun && o.nft) { process.stdout.write(r.nft ?? ''); return; }
  if (o.dryRun) { print(JSON.stringify(r.dry_run, null, o.json ? 2 : undefined)); return; }
  if (o.json) { print(JSON.stringify(r, null, 2)); return; }
  const layers = Object.entries(r.layers).filter(([, n]) => n).map(([k, n]) => `${k}:${n}`).join(' ') || 'none';
  print(`${what}; revision ${r.revision}; ${r.applied ? `applied in ${r.apply_ms} ms (${r.commands} nft commands; layers ${layers})` : 'stored, not applied (kernel rules inactive: see `qos rules status`)'}`);
}

function summary(r: { match?: Record<string, unknown>; action: Record<string, unknown> }): { match: string; action: string } {
  const fmt = (o: Record<string, unknown> | undefined) => Object.entries(o ?? {}).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`).join(' ');
  return { match: fmt(r.match) || '(any: default rule)', action: fmt(r.action) };
}

/** Registers `qos rules` and its subcommands. */
export function rulesCommands(program: Command): void {
  const rules = new Command('rules').description('the kernel marking rules (nftables): ordered, first match wins; they cover programs the agent cannot reach (docs/kernel-rules.md)');

  rules.command('list').description('the rule set in order, with packet and byte counters, and the policy rules also enforced in the kernel')
    .option('--admin <path>', 'admin API socket', adminSocket()).option('--json', 'print JSON')
    .action(async (o: { admin: string; json?: boolean }) => {
      const l = await callJson<{ revision: number; enabled: boolean; rules: ({ position: number; name?: string; match?: Record<string, unknown>; action: Record<string, unknown>; enabled?: boolean; packets: number; bytes: number })[]; policy_rules: { position: number; name?: string; where: string; reason?: string; packets?: number }[] }>(o.admin, 'GET', '/v1/rules', undefined, TIMEOUT_MS);
      if (o.json) { print(JSON.stringify(l, null, 2)); return; }
      const lines = [`rule set: revision ${l.revision}, ${l.enabled ? 'enabled' : 'DISABLED'}, ${l.rules.length} rules`];
      for (const r of l.rules) { const s = summary(r); lines.push(`${String(r.position).padStart(5)}  ${(r.name ?? '').padEnd(16)} ${s.match.padEnd(50)} -> ${s.action.padEnd(16)} ${r.enabled === false ? 'disabled' : `${r.packets} pkts ${r.bytes} bytes`}`); }
      const k = l.policy_rules.filter((p) => p.where === 'agent+kernel');
      if (k.length) lines.push(`policy rules also in the kernel (evaluated first): ${k.map((p) => `${p.name ?? `#${p.position}`} (${p.packets ?? 0} pkts)`).join(', ')}`);
      print(lines.join('\n'));
    });

  rules.command('status').description('is the kernel table applied, with how many rules and layers')
    .option('--admin <path>', 'admin API socket', adminSocket()).option('--json', 'print JSON')
    .action(async (o: { admin: string; json?: boolean }) => {
      const s = await callJson<Record<string, unknown>>(o.admin, 'GET', '/v1/rules/status');
      // absent facts (no problem, nothing applied yet) are not printed as "null"
      print(o.json ? JSON.stringify(s, null, 2) : Object.entries(s).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n'));
    });

  rules.command('values').description('allowed values and defaults of every field (fixed: no daemon needed)')
    .action(async () => {
      const { VALUES } = await import('../../kernel/api.js');
      print(JSON.stringify(VALUES, null, 2));
    });

  ruleOptions(editOptions(rules.command('add').description('append a rule (before nothing: it is matched last)')))
    .action(async (o: RuleFlags & EditOpts) => edit(o, 'POST', '/v1/rules', { rule: ruleFromFlags(o) }, 'added'));
  ruleOptions(editOptions(rules.command('insert').description('insert a rule at a position (1 = matched first)').argument('<position>')))
    .action(async (pos: string, o: RuleFlags & EditOpts) => edit(o, 'POST', '/v1/rules', { rule: ruleFromFlags(o), position: Number(pos) }, `inserted at ${pos}`));
  ruleOptions(editOptions(rules.command('update').description('replace a rule (by position or name); its counters start again').argument('<rule>')))
    .action(async (ref: string, o: RuleFlags & EditOpts) => edit(o, 'PUT', `/v1/rules/${encodeURIComponent(ref)}`, { rule: ruleFromFlags(o) }, `updated ${ref}`));
  editOptions(rules.command('delete').description('delete a rule (by position or name)').argument('<rule>'))
    .action(async (ref: string, o: EditOpts) => edit(o, 'DELETE', `/v1/rules/${encodeURIComponent(ref)}`, {}, `deleted ${ref}`));
  editOptions(rules.command('move').description('move a rule (by position or name) to a position').argument('<rule>').argument('<position>'))
    .action(async (ref: string, pos: string, o: EditOpts) => edit(o, 'POST', '/v1/rules/move', { from: ref, to: Number(pos) }, `moved ${ref} to ${pos}`));
  editOptions(rules.command('enable').description('apply the rule set; with a rule (by position or name), apply that rule again').argument('[rule]'))
    .action(async (ref: string | undefined, o: EditOpts) => edit(o, 'POST', ref === undefined ? '/v1/rules/enable' : `/v1/rules/${encodeURIComponent(ref)}/enable`, {}, ref === undefined ? 'enabled' : `enabled ${ref}`));
  editOptions(rules.command('disable').description('stop applying the rule set (it is kept; policy rules stay in the kernel); with a rule, only that rule (it keeps its place)').argument('[rule]'))
    .action(async (ref: string | undefined, o: EditOpts) => edit(o, 'POST', ref === undefined ? '/v1/rules/disable' : `/v1/rules/${encodeURIComponent(ref)}/disable`, {}, ref === undefined ? 'disabled' : `disabled ${ref}`));
  editOptions(rules.command('import').description('replace the whole set with a rule-set file (as `export` writes); refused whole if any rule is bad').argument('<file>', 'a file, or - for standard input'))
    .action(async (file: string, o: EditOpts) => {
      const { readRuleSetFile } = await import('../../kernel/manager.js');
      const text = await readRuleSetFile(file);
      await edit(o, 'POST', '/v1/rules/import', { text, file }, `imported ${file}`);
    });

  rules.command('export').description('print the rule set as a portable file (import reads it back unchanged)')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .action(async (o: { admin: string }) => {
      const r = await callJson<{ text: string }>(o.admin, 'GET', '/v1/rules/export');
      process.stdout.write(r.text);
    });

  rules.command('validate').description('check a rule-set file without applying it: every error, with line and column')
    .argument('<file>', 'a file, or - for standard input')
    .action(async (file: string) => {
      const { parseRuleSet, readRuleSetFile } = await import('../../kernel/manager.js');
      const doc = parseRuleSet(await readRuleSetFile(file), file);
      print(`${file}: ok, ${doc.rules.length} rules${doc.enabled ? '' : ' (disabled)'}`);
    });
  program.addCommand(rules);
}
