/* User and group names from /etc/passwd and /etc/group (name:x:id:...), the first entry of
 * each id and of each name winning, as getpwuid/getpwnam would. */

/** [name, id] for every well-formed line. */
export function idEntries(text: string): [string, number][] {
  const out: [string, number][] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && /^\d+$/.test(f[2]!)) out.push([f[0]!, Number(f[2])]);
  }
  return out;
}
