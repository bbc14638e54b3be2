/* CPU time a script host has used, from /proc: how the watchdog tells a host stuck in a call
 * (burning CPU) from one that is merely waiting for a CPU. Script hosts run at nice 19, and
 * on a busy machine one can go without CPU for seconds: that is no reason to replace it or to
 * blame the user whose call it was running. */

import { readFileSync } from 'node:fs';

/** Milliseconds per clock tick of /proc's times (USER_HZ is 100 on Linux). */
const MS_PER_TICK = 10;

/** User plus system CPU time, in clock ticks, from the text of a /proc stat file. */
export function statTicks(stat: string): number {
  // after "(comm) ": state is field 3; utime and stime are fields 14 and 15
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** User plus system CPU time, in ms, from a /proc stat file (a process's or a thread's), or
 * null if it cannot be read (the host is gone). */
export function cpuMs(statPath: string): number | null {
  let stat: string;
  try { stat = readFileSync(statPath, 'latin1'); } catch { return null; }
  const t = statTicks(stat);
  return Number.isFinite(t) ? t * MS_PER_TICK : null;
}

/** The stat file of this process's thread tid (a worker thread: its tid from /proc/thread-self). */
export function threadStat(tid: number): string {
  return `/proc/self/task/${tid}/stat`;
}

/** This thread's id, as /proc knows it. */
export function ownTid(): number {
  try {
    const link = readFileSync('/proc/thread-self/stat', 'latin1');
    return Number(link.slice(0, link.indexOf(' ')));
  } catch {
    return 0;
  }
}
