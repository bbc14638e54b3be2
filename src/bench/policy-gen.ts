/* A large, varied, deterministic policy for benchmarks: the mix of match keys an
 * administrator's file would have (ports, ranges, networks, executables, command lines,
 * regular expressions, users), so the engine's index and identity memo are exercised, not
 * just a linear list of one kind. */

/** `count` rules (seeded, reproducible) followed by `tail` (rules the benchmark needs to hit). */
export function generatePolicy(count: number, tail: Record<string, unknown>[] = [], seed = 1): { rules: Record<string, unknown>[] } {
  let s = seed;
  const rnd = (n: number) => ((s = (s * 1103515245 + 12345) & 0x7fffffff) % n);
  const classes = ['EF', 'AF41', 'AF42', 'AF31', 'AF21', 'AF11', 'CS1', 'CS2', 'CS3', 'CS4', 'CS5', 'LE'];
  const rules: Record<string, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const match: Record<string, unknown> = {};
    const k = rnd(20);
    if (k < 4) match.remote_port = 3000 + rnd(60000);
    else if (k < 7) { const lo = 3000 + rnd(50000); match.remote_port = `${lo}-${lo + 20 + rnd(2000)}`; }
    else if (k < 10) match.remote = rnd(3) ? `172.${16 + rnd(16)}.${rnd(256)}.0/24` : `fd${rnd(10)}${rnd(10)}:${rnd(9000) + 1000}::/32`;
    else if (k < 13) match.exe = `/usr/bin/tool${rnd(500)}*`;
    else if (k < 15) match.cmdline = `*--profile=p${rnd(500)}*`;
    else if (k < 16) match.cmdline = `/^app${rnd(500)}\\s+--/`;
    else if (k < 18) match.user = `user${rnd(500)}`;
    else { match.local_port = 3000 + rnd(60000); match.event = rnd(2) ? 'bind' : 'listen'; }
    if (k < 10 && rnd(3) === 0) match.proto = rnd(2) ? 'tcp' : 'udp';
    if (k < 10 && rnd(4) === 0) match.event = ['connect', 'sendto'][rnd(2)];
    const a = rnd(10);
    const action = a < 7 ? { dscp: classes[rnd(classes.length)] } : a < 9 ? { tos: rnd(64) << 2 } : { priority: rnd(7) };
    rules.push({ name: `gen-${i + 1}`, match, action });
  }
  return { rules: [...rules, ...tail] };
}
