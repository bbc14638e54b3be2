/* The dashboard's Applications page in a real browser against a daemon counting per application
 * with its eBPF programs (`--ebpf on`, attached to a cgroup of the test's own): two copies of one
 * small sender under two paths, in that cgroup and a Testbed's client namespace, send to a sink
 * in the server namespace: one a burst and gone, one a trickle until told to stop. The page
 * lists both by path, the trickling one first (the busiest now, though it has sent less), with
 * byte totals equal to GET /v1/apps' and at least what each program wrote; the rest (`other`)
 * and the total under them; by user, root; and a daemon without the eBPF programs has the page
 * say why. */

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'puppeteer-core';
import { callJson } from '../daemon/admin-client.js';
import { runSync, start, type Child } from '../exec.js';
import { requireChromium, requireRoot, requireTools } from '../prerequisites.js';
import { NARROW, startDashboard, WIDE, type Dashboard } from './dashboard-browser.js';
import { Testbed, TestCgroup, waitFor } from './harness.js';

requireRoot('the daemon attaches eBPF programs, the test makes network namespaces and a cgroup');
requireTools('ip', 'gcc');
requireChromium();

// the page's functions run in the browser, where there is a document
interface El { textContent: string | null; getAttribute(n: string): string | null; querySelector(s: string): El | null; querySelectorAll(s: string): Iterable<El> }
declare const document: El & { documentElement: { scrollWidth: number } };

const PORT = 8091;
/** what the burst sender writes */
const BURST = 16 << 20;

/* HOST PORT BYTES PAUSE_MS: connects, writes BYTES at once and waits (BYTES > 0), or writes
 * 16 KiB every PAUSE_MS (BYTES = 0), until its stdin ends; then ends its side, reads to the
 * server's end, and prints how many bytes it wrote. (It stays while the test looks: a program
 * gone before the daemon first reads its counters is known by its file's name only.) */
const SENDER = `#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
  inet_pton(AF_INET, argv[1], &a.sin_addr);
  long want = atol(argv[3]), sent = 0; int pause = atoi(argv[4]);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
  static char buf[65536];
  memset(buf, 'x', sizeof buf);
  for (;;) {
    long n = want ? (want - sent < (long)sizeof buf ? want - sent : (long)sizeof buf) : 16384;
    if (n <= 0) break;
    ssize_t w = write(s, buf, n);
    if (w < 0) { perror("write"); return 1; }
    sent += w;
    if (!want) {
      struct pollfd p = { .fd = 0, .events = POLLIN };
      if (poll(&p, 1, pause) > 0 && read(0, buf, 1) <= 0) break;
    }
  }
  if (want) while (read(0, buf, 1) > 0) {}
  shutdown(s, SHUT_WR);
  while (read(s, buf, sizeof buf) > 0) {}
  printf("%ld\\n", sent);
  return 0;
}
`;

interface Counts { tx_bytes: number; rx_bytes: number; tx_packets: number; rx_packets: number }
interface Row extends Counts { key: string; name: string; tx_bps: number; rx_bps: number; pid?: number; users?: string[] }
interface Answer { by: string; rows: Row[]; other: Counts | null; tracked: number; total: Counts }

let tb: Testbed;
let cg: TestCgroup;
const bin: Record<'burst' | 'trickle', string> = { burst: '', trickle: '' };

before(async () => {
  tb = new Testbed();
  cg = new TestCgroup('apps');
  const src = join(tb.dir, 'sender.c');
  writeFileSync(src, SENDER);
  // one program under two paths: two executables to the kernel (two inodes)
  bin.burst = join(tb.dir, 'app-burst');
  runSync(['gcc', '-O2', '-o', bin.burst, src], { timeoutMs: 60_000 });
  bin.trickle = join(tb.dir, 'app-trickle');
  copyFileSync(bin.burst, bin.trickle);
  await tb.sink(PORT);
});

after(() => {
  cg?.remove();
  tb?.cleanup();
});

/** A sender started in the test's cgroup (joined first: `ip netns exec` mounts a sysfs of its
 * own) and the client namespace. */
function sender(exe: string, bytes: number): Child {
  return start(cg.argv(tb.client, [exe, tb.serverIp, String(PORT), String(bytes), '50']),
    { name: exe, stdio: ['pipe', 'pipe', 'pipe'], keepStdout: true });
}

/** What it wrote, once told to stop and ended. */
async function stop(c: Child): Promise<number> {
  c.proc.stdin!.end();
  await c.wait([0], 60_000);
  return Number(c.stdout.trim());
}

const ask = (d: Dashboard, by: string, n?: number) => callJson<Answer>(d.admin, 'GET', `/v1/apps?by=${by}${n ? `&n=${n}` : ''}`);

/** The page's table as shown: each row's key, its cells' text, and the exact figures (data-value)
 * by column; the rows under it (other, total) too. */
async function shown(page: Page): Promise<{ by: string; rows: { key: string; text: string; values: Record<string, number> }[] }> {
  return page.evaluate(() => {
    const rows = [...document.querySelectorAll('.apps-table table[data-table="apps"] tbody tr, .apps-table table[data-table="apps"] tfoot tr')].map((tr) => {
      const values: Record<string, number> = {};
      for (const td of tr.querySelectorAll('td')) {
        const v = td.querySelector('[data-value]')?.getAttribute('data-value');
        if (v !== null && v !== undefined) values[td.getAttribute('data-label') ?? ''] = Number(v);
      }
      return { key: tr.getAttribute('data-key') ?? '', text: tr.textContent ?? '', values };
    });
    return { by: document.querySelector('.apps-table')?.getAttribute('data-by') ?? '', rows };
  });
}

const near = (a: number, b: number) => Math.abs(a - b) <= 0.01 * Math.max(a, b);

/** Waits until the page, on dimension `by`, shows a row for each of `rows` with its sent and
 * received bytes within 1 % of the API's (the page reads every 2 s; the counters move while
 * packets still come). */
async function pageAgrees(page: Page, d: Dashboard, by: string, pick: (a: Answer) => Row[], n?: number): Promise<{ api: Answer; page: Awaited<ReturnType<typeof shown>> }> {
  let last: { api: Answer; page: Awaited<ReturnType<typeof shown>> } | null = null;
  try {
    await waitFor(`the page's ${by} rows to equal GET /v1/apps'`, async () => {
      const api = await ask(d, by, n);
      const p = await shown(page);
      last = { api, page: p };
      const want = pick(api);
      return p.by === by && want.length > 0 && want.every((r) => {
        const row = p.rows.find((x) => x.key === r.key);
        return !!row && row.text.includes(r.name) && near(row.values.Sent ?? -1, r.tx_bytes) && near(row.values.Received ?? -1, r.rx_bytes);
      });
    }, 250, 30_000);
  } catch (e) {
    assert.fail(`${(e as Error).message}: ${JSON.stringify(last)}`);
  }
  return last!;
}

test('the Applications page lists two programs by path, the busiest now first, with the byte totals of GET /v1/apps; the rest and the total under them; by user, root', async () => {
  const d = await startDashboard({ daemonArgs: ['--ebpf', 'on', '--ebpf-cgroup', cg.dir] });
  const trickle = sender(bin.trickle, 0);
  const burst = sender(bin.burst, BURST);
  try {
    const nav = await d.openPage('flows');
    assert.ok(await nav.page.$('header nav a[data-nav="apps"]'), 'the navigation lists the page when the eBPF programs are attached');
    await nav.page.close();

    const { page, errors } = await d.openPage('apps', WIDE);
    // the burst sent, and idle since; the trickle sends on: the trickle's row first, though the
    // API (by bytes) puts the burst's first
    await pageAgrees(page, d, 'program', (a) => a.rows.filter((r) => r.name === bin.burst && r.tx_bytes >= BURST));
    await waitFor('the trickling program at the top, sending', async () => {
      const p = await shown(page);
      return p.rows[0]?.text.includes(bin.trickle) === true && (p.rows[0].values.Sending ?? 0) > 0;
    }, 250, 30_000);
    const api = await ask(d, 'program');
    assert.deepEqual(api.rows.map((r) => r.name), [bin.burst, bin.trickle], 'the API orders by bytes: the burst first');
    await d.screenshot(page, 'apps');

    const written = { [bin.burst]: await stop(burst), [bin.trickle]: await stop(trickle) };
    assert.equal(written[bin.burst], BURST);
    // (once the daemon has read its counters since the two ended: both rows hold all they wrote)
    const all = (a: Answer) => (a.rows.filter((r) => r.tx_bytes >= (written[r.name] ?? Infinity)).length === 2 ? a.rows : []);
    const { api: done, page: p } = await pageAgrees(page, d, 'program', all);
    assert.deepEqual(done.rows.map((r) => r.name).sort(), [bin.burst, bin.trickle].sort(), 'the test cgroup had two programs');
    // what each wrote, with its segments' headers: at least that, and not 10 % more
    for (const row of done.rows) {
      const w = written[row.name]!;
      assert.ok(row.tx_bytes >= w && row.tx_bytes < w * 1.1, `${row.name}: ${row.tx_bytes} bytes counted for ${w} written`);
      assert.equal(row.users?.join(), 'root');
    }
    const text = p.rows.map((r) => r.text).join('\n');
    for (const r of done.rows) assert.ok(text.includes(String(r.pid)), `${r.name}'s pid ${r.pid} shown: ${text}`);
    const total = p.rows.find((r) => r.key === 'total');
    assert.ok(total && near(total.values.Sent!, done.total.tx_bytes) && near(total.values.Received!, done.total.rx_bytes), `the total: ${JSON.stringify(total)} for ${JSON.stringify(done.total)}`);
    assert.ok(!p.rows.some((r) => r.key === 'other'), 'no other row while every program is listed');

    // by user: root, everything the two sent
    await page.select('select[data-role="by"]', 'user');
    const users = await pageAgrees(page, d, 'user', (a) => a.rows);
    assert.deepEqual(users.api.rows.map((r) => r.name), ['root']);
    assert.ok(near(users.api.rows[0]!.tx_bytes, done.total.tx_bytes));
    await d.screenshot(page, 'apps-user');
    await page.setViewport(NARROW);
    await d.screenshot(page, 'apps-user-narrow');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= NARROW.width, `at ${NARROW.width} px wide the page is ${width} px: it overflows`);
    await page.close();
    assert.deepEqual(errors, []);

    // one row asked for (#/apps?n=1): the other program is in `other`
    const one = await d.openPage('apps', WIDE, { query: 'by=program&n=1' });
    const top = await pageAgrees(one.page, d, 'program', (a) => a.rows, 1);
    assert.equal(top.api.rows.length, 1);
    const other = top.page.rows.find((r) => r.key === 'other');
    assert.ok(other && top.api.other && near(other.values.Sent!, top.api.other.tx_bytes), `the other row: ${JSON.stringify(other)} for ${JSON.stringify(top.api.other)}`);
    assert.ok(near(top.api.rows[0]!.tx_bytes + top.api.other.tx_bytes, done.total.tx_bytes), 'the listed row and other make the total');
    await one.page.close();
    assert.deepEqual(one.errors, []);
  } finally {
    trickle.kill();
    burst.kill();
    await d.close();
  }
});

test('with --ebpf off the Applications page is not in the navigation, and reached by its route says the statistics need the eBPF programs, and why', async () => {
  const d = await startDashboard({ daemonArgs: ['--ebpf', 'off'] });
  try {
    const { page, errors } = await d.openPage('apps', WIDE);
    assert.equal(await page.$('header nav a[data-nav="apps"]'), null);
    const text = await page.$eval('section[data-page="apps"] [role="alert"]', (e) => e.textContent ?? '');
    assert.match(text, /statistics need the eBPF programs: .*--ebpf off/);
    assert.equal(await page.$('table[data-table="apps"]'), null, 'no empty table beside it');
    await d.screenshot(page, 'apps-no-ebpf');
    // the only errors: the route's answer, 503, as the browser reports it
    assert.ok(errors.length > 0 && errors.every((e) => /503/.test(e) && (/\/api\/v1\/apps/.test(e) || /^console: Failed to load resource/.test(e))), errors.join('\n'));
    await page.close();
  } finally {
    await d.close();
  }
});
