/* `qos run -- CMD ARGS`: runs an unmodified program with the agent preloaded, argv exactly as
 * typed (argv[0] included, so a policy can compare command lines exactly, paper figure 5). */

import { existsSync } from 'node:fs';
import { QosError } from '../errors.js';
import { start } from '../exec.js';

export interface RunOptions {
  library: string;
  socket: string;
  timeoutMs?: number;
  debug?: boolean;
}

/** The environment a program needs to carry the agent. */
export function agentEnv(o: RunOptions, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const preload = [o.library, ...(base.LD_PRELOAD ?? '').split(/[: ]/).filter((p) => p && p !== o.library)].join(':');
  const env: NodeJS.ProcessEnv = { ...base, LD_PRELOAD: preload, QOSD_SOCKET: o.socket };
  if (o.timeoutMs !== undefined) env.QOSD_TIMEOUT_MS = String(o.timeoutMs);
  if (o.debug) env.QOSD_DEBUG = '1';
  return env;
}

/** Runs argv under the agent; resolves with the exit status the shell would report. */
export function run(argv: string[], o: RunOptions): Promise<number> {
  if (!existsSync(o.library)) throw new QosError('QOS_ERR_ENVIRONMENT', `agent library ${o.library} is missing: run \`npm install\` (it builds the agent)`);
  const [cmd, ...args] = argv;
  if (!cmd) throw new QosError('QOS_ERR_USAGE', 'qos run: give a command after --, e.g. qos run -- curl http://example.com');
  // the program has our stdio, and its exit status becomes ours, as a shell would report it
  const child = start([cmd, ...args], { stdio: ['inherit', 'inherit', 'inherit'], env: agentEnv(o) });
  const forward = (sig: NodeJS.Signals) => () => child.proc.kill(sig);
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
  const handlers = sigs.map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  return child.exited.then(({ code, signal }) => {
    for (const [s, h] of handlers) process.off(s, h);
    const e = child.startError;
    if (e) {
      process.stderr.write(`qos run: ${cmd}: ${e.code === 'ENOENT' ? 'command not found' : e.message}\n`);
      return e.code === 'ENOENT' ? 127 : 126;
    }
    return code ?? 128 + (signal ? (osSignal(signal) ?? 1) : 1);
  });
}

function osSignal(name: NodeJS.Signals): number | undefined {
  const n: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15, SIGABRT: 6 };
  return n[name];
}
