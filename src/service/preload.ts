/* /etc/ld.so.preload as `qos install --preload` and `qos uninstall` edit it: our one line added
 * or removed, every other byte of the file kept. The loader reads the file as names separated
 * by white space or ':', with comments from # to the end of a line (glibc elf/rtld.c), and
 * loads each into every dynamically linked program, setuid ones included: a name it cannot
 * load costs every program an error message, a library others can replace hands them every
 * program. So the agent is checked before its line is written (checkPreloadable).
 *
 * Texts are latin1 strings, one character per byte, so that bytes that are not UTF-8 are kept. */

import { realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { QosError } from '../errors.js';
import { runSync } from '../exec.js';
import { directoryProblem } from '../secure-path.js';

export const PRELOAD_FILE = '/etc/ld.so.preload';

/** The libraries the file names, in order (what the loader would preload). */
export function preloadNames(text: string): string[] {
  return text.replace(/#[^\n]*/g, '').split(/[\s:]+/).filter(Boolean);
}

/** Lines with their terminators: "a\nb" → ["a\n", "b"]. */
function lines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

export interface Added {
  text: string;
  /** false if the file names the library already (then text is the file as it was) */
  changed: boolean;
  /** the file's last line had no newline: one was added before ours (removed with ours) */
  addedNewline: boolean;
}

/** The file with `line` (a library's path) added as a line of its own at the end, unless the
 * file names that library already. */
export function addPreload(text: string, line: string): Added {
  if (preloadNames(text).includes(line)) return { text, changed: false, addedNewline: false };
  const addedNewline = text.length > 0 && !text.endsWith('\n');
  return { text: `${text}${addedNewline ? '\n' : ''}${line}\n`, changed: true, addedNewline };
}

/** The file without the lines that are exactly `line` (white space around it aside), and,
 * if addPreload added a newline before ours and ours is still the last line, without that
 * newline: the file as it was before. removed: how many lines went. */
export function removePreload(text: string, line: string, addedNewline: boolean): { text: string; removed: number } {
  const all = lines(text);
  const kept = all.filter((l) => l.trim() !== line);
  const removed = all.length - kept.length;
  let out = kept.join('');
  const lastWasOurs = all.length > 0 && all[all.length - 1]!.trim() === line;
  if (removed && addedNewline && lastWasOurs && out.endsWith('\n')) out = out.slice(0, -1);
  return { text: out, removed };
}

/** Throws unless `path` can safely be named in /etc/ld.so.preload, and returns its real path
 * (what the line should say, so that no link on the way can be turned elsewhere later): an
 * absolute name without the file's separators, a regular file that only root can change in
 * directories only root can change, readable by every user, and one the loader does load: a
 * program started with it preloaded (as nobody, when we are root) shows it in its memory map,
 * exits 0 and prints nothing. */
export function checkPreloadable(path: string): string {
  const what = 'the agent library (every program would load it)';
  let real: string;
  try { real = realpathSync(path); } catch (e) {
    throw new QosError('QOS_ERR_ENVIRONMENT', `${what} ${path} is not there (${(e as NodeJS.ErrnoException).code}): build it (npm install) or install the package that has it`);
  }
  if (/[\s:#]/.test(real)) throw new QosError('QOS_ERR_ENVIRONMENT', `${what} ${real}: its path has white space, ':' or '#', which separate names in ${PRELOAD_FILE}; install qosd at a plainer path`);
  const st = statSync(real);
  const problems: string[] = [];
  if (!st.isFile()) problems.push(`${real} is not a regular file`);
  if (st.uid !== 0) problems.push(`${real} belongs to uid ${st.uid}, not root`);
  if (st.mode & 0o022) problems.push(`${real} is writable by group or others (mode ${(st.mode & 0o7777).toString(8)})`);
  if (!(st.mode & 0o004)) problems.push(`${real} is not readable by every user (mode ${(st.mode & 0o7777).toString(8)}): their programs could not load it`);
  const dir = directoryProblem(dirname(real));
  if (dir) problems.push(dir);
  for (let d = dirname(real); ; d = dirname(d)) {
    if (!(statSync(d).mode & 0o001)) problems.push(`${d} is not searchable by every user: their programs could not load the library`);
    if (d === '/') break;
  }
  if (problems.length) {
    throw new QosError('QOS_ERR_UNSAFE_PATH', `refusing to preload ${real} into every program: ${problems[0]}`, problems.map((message) => ({ file: real, message })));
  }
  const asNobody = process.geteuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'] : [];
  const argv = [...asNobody, '/bin/cat', '/proc/self/maps'];
  let why: string | null;
  try {
    const r = runSync(argv, { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LD_PRELOAD: real, QOSD_DISABLE: '1' }, timeoutMs: 10_000 });
    why = r.stderr !== '' ? r.stderr.trim() || 'it wrote to stderr' : r.stdout.includes(real) ? null : 'the library is not in its memory map';
  } catch (e) {
    why = (e as Error).message;
  }
  if (why !== null) {
    throw new QosError('QOS_ERR_ENVIRONMENT', `${what} ${real} does not load into a program (${argv.join(' ')} with LD_PRELOAD: ${why}); ${PRELOAD_FILE} is left as it was`);
  }
  return real;
}
