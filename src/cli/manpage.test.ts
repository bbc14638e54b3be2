/* qos(8): generated from the CLI's help, it renders without a groff warning and says what
 * --help says, command by command; text that means something to roff comes out as written. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Command } from 'commander';
import { QOS_CLI } from '../daemon/child.js';
import { PACKAGE_ROOT } from '../paths.js';
import { manPage } from './manpage.js';
import { requireTools } from '../prerequisites.js';

/** The page rendered as plain text, one long line per paragraph; fails the test on any groff
 * warning (-ww) or if groff is missing. */
function render(roff: string): string {
  requireTools('groff');
  const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-rLL=250n', '-P-cbou'], { input: roff, encoding: 'utf8' });
  assert.equal(r.stderr, '', 'groff warns about the page');
  assert.equal(r.status, 0);
  return r.stdout;
}

const qos = (...args: string[]) => {
  const r = spawnSync(process.execPath, [QOS_CLI, ...args], { encoding: 'utf8', env: { ...process.env, QOSD_SOCKET: '', QOSD_ADMIN: '' } });
  assert.equal(r.status, 0, `qos ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

test('qos manpage renders without a warning, with every command and every option --help lists', () => {
  const page = render(qos('manpage', '--date', '2024-01-02'));
  assert.match(page, /^QOS\(8\) +System Administration +QOS\(8\)$/m);
  assert.match(page, /qosd \d+\.\d+\.\d+ +2024-01-02/, 'the footer has the version and the date');
  // each command's help: its usage line is a heading of the page, its options are items
  const commands = [['daemon'], ['run'], ['status'], ['policy', 'check'], ['policy', 'default'], ['policy', 'show'], ['policy', 'apply'], ['policy', 'versions'], ['policy', 'restore'], ['rules', 'add'], ['bench', 'agent'], ['characterize'], ['flowspec', 'check'], ['flowspec', 'show'], ['install'], ['uninstall'], ['dashboard']];
  for (const c of commands) {
    const help = qos(...c, '--help');
    const usage = /^Usage: (.*)$/m.exec(help)![1]!.trim();
    assert.ok(page.includes(`   ${usage}\n`), `the page has the heading "${usage}"`);
    for (const [, flags] of help.matchAll(/^ {2}(-[^ ].*?)(?: {2,}|$)/gm)) {
      if (flags!.includes('--help')) continue;
      // a tag shorter than the indent shares its line with the text (.TP)
      assert.match(page, new RegExp(`^ {7}${flags!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\n| )`, 'm'), `qos ${c.join(' ')}: the page lists ${flags}`);
    }
  }
  assert.doesNotMatch(page, /qos manpage/, 'the hidden command is not on the page');
  assert.ok(!page.includes(PACKAGE_ROOT), 'no path of the tree it was generated in (the package builds it in a staging directory)');
  for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'FILES', 'ENVIRONMENT', 'EXIT STATUS', 'SEE ALSO']) assert.match(page, new RegExp(`^${section}$`, 'm'));
  assert.match(page, /^ +77 +QOS_ERR_FORBIDDEN: /m, 'exit statuses come from errors.ts');
  assert.match(page, /^ +64 +QOS_ERR_USAGE: .*, or an unknown command or option$/m);
});

test('text roff would read as requests, escapes or other characters comes out as written', () => {
  const cmd = new Command('demo').description('first paragraph\n.TH not a request\n\nsecond: a \\fB backslash, \'quote, -minus, é and → arrows');
  cmd.command('sub').description("'also at the start").option('--level <n>', '.5 or more', '1');
  const page = render(manPage(cmd, { name: 'demo', section: 1, source: 'demo 1.0', date: '', summary: 'a demo', sections: [{ title: 'files', items: [['/etc/demo', '.conf']] }] }));
  assert.match(page, /first paragraph \.TH not a request\n/);
  assert.match(page, /second: a \\fB backslash, 'quote, -minus, é and → arrows/);
  assert.match(page, /demo sub \[options\]\n +'also at the start/);
  assert.match(page, /--level <n>\n +\.5 or more \(default: "1"\)/);
  assert.match(page, /^FILES\n +\/etc\/demo\n +\.conf$/m);
});

test('qos manpage --date takes YYYY-MM-DD only', () => {
  const r = spawnSync(process.execPath, [QOS_CLI, 'manpage', '--date', 'yesterday'], { encoding: 'utf8' });
  assert.equal(r.status, 64);
  assert.match(r.stderr, /--date takes YYYY-MM-DD/);
});
