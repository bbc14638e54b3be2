/* `qos run`, `qos try` and `qos agent-path`: programs under the protocol agent (run/). */

import { Command } from 'commander';
import { QosError } from '../../errors.js';
import { AGENT_LIBRARY, adminSocket, agentSocket } from '../../paths.js';
import { print } from '../format.js';
import { positiveInt } from '../options.js';

/** Registers `qos run` and `qos try`. */
export function runCommands(program: Command): void {
  program
    .command('run')
    .description('run an unmodified program with the protocol agent preloaded')
    .usage('[options] -- CMD [ARGS...]')
    .option('--socket <path>', 'daemon socket the agent asks (must match `qos daemon --socket`; env QOSD_SOCKET)', agentSocket())
    .option('--timeout-ms <ms>', "per-request timeout of the agent (QOSD_TIMEOUT_MS; default: the daemon's --agent-timeout-ms, 50 unless set)", (v) => positiveInt(v, '--timeout-ms'))
    .option('--debug', 'let the agent print diagnostics on stderr')
    .argument('<cmd...>', 'the program and its arguments')
    .passThroughOptions()
    .action(async (argv: string[], o: { socket: string; timeoutMs?: number; debug?: boolean }) => {
      const { run } = await import('../../run/run.js');
      process.exitCode = await run(argv, { library: AGENT_LIBRARY, socket: o.socket, timeoutMs: o.timeoutMs, debug: o.debug });
    });

  program
    .command('try')
    .description('show qosd at work with no internet: curl under the agent to a local server, the decision, and the mark on the wire (tcpdump on lo); uses the running daemon, or a temporary one without kernel rules')
    .option('--port <n>', 'the local server\'s port on 127.0.0.1 (the built-in policy marks 554, RTSP control, AF31)', (v) => positiveInt(v, '--port'), 554)
    .option('--admin <path>', 'admin API socket of a running daemon (its agent socket is the one used)', adminSocket())
    .option('--json', 'print JSON')
    .action(async (o: { port: number; admin: string; json?: boolean }) => {
      if (o.port > 65535) throw new QosError('QOS_ERR_USAGE', `--port takes a port number (1-65535), not ${o.port}`);
      const { tryIt, formatTry } = await import('../../run/try.js');
      const t = await tryIt({ library: AGENT_LIBRARY, admin: o.admin, port: o.port });
      print(o.json ? JSON.stringify(t, null, 2) : formatTry(t));
      if (!t.ok) process.exitCode = 1;
    });
}

/** Registers `qos agent-path` (listed after `qos demo` in the help). */
export function agentPathCommand(program: Command): void {
  program
    .command('agent-path')
    .description('print the path of libqosagent.so (for LD_PRELOAD or /etc/ld.so.preload)')
    .action(() => print(AGENT_LIBRARY));
}
