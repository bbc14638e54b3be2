/* The qos(8) manual page, generated from the CLI's own commander definitions, so that the page
 * and `qos CMD --help` cannot disagree: every visible command with its usage, description,
 * arguments and options (defaults included), then the sections help does not have (files,
 * environment, exit status) given by the caller. Output is man(7) roff. */

import type { Command, Help } from 'commander';
import { ErrorCodes, exitCodeFor, QosError, type ErrorCode } from '../errors.js';
import { DEFAULT_POLICY_FILE, DEFAULT_RULES_FILE } from '../paths.js';

/** A section of the page that is not a command: paragraphs, or a list of terms. */
export interface ManSection {
  title: string;
  text?: string[];
  items?: [term: string, text: string][];
}

export interface ManPageOptions {
  name: string;
  section: number;
  /** the package and version, shown in the footer, e.g. "qosd 0.1.0" */
  source: string;
  /** YYYY-MM-DD, shown in the footer; empty leaves it blank */
  date: string;
  /** one line for NAME */
  summary: string;
  /** sections after COMMANDS, in order */
  sections: ManSection[];
}

/** Text made safe for roff: backslashes, a control character at the start of a line, minus
 * signs (so that options copy as ASCII), and anything outside ASCII as a groff \[uXXXX]. */
export function roffText(s: string): string {
  // a line starting with . or ' is a request; one starting with a space breaks the fill
  return escape(s).split('\n').map((l) => l.trim()).map((l) => (/^[.']/.test(l) ? `\\&${l}` : l)).join('\n');
}

/** roffText within a line: spaces kept as they are. */
function escape(s: string): string {
  return [...s.replace(/\r/g, '')].map((c) => {
    if (c === '\\') return '\\e';
    if (c === '-') return '\\-';
    const code = c.codePointAt(0)!;
    if (code === 0x09 || code === 0x0a) return c;
    if (code < 0x20 || code === 0x7f) return '';
    if (code > 0x7e) return `\\[u${code.toString(16).toUpperCase().padStart(4, '0')}]`;
    return c;
  }).join('');
}

/** Paragraphs of a description (blank lines separate them), each filled by roff. */
function paragraphs(text: string): string[] {
  return text.split(/\n\s*\n/).map((p) => p.replace(/\s*\n\s*/g, ' ').trim()).filter(Boolean);
}

/** An option or usage term: flags in bold, <value> and [value] in italics. */
function term(s: string): string {
  return s.split(/(<[^>]+>|\[[^\]]+\])/).filter(Boolean)
    .map((part) => (/^[<[]/.test(part) ? `\\fI${escape(part)}\\fR` : `\\fB${escape(part)}\\fR`)).join('');
}

/** The full name of a command: "qos policy check". */
function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function commandSection(cmd: Command, help: Help): string[] {
  const out: string[] = [];
  const usage = `${fullName(cmd)} ${cmd.usage()}`.trim();
  out.push(`.SS ${usageHeading(usage)}`);
  for (const p of paragraphs(help.commandDescription(cmd))) out.push('.PP', roffText(p));
  const args = help.visibleArguments(cmd).filter((a) => a.description);
  for (const a of args) out.push('.TP', term(help.argumentTerm(a)), roffText(help.argumentDescription(a)));
  for (const o of help.visibleOptions(cmd)) {
    if (o.long === '--help') continue; // every command has it; said once under DESCRIPTION
    out.push('.TP', term(help.optionTerm(o)), roffText(help.optionDescription(o)));
  }
  const subs = visibleCommands(cmd, help);
  if (subs.length) out.push('.PP', roffText(`Subcommands: ${subs.map((c) => c.name()).join(', ')} (below).`));
  for (const sub of subs) out.push(...commandSection(sub, help));
  return out;
}

/** A .SS heading: the usage, bold command words and italic placeholders, quoted as one
 * argument of the request. */
function usageHeading(usage: string): string {
  return `"${term(usage).replace(/"/g, '\\(dq')}"`;
}

/** Visible subcommands, without commander's implicit `help` command. */
function visibleCommands(cmd: Command, help: Help): Command[] {
  return help.visibleCommands(cmd).filter((c) => cmd.commands.includes(c));
}

/** EXIT STATUS from errors.ts: each exit status with the error codes that end with it. */
export function exitStatusSection(): ManSection {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of Object.keys(ErrorCodes) as ErrorCode[]) {
    const status = exitCodeFor(new QosError(code, ''));
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const items: [string, string][] = [['0', 'success']];
  for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    // commander's own refusals (an unknown command or option) end with 64 too (main.ts)
    const text = codes.map((c) => `${c}: ${ErrorCodes[c]}`).join('; ') + (status === 64 ? ', or an unknown command or option' : '');
    items.push([String(status), text]);
  }
  return { title: 'EXIT STATUS', text: ['A command that fails prints qos: and the reason on standard error, and exits with one of:'], items };
}

/** The page for `program` (the qos command) as roff. */
export function manPage(program: Command, o: ManPageOptions): string {
  const help = program.createHelp();
  const out: string[] = [];
  out.push(`.TH ${o.name.toUpperCase()} ${o.section} "${o.date}" "${roffText(o.source)}" "System Administration"`);
  out.push('.SH NAME', `${roffText(o.name)} \\- ${roffText(o.summary)}`);
  out.push('.SH SYNOPSIS', `.B ${o.name}`, '.I command', '[\\fIoptions\\fR] [\\fIarguments\\fR]', '.br', `.B ${o.name}`, '.I command', '\\fB\\-\\-help\\fR');
  out.push('.SH DESCRIPTION');
  for (const p of paragraphs(help.commandDescription(program))) out.push('.PP', roffText(p));
  out.push('.PP', roffText(`Every command takes --help, which prints what this page says of it. The options of ${o.name} itself:`));
  for (const opt of help.visibleOptions(program)) out.push('.TP', term(help.optionTerm(opt)), roffText(help.optionDescription(opt)));
  out.push('.SH COMMANDS');
  for (const cmd of visibleCommands(program, help)) out.push(...commandSection(cmd, help));
  for (const s of o.sections) {
    out.push(`.SH ${roffText(s.title.toUpperCase())}`);
    for (const p of s.text ?? []) out.push('.PP', roffText(p));
    for (const [t, text] of s.items ?? []) out.push('.TP', `\\fB${roffText(t)}\\fR`, roffText(text));
  }
  return out.join('\n') + '\n';
}

/** What qos(8) says besides the commands: its files, environment, exit status, and where to
 * read more. Paths that depend on where qosd is installed are not named (`qos agent-path`). */
export function qosSections(): ManSection[] {
  return [
    {
      title: 'FILES',
      items: [
        [DEFAULT_POLICY_FILE, 'the policy qos daemon runs when given no --policy, if the file is there (else the built-in policy, which qos policy default prints). Only root may be able to write it and its directory.'],
        ['/run/qosd/agent.sock', 'the socket agents ask the daemon on; agent.sock.gen beside it holds the policy generation every agent maps.'],
        ['/run/qosd/admin.sock', 'the admin API: qos status, flows, decisions, reload, metrics, rules.'],
        [DEFAULT_RULES_FILE, 'the kernel rule set (qos rules), kept by the daemon.'],
        ['/var/lib/qosd/install.json', 'what qos install did, so that qos uninstall undoes exactly that.'],
        ['/etc/ld.so.preload', 'with qos install --preload, names the agent library, which every dynamically linked program then loads.'],
        ['qosd.service', 'the systemd unit: /lib/systemd/system/qosd.service from the Debian package, or /etc/systemd/system/qosd.service from qos install; with it, qosd.conf in /usr/lib/tmpfiles.d or /etc/tmpfiles.d.'],
      ],
    },
    {
      title: 'ENVIRONMENT',
      items: [
        ['QOSD_SOCKET', 'the agent socket: the default of --socket, and where the agent asks (default /run/qosd/agent.sock).'],
        ['QOSD_ADMIN', 'the admin socket: the default of --admin (default /run/qosd/admin.sock).'],
        ['QOSD_TIMEOUT_MS', "the agent's deadline per request, 1-60000 ms (default 50)."],
        ['QOSD_DEBUG', "1: the agent prints diagnostics on standard error (never otherwise)."],
        ['QOSD_DISABLE', '1: the agent does nothing.'],
        ['QOSD_CACHE', "0: the agent asks the daemon on every call and never reuses an answer."],
      ],
      text: ['The agent reads none of its variables in a setuid, setgid or file-capability program: the defaults apply there.'],
    },
    exitStatusSection(),
    {
      title: 'SEE ALSO',
      text: ['systemd.exec(5), systemd-tmpfiles(8), ld.so(8), nft(8), and the documentation in /usr/share/doc/qosd (install.md: the service and its hardening; agent.md: running programs under the agent; policy.md: the policy format).'],
    },
  ];
}
