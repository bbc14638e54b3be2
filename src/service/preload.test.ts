/* /etc/ld.so.preload edits: our line in and out, every other byte kept; and the checks an agent
 * must pass before every program on the machine is made to load it. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_LIBRARY } from '../paths.js';
import { QosError } from '../errors.js';
import { addPreload, checkPreloadable, preloadNames, removePreload } from './preload.js';

const AGENT = '/usr/lib/qosd/agent/build/libqosagent.so';

test('the loader\'s view: names separated by white space or ":", comments to the end of the line', () => {
  assert.deepEqual(preloadNames('/a.so /b.so:/c.so\n\t/d.so # /e.so\n#/f.so\n/g.so'), ['/a.so', '/b.so', '/c.so', '/d.so', '/g.so']);
  assert.deepEqual(preloadNames(''), []);
});

test('our line goes at the end; other lines, a last line without a newline, and bytes that are not UTF-8 come back exactly on removal', () => {
  const before = Buffer.concat([Buffer.from('/opt/a.so\n# keep this comment\n\t/opt/b.so:/opt/c.so  \n'), Buffer.from([0x2f, 0xff, 0xfe, 0x2e, 0x73, 0x6f])]).toString('latin1');
  const added = addPreload(before, AGENT);
  assert.equal(added.changed, true);
  assert.equal(added.addedNewline, true);
  assert.equal(added.text, `${before}\n${AGENT}\n`);
  const removed = removePreload(added.text, AGENT, added.addedNewline);
  assert.equal(removed.removed, 1);
  assert.ok(Buffer.from(removed.text, 'latin1').equals(Buffer.from(before, 'latin1')), 'byte for byte the file as it was');
});

test('adding twice adds one line; a name already there (on another line, or beside another name) is not added again', () => {
  const once = addPreload('/opt/a.so\n', AGENT);
  const twice = addPreload(once.text, AGENT);
  assert.equal(twice.changed, false);
  assert.equal(twice.text, once.text);
  assert.equal(addPreload(`/opt/a.so:${AGENT}\n`, AGENT).changed, false);
  assert.equal(addPreload(`# ${AGENT}\n`, AGENT).changed, true, 'a comment names nothing');
});

test('an empty or absent file gets exactly our line, and is empty again after', () => {
  const a = addPreload('', AGENT);
  assert.deepEqual(a, { text: `${AGENT}\n`, changed: true, addedNewline: false });
  assert.deepEqual(removePreload(a.text, AGENT, false), { text: '', removed: 1 });
});

test('removal takes only whole lines that are our line: lines added after ours stay, with the newline before them', () => {
  const a = addPreload('/opt/a.so', AGENT);
  const edited = `${a.text}/opt/later.so\n`;
  assert.equal(removePreload(edited, AGENT, a.addedNewline).text, '/opt/a.so\n/opt/later.so\n');
  // our name beside another on someone else's line is theirs
  assert.deepEqual(removePreload(`/opt/a.so ${AGENT}\n`, AGENT, false), { text: `/opt/a.so ${AGENT}\n`, removed: 0 });
  assert.equal(removePreload(`  ${AGENT}  \n/opt/a.so\n`, AGENT, false).text, '/opt/a.so\n');
});

function inDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-preload-'));
  chmodSync(dir, 0o755);
  try { fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

const refused = (code: string, re: RegExp) => (e: unknown) => e instanceof QosError && e.code === code && re.test(e.message);

test('the built agent passes: its real path comes back', () => {
  inDir((dir) => {
    const link = join(dir, 'agent.so');
    symlinkSync(AGENT_LIBRARY, link);
    assert.equal(checkPreloadable(link), AGENT_LIBRARY);
  });
});

test('an agent that is missing, or that the loader cannot load, is refused before anything is written', () => {
  inDir((dir) => {
    assert.throws(() => checkPreloadable(join(dir, 'missing.so')), refused('QOS_ERR_ENVIRONMENT', /is not there/));
    const junk = join(dir, 'junk.so');
    writeFileSync(junk, 'not an ELF file\n', { mode: 0o644 });
    assert.throws(() => checkPreloadable(junk), refused('QOS_ERR_ENVIRONMENT', /does not load into a program.*cannot be preloaded/s));
  });
});

test('an agent another user could replace, or could not read, is refused', () => {
  inDir((dir) => {
    const a = join(dir, 'agent.so');
    copyFileSync(AGENT_LIBRARY, a);
    chmodSync(a, 0o666);
    assert.throws(() => checkPreloadable(a), refused('QOS_ERR_UNSAFE_PATH', /writable by group or others/));
    chmodSync(a, 0o600);
    assert.throws(() => checkPreloadable(a), refused('QOS_ERR_UNSAFE_PATH', /not readable by every user/));
    const shared = join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    const b = join(shared, 'agent.so');
    copyFileSync(AGENT_LIBRARY, b);
    chmodSync(b, 0o644);
    assert.throws(() => checkPreloadable(b), refused('QOS_ERR_UNSAFE_PATH', /shared is writable by group and others/));
    const hidden = join(dir, 'hidden');
    mkdirSync(hidden, { mode: 0o700 });
    const c = join(hidden, 'agent.so');
    copyFileSync(AGENT_LIBRARY, c);
    chmodSync(c, 0o644);
    assert.throws(() => checkPreloadable(c), refused('QOS_ERR_UNSAFE_PATH', /hidden is not searchable by every user/));
  });
});

test('an agent path with the file\'s separators in it is refused', () => {
  inDir((dir) => {
    const odd = join(dir, 'with space');
    mkdirSync(odd, { mode: 0o755 });
    const a = join(odd, 'agent.so');
    copyFileSync(AGENT_LIBRARY, a);
    chmodSync(a, 0o644);
    assert.throws(() => checkPreloadable(a), refused('QOS_ERR_ENVIRONMENT', /white space, ':' or '#'/));
  });
});
