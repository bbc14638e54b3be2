/* `qos install` and `qos uninstall`: qosd as a system service (service/install.ts does the
 * work; docs/install.md); and the qos(8) page the package installs, made from the help. */

import { Command, Option } from 'commander';
import { exitCodeFor, QosError } from '../../errors.js';
import { PACKAGE_ROOT, PACKAGE_VERSION } from '../../paths.js';
import { print } from '../format.js';

/** Registers `qos install` and `qos uninstall`. */
export function serviceCommands(program: Command): void {
  const install = new Command('install')
    .summary('install qosd as a system service: unit, tmpfiles entry, default policy, --preload')
    .description(`install qosd as a system service on this machine: the systemd unit qosd.service (/etc/systemd/system) and its tmpfiles entry for /run/qosd (/etc/tmpfiles.d), unless a package installed them; /etc/qosd/policy.yaml from the built-in policy if there is none (never overwritten); and with --preload the agent in /etc/ld.so.preload, so that every program loads it.

Before changing anything it checks every change can be made safely and refuses if one cannot (a file that is a link, or not its own, an agent that does not load): nothing is then changed. Files are replaced whole, never through a link. What it did is recorded in /var/lib/qosd/install.json; qos uninstall undoes exactly that. Running it again changes nothing, or adds what a new option asks for. Needs root, unless --root is given.`)
    .option('--preload', 'also add the agent library to /etc/ld.so.preload (checked first: only root can change it, every user can read it, and a program started with it preloaded runs)')
    // described, not shown: the man page is generated in a build directory
    .addOption(new Option('--prefix <dir>', 'the qosd installation the unit runs and --preload names').default(PACKAGE_ROOT, 'the one this qos runs from'))
    .option('--root <dir>', 'write into DIR as if it were / (for tests and images; needs no root)', '/')
    .option('--dry-run', 'print what it would do, change nothing')
    .option('--json', 'print a JSON report')
    .action(async (o: { preload?: boolean; prefix: string; root: string; dryRun?: boolean; json?: boolean }) => {
      const { apply, formatReport, planInstall } = await import('../../service/install.js');
      await reporting(o.json, () => {
        const { report, ops } = planInstall({ root: o.root, prefix: o.prefix, node: process.execPath, preload: !!o.preload, dryRun: !!o.dryRun });
        if (!o.dryRun) apply(ops);
        return { report, text: formatReport(report) };
      });
    });

  const uninstall = new Command('uninstall')
    .summary('undo exactly what qos install did')
    .description(`undo what qos install did, as recorded in /var/lib/qosd/install.json: remove the unit and the tmpfiles entry it wrote, its line in /etc/ld.so.preload (every other byte of that file kept; the file itself if qos install had created it and nothing else is in it), /etc/qosd/policy.yaml only if it is still as qos install created it (an edited policy is yours and stays: the report says so), and the directories it made if empty. It does not stop a running daemon. Needs root, unless --root is given.`)
    .option('--prefix <dir>', 'undo only an install of this qosd installation (default: whatever qos install recorded)')
    .option('--root <dir>', 'undo an install made with the same --root', '/')
    .option('--dry-run', 'print what it would do, change nothing')
    .option('--json', 'print a JSON report')
    .action(async (o: { prefix?: string; root: string; dryRun?: boolean; json?: boolean }) => {
      const { apply, formatReport, planUninstall } = await import('../../service/install.js');
      await reporting(o.json, () => {
        const { report, ops } = planUninstall({ root: o.root, prefix: o.prefix, dryRun: !!o.dryRun });
        if (!o.dryRun) apply(ops);
        return { report, text: formatReport(report) };
      });
    });
  program.addCommand(install);
  program.addCommand(uninstall);

  /** Prints the report; with --json a refusal is printed as JSON too ({ ok: false, error }),
   * with the same exit status, so that a program reads one document either way. */
  async function reporting(json: boolean | undefined, run: () => { report: object; text: string }): Promise<void> {
    try {
      const { report, text } = run();
      print(json ? JSON.stringify({ ok: true, ...report }, null, 2) : text);
    } catch (e) {
      if (!json || !(e instanceof QosError)) throw e;
      print(JSON.stringify({ ok: false, error: e.toJSON() }, null, 2));
      process.exitCode = exitCodeFor(e);
    }
  }
}

/** Registers the hidden `qos manpage`: qos(8) from the help of every command of PROGRAM. */
export function manpageCommand(program: Command): void {
  program
    .command('manpage', { hidden: true })
    .description('print the qos(8) manual page, roff, generated from this help (the Debian package installs it)')
    .option('--date <date>', 'the date in the footer, YYYY-MM-DD (default: today)')
    .action(async (o: { date?: string }) => {
      if (o.date !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(o.date)) throw new QosError('QOS_ERR_USAGE', `--date takes YYYY-MM-DD, not "${o.date}"`);
      const { manPage, qosSections } = await import('../manpage.js');
      process.stdout.write(manPage(program, {
        name: 'qos', section: 8, source: `qosd ${PACKAGE_VERSION}`, date: o.date ?? new Date().toISOString().slice(0, 10),
        summary: 'quality of service for unmodified applications', sections: qosSections(),
      }));
    });
}
