/* `qos explain`: why a program's call gets the decision it gets, and what the kernel does with
 * its sockets now (explain/report.ts assembles it, explain/text.ts says it): the rule that
 * decides with its line, every rule before it with the first condition that failed, which path
 * enforces it for that program (the agent, eBPF, nftables, or none), and with --pid each socket's
 * mark in the kernel, the kernel rule its connection's mark names and its traffic-control flow.
 * The daemon answers it (POST /v1/explain); with --policy FILE it is assembled here, with what
 * a daemon answers if one does. */

import { readFileSync, readlinkSync } from 'node:fs';
import { Command } from 'commander';
import { QosError } from '../../errors.js';
import { adminSocket } from '../../paths.js';
import { print } from '../format.js';
import { positiveInt, wholeNumber } from '../options.js';
import { EVENT_NAMES } from '../../policy/schema.js';
import type { ExplainReport, ExplainSources } from '../../explain/report.js';

interface Opts { policy?: string; admin: string; pid?: number; fd?: number; exe?: string; cmdline?: string; user?: string; uid?: number; event: string; proto?: string; remote?: string; local?: string; json?: boolean }

/** explain's sources for a policy file: the flows and traffic control of a daemon, if one
 * answers on --admin; nothing of what it has in place. */
async function fileSources(file: string, admin: string): Promise<ExplainSources> {
  const { policyFromText } = await import('../../policy/load.js');
  const { callJson } = await import('../../daemon/admin-client.js');
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) { throw new QosError('QOS_ERR_POLICY_IO', `cannot read ${file}: ${(e as Error).message}`); }
  const { doc } = await policyFromText(text, file, { anyPath: true });
  let netns: string | null = null;
  try { netns = readlinkSync('/proc/self/ns/net'); } catch { /* unknown */ }
  return {
    policy: async () => ({ doc, text, source: file }),
    live: async () => null,
    flows: () => callJson(admin, 'GET', '/v1/flows', undefined, 5000).then((f) => f as never, () => null),
    tc: () => callJson(admin, 'GET', '/v1/tc', undefined, 5000).then((l) => l as never, (e: Error) => `no daemon's traffic control to look in (${e.message.split('\n')[0]})`),
    connectionRule: () => 'with --policy, the daemon\'s rule numbers are not asked: run qos explain without --policy',
    limit: () => 'with --policy, the daemon\'s limits are not asked: run qos explain without --policy',
    netns,
  };
}

export function explainCommands(program: Command): void {
  program
    .command('explain')
    .description('say why a call of a program gets its decision: the rule that decides (with its line), each rule before it with the first condition that failed ("exe */zoom did not match /usr/bin/firefox"), and which path enforces it for that program: the agent, eBPF, nftables, or none; with --pid, each of its sockets as the kernel has it now: its TOS and priority, the application\'s own TOS and whether it was honoured, the kernel rule its connection\'s mark names, and the traffic-control flow its packets fall in (docs/policy.md, "Why this mark")')
    .option('--policy <file>', 'a policy file, explained here (default: the daemon explains with the policy it runs, asked on --admin)')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--pid <pid>', 'the program: a running process (its executable, command line, user, and whether it has the agent)', (v) => positiveInt(v, '--pid'))
    .option('--fd <n>', 'with --pid: one of its sockets; its protocol and remote end are the call unless given', (v) => wholeNumber(v, '--fd'))
    .option('--exe <path>', 'the program: its executable (without --pid)')
    .option('--cmdline <text>', 'its command line (without --pid)')
    .option('--user <name>', 'the user it runs as (without --pid; default: yours)')
    .option('--uid <n>', 'the uid it runs as (without --pid)', (v) => wholeNumber(v, '--uid'))
    .option('--event <event>', `the call: ${EVENT_NAMES.join(', ')}`, 'connect')
    .option('--proto <tcp|udp>', 'the protocol (default: the socket\'s with --fd, else tcp)')
    .option('--remote <addr:port>', 'the remote end (with --pid: also picks its socket to that end)')
    .option('--local <addr:port>', 'the local end')
    .option('--json', 'print JSON')
    .action(async (o: Opts) => {
      const { explain, explainInput } = await import('../../explain/report.js');
      const { policy, admin, json, ...rest } = o;
      const body = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
      const input = explainInput(body);
      let report: ExplainReport;
      if (policy) report = await explain(input, await fileSources(policy, admin), process.getuid?.() ?? 0);
      else {
        const { callJson } = await import('../../daemon/admin-client.js');
        report = await callJson<ExplainReport>(admin, 'POST', '/v1/explain', input, 60_000);
      }
      if (json) return print(JSON.stringify(report, null, 2));
      const { explanationText } = await import('../../explain/text.js');
      print(explanationText(report));
    });
}
