/* `qos doctor`: what this host offers qosd, what does not work and what to install, and a
 * self-test that marks a real connection and reads the mark back (doctor/, docs/doctor.md). */

import { Command } from 'commander';
import { adminSocket } from '../../paths.js';
import { print } from '../format.js';

export function doctorCommands(program: Command): void {
  program
    .command('doctor')
    .description('probe what this host offers qosd (nftables and its features, tc qdiscs, filters and actions, IFB, cgroup v2, BTF and the eBPF programs, the agent, the daemon) and run a self-test that marks a connection and reads the mark back from its packets; exit 0 when everything qosd needs works, 69 when not (needs root)')
    .option('--admin <path>', 'the daemon\'s admin socket, to say whether it runs', adminSocket())
    .option('--no-self-test', 'only the probes')
    .option('--json', 'print JSON: ok, checks (id, what, ok, needed, for, detail, fix), daemon')
    .action(async (o: { admin: string; selfTest: boolean; json?: boolean }) => {
      const { checkLine, probeHost } = await import('../../doctor/probes.js');
      const { selfTest } = await import('../../doctor/self-test.js');
      const { callJson } = await import('../../daemon/admin-client.js');
      const checks = await probeHost();
      let daemon: Record<string, unknown> | null = null;
      try {
        const s = await callJson<Record<string, unknown>>(o.admin, 'GET', '/v1/status', undefined, 5000);
        daemon = { reachable: true, admin: o.admin, pid: s.pid, version: s.version };
      } catch (e) {
        daemon = { reachable: false, admin: o.admin, error: (e as Error).message.split('\n')[0] };
      }
      checks.push({ id: 'daemon', what: `the daemon (${o.admin})`, ok: daemon.reachable === true, needed: false, for: 'everything at run time (qos daemon, or the qosd service)', detail: daemon.reachable ? `running, pid ${daemon.pid}` : String(daemon.error), ...(daemon.reachable ? {} : { fix: 'sudo qos install, or qos daemon' }) });
      if (o.selfTest) checks.push(await selfTest());
      const ok = checks.every((c) => c.ok || !c.needed);
      if (o.json) print(JSON.stringify({ ok, checks, daemon }, null, 2));
      else {
        print([
          ...checks.map(checkLine),
          '',
          ok ? 'qos doctor: everything qosd needs works here' : `qos doctor: ${checks.filter((c) => !c.ok && c.needed).length} things qosd needs do not work (FAIL above)`,
        ].join('\n'));
      }
      if (!ok) process.exitCode = 69;
    });
}
