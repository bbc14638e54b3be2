/* Glob patterns for exe, cmdline and unit matches: "*" any run of characters (slashes
 * included), "?" one character, "[...]" a class; "/re/flags" is a regular expression. */

/** Compiles a glob or /regex/ into a RegExp anchored at both ends; throws on a bad regex. */
export function compilePattern(p: string): RegExp {
  const re = /^\/(.*)\/([imsu]*)$/s.exec(p);
  if (re) return new RegExp(re[1]!, re[2]);
  let out = '^';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const end = p.indexOf(']', i + 2);
      if (end < 0) { out += '\\['; continue; }
      let cls = p.slice(i + 1, end).replace(/\\/g, '\\\\');
      if (cls.startsWith('!')) cls = '^' + cls.slice(1);
      out += `[${cls}]`;
      i = end;
    } else out += c.replace(/[.+^${}()|\\/\]]/g, '\\$&');
  }
  return new RegExp(out + '$', 's');
}

/** True if the pattern has no wildcard (an exact string compare suffices). */
export function isLiteral(p: string): boolean {
  return !/[*?[]/.test(p) && !/^\/.*\/[imsu]*$/s.test(p);
}
