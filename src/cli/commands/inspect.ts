/* `qos status`, `flows`, `decisions`, `reload` and `metrics`: the running daemon, asked through its
 * admin API (daemon/admin.ts). */

import { Command } from 'commander';
import { formatProblems } from '../../errors.js';
import { call, callJson, stream } from '../../daemon/admin-client.js';
import { adminSocket } from '../../paths.js';
import { formatDecision, formatFlows, formatStatus, print } from '../format.js';
import { wholeNumber } from '../options.js';

/** Registers `qos status`, `flows`, `decisions`, `reload` and `metrics`. */
export function inspectCommands(program: Command): void {
  program
    .command('status')
    .description("show the daemon's state: policy, agents, flows")
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--json', 'print JSON')
    .action(async (o: { admin: string; json?: boolean }) => {
      const s = await callJson<Record<string, unknown>>(o.admin, 'GET', '/v1/status');
      print(o.json ? JSON.stringify(s, null, 2) : formatStatus(s));
    });

  program
    .command('flows')
    .description('list the sockets the daemon knows, with their decisions')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--json', 'print JSON')
    .action(async (o: { admin: string; json?: boolean }) => {
      const f = await callJson<Record<string, unknown>[]>(o.admin, 'GET', '/v1/flows');
      print(o.json ? JSON.stringify(f, null, 2) : formatFlows(f));
    });

  program
    .command('decisions')
    .description('show recent policy decisions; --follow streams them live')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('-f, --follow', 'keep streaming new decisions')
    .option('--limit <n>', 'how many recent decisions to show first (0: none, with --follow only new ones)', (v) => wholeNumber(v, '--limit'), 20)
    .option('--json', 'print one JSON object per line')
    .action(async (o: { admin: string; follow?: boolean; limit: number; json?: boolean }) => {
      let shown = 0;
      await stream(o.admin, `/v1/decisions?limit=${o.limit}${o.follow ? '&follow=1' : ''}`, (line) => {
        shown++;
        if (o.json) return print(line);
        const r = JSON.parse(line) as Record<string, unknown>;
        // the daemon keeps at most 1 MiB for a reader that falls behind, and says what it dropped
        if (typeof r.dropped === 'number') process.stderr.write(`qos decisions: ${r.dropped} decisions dropped: this reader fell behind\n`);
        else print(formatDecision(r));
      });
      if (!shown && !o.json && o.limit > 0) process.stderr.write('qos decisions: none yet: the daemon decides when a program under the agent makes a socket call (qos run -- CMD; qos try shows one)\n');
    });

  program
    .command('reload')
    .description('reload the policy file (same as SIGHUP); a bad file keeps the old policy')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--json', 'print JSON')
    .action(async (o: { admin: string; json?: boolean }) => {
      const r = await callJson<{ ok: boolean; rules: number; error?: { message: string; problems?: [] } }>(o.admin, 'POST', '/v1/reload');
      if (o.json) print(JSON.stringify(r, null, 2));
      else if (r.ok) print(`policy reloaded: ${r.rules} rules`);
      else print(`reload failed, previous policy stays in force:\n${formatProblems(r.error?.problems ?? []) || r.error?.message}`);
      if (!r.ok) process.exitCode = 65;
    });

  program
    .command('metrics')
    .description('print the Prometheus metrics')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .action(async (o: { admin: string }) => {
      process.stdout.write((await call(o.admin, 'GET', '/metrics')).body);
    });
}
