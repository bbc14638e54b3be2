/* Cgroup v2 directories of a benchmark's own, for `qos bench ebpf`: the eBPF programs attach to
 * a cgroup, not a namespace, so the programs measured join one made for the run (named
 * qosd-bench-<pid>-<name> under the hierarchy's root, the unified one of a hybrid); destroy()
 * removes it and kills what still runs in it, and removeStaleCgroups() finds a killed run's. */

import { mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive } from '../demo/net.js';
import { cgroup2Root } from '../ebpf/marking.js';
import { QosError } from '../errors.js';

const PREFIX = 'qosd-bench-';

function root(): string {
  const r = cgroup2Root();
  if (!r) throw new QosError('QOS_ERR_ENVIRONMENT', 'no cgroup v2 hierarchy is mounted (/proc/self/mountinfo has no cgroup2): the eBPF programs attach to one');
  return r;
}

function pidsOf(dir: string): number[] {
  try { return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number); } catch { return []; }
}

/** Kills what runs in dir and removes it (a cgroup with processes cannot be: EBUSY until the
 * killed ones have exited, a moment after they leave cgroup.procs). */
async function remove(dir: string): Promise<void> {
  for (let i = 0; ; i++) {
    for (const pid of pidsOf(dir)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    try { rmdirSync(dir); return; } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || i >= 100) throw e;
    }
    await sleep(50);
  }
}

/** Removes the cgroups of benchmark runs whose process is gone. */
export async function removeStaleCgroups(): Promise<void> {
  const r = cgroup2Root();
  if (!r) return;
  for (const name of readdirSync(r)) {
    const m = new RegExp(`^${PREFIX}(\\d+)(-[\\w]+)?$`).exec(name);
    if (m && !alive(Number(m[1]))) await remove(join(r, name));
  }
}

export class BenchCgroup {
  readonly dir: string;

  constructor(name: string) {
    this.dir = join(root(), `${PREFIX}${process.pid}-${name}`);
    mkdirSync(this.dir);
  }

  /** argv run in this cgroup and in network namespace ns. The process joins the cgroup first:
   * `ip netns exec` mounts a sysfs of its own, where the cgroup is not. The directory and the
   * namespace are the shell's positional parameters, not part of its script. */
  run(ns: string, argv: readonly string[]): string[] {
    return ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && ns=$1 && shift && exec ip netns exec "$ns" "$@"', this.dir, ns, ...argv];
  }

  /** Kills what still runs in it, and removes it. */
  destroy(): Promise<void> {
    return remove(this.dir);
  }
}
