/* `qos doctor`'s self-test (docs/doctor.md): in a network namespace of its own, a real `qos
 * daemon` with a one-rule policy (a command-line rule: only the agent can enforce it), a Node
 * program under `qos run` connecting to a listener of its own over loopback, and nftables
 * counting the packets that reach the listener by their DSCP. The mark is read back from the
 * packets, not from the program's word: the test passes when every packet to the listener
 * carried EF. Everything it made is removed after. */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonChild, QOS_CLI } from '../daemon/child.js';
import { installed, run } from '../exec.js';
import { packageOf } from '../prerequisites.js';
import { firstLine, type Check } from './probes.js';

const PORT = 47_913;
const MARKER = 'qos-doctor-self-test';
const POLICY = `rules:\n  - name: doctor-self-test\n    match: { cmdline: "*${MARKER}*" }\n    action: { dscp: EF }\n`;
/** the program under the agent: connects to a listener of its own, sends a line, exits */
const PROGRAM = `const net = require('net');
const srv = net.createServer((s) => s.on('data', () => s.end())).listen(${PORT}, '127.0.0.1', () => {
  const c = net.connect(${PORT}, '127.0.0.1', () => c.write('${MARKER}\\n'));
  c.on('end', () => { c.destroy(); srv.close(); });
});
setTimeout(() => process.exit(3), 20000).unref();`;

const base = { id: 'self-test', what: 'self-test: a program under the agent, its packets\' DSCP read back by nftables', needed: true, for: 'marking by the agent, end to end' };

/** Runs the self-test; its failure is a failed check, never an exception. */
export async function selfTest(): Promise<Check> {
  if (process.getuid?.() !== 0) return { ...base, ok: false, detail: 'not run: it needs root (a network namespace, an nftables table in it)', fix: 'sudo qos doctor' };
  for (const t of ['ip', 'nft']) if (!installed(t)) return { ...base, ok: false, detail: `not run: it needs ${t}`, fix: `apt-get install ${packageOf(t)}` };
  const ns = `qosdst${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'qosd-doctor-'));
  const q = { ok: 'any' as const, timeoutMs: 30_000 };
  let daemon: DaemonChild | null = null;
  try {
    await run(['ip', 'netns', 'del', ns], q);
    const made = await run(['ip', 'netns', 'add', ns], q);
    if (made.code !== 0) return { ...base, ok: false, detail: `cannot make a network namespace: ${made.stderr.trim()}` };
    await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'], q);
    const table = join(dir, 'count.nft');
    writeFileSync(table, `table inet qosd_doctor {\n chain in {\n  type filter hook input priority 0;\n  tcp dport ${PORT} ip dscp ef counter\n  tcp dport ${PORT} counter\n }\n}\n`);
    const nft = await run(['ip', 'netns', 'exec', ns, 'nft', '-f', table], q);
    if (nft.code !== 0) return { ...base, ok: false, detail: `cannot count packets with nftables: ${nft.stderr.trim()}` };
    // the kernel rules and traffic control off: the agent alone marks
    daemon = await new DaemonChild(dir, POLICY, ['--kernel', 'off', '--tc', 'off', '--nice', 'keep'], ['ip', 'netns', 'exec', ns]).start();
    const prog = await run(['ip', 'netns', 'exec', ns, process.execPath, QOS_CLI, 'run', '--socket', daemon.socket, '--timeout-ms', '5000', '--', process.execPath, '-e', PROGRAM, MARKER], q);
    if (prog.code !== 0) return { ...base, ok: false, detail: `the program under the agent failed (exit ${prog.code}): ${firstLine(prog)}` };
    const listed = await run(['ip', 'netns', 'exec', ns, 'nft', '-j', 'list', 'table', 'inet', 'qosd_doctor'], q);
    const counters = (JSON.parse(listed.stdout) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] }).nftables
      .flatMap((o) => (o.rule ? [o.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0] : []));
    const [ef, all] = [counters[0] ?? 0, counters[1] ?? 0];
    const ok = all > 0 && ef === all;
    return {
      ...base, ok,
      detail: ok ? `all ${all} packets to the listener carried EF, the policy's mark, set by the agent`
        : all === 0 ? 'no packet reached the listener' : `${ef} of ${all} packets to the listener carried EF: the agent did not mark the connection (is the daemon answering? qos decisions)`,
      ...(ok ? {} : { fix: 'see the checks above; the daemon\'s log: journalctl -u qosd' }),
    };
  } catch (e) {
    return { ...base, ok: false, detail: (e as Error).message.split('\n')[0]! };
  } finally {
    await daemon?.stop().catch(() => undefined);
    await run(['ip', 'netns', 'del', ns], q);
    rmSync(dir, { recursive: true, force: true });
  }
}
