/* A `qos daemon` in a child process with its own sockets and policy file, for tests and
 * benchmarks that must measure the real thing, not an in-process copy. */

import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QosError } from '../errors.js';
import { runSync, start, type Child } from '../exec.js';

/** The qos CLI entry point of this package. */
export const QOS_CLI = resolve(fileURLToPath(import.meta.url), '../../cli/main.js');

let children = 0;

const options = new Map<string, string>();
/** Whether the qos entry point cli's `qos daemon` has option (this package's has all). */
function knows(cli: string, option: string): boolean {
  if (cli === QOS_CLI) return true;
  let help = options.get(cli);
  if (help === undefined) options.set(cli, help = runSync([process.execPath, cli, 'daemon', '--help'], { ok: 'any' }).stdout);
  return help.includes(`${option} <mode>`);
}

/** An option a test daemon is given unless its test names it: off for the parts that act
 * beyond the daemon's namespace or cost every start (another build's daemon, for `qos bench
 * ab`, may predate the option). */
function offUnlessGiven(cli: string, args: readonly string[], option: string): string[] {
  return args.includes(option) || !knows(cli, option) ? [] : [option, 'off'];
}

export class DaemonChild {
  readonly socket: string;
  readonly admin: string;
  readonly policyFile: string;
  readonly rulesFile: string;
  readonly nftTable = `qosd_t${process.pid}_${++children}`;
  proc!: ChildProcess;
  private child!: Child;
  log = '';

  /** policy: the policy file's text, or null for the built-in policy (no --policy); wrap: argv
   * the daemon runs under, e.g. ['ip', 'netns', 'exec', NS]; cli: the qos entry point to run
   * (another build's, for `qos bench ab`) */
  constructor(readonly dir: string, private readonly policy: string | null, private readonly extraArgs: string[] = [], private readonly wrap: string[] = [], private readonly cli = QOS_CLI) {
    this.socket = join(dir, 'agent.sock');
    this.admin = join(dir, 'admin.sock');
    this.policyFile = join(dir, 'policy.yaml');
    this.rulesFile = join(dir, 'qosd-rule-store.json'); // not a name a copied policy directory (qos bench ab) would bring
    if (policy !== null) writeFileSync(this.policyFile, policy);
  }

  /** Starts the daemon and waits until it listens; throws with its output if it does not. */
  async start(): Promise<this> {
    // its own rule-set file and nftables table: daemons under test never touch the machine's
    const argv = [...this.wrap, process.execPath, this.cli, 'daemon', '--socket', this.socket, '--admin', this.admin, ...(this.policy === null ? [] : ['--policy', this.policyFile]),
      '--rules', this.rulesFile, '--nft-table', this.nftTable,
      // the eBPF programs attach to a cgroup (the host's root by default), not a namespace: a
      // test that wants them names its own cgroup (--ebpf on --ebpf-cgroup DIR); the host
      // probe runs tc and nft in a namespace of its own at every start
      ...offUnlessGiven(this.cli, this.extraArgs, '--ebpf'), ...offUnlessGiven(this.cli, this.extraArgs, '--probe'), ...this.extraArgs];
    this.child = start(argv, { name: 'qos daemon' });
    this.proc = this.child.proc;
    this.proc.stdout!.on('data', (d: Buffer) => (this.log += d));
    this.proc.stderr!.on('data', (d: Buffer) => (this.log += d));
    try {
      await this.child.until('qosd listening', 10_000, 'stdout');
    } catch {
      this.child.kill();
      // the daemon's own words say why (a bad policy or rule store, a socket in use)
      throw new QosError('QOS_ERR_ENVIRONMENT', `qos daemon did not start: ${this.log.trim()}`);
    }
    return this;
  }

  /** SIGTERM, and waits until it has stopped (SIGKILL if it takes past a minute). */
  async stop(): Promise<void> {
    await this.child.stop('SIGTERM', 60_000);
  }
}
