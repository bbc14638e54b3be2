/* Every page of the dashboard in a real browser, at 1280×800 and at 390×844: each is reached
 * from the navigation, shows its data (data-ready), reports no error (console, uncaught, failed
 * or refused request), does not overflow a phone's width, and leaves a screenshot in
 * test-artifacts/dashboard/. And nothing of it without the session: 401 for every page, asset
 * and route, 403 without the CSRF token or from another origin. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NARROW, startDashboard, WIDE } from './dashboard-browser.js';
import { requireChromium, requireRoot } from '../prerequisites.js';
import { ask, login } from '../dashboard/test-client.js';

declare const document: { documentElement: { scrollWidth: number }; querySelectorAll(s: string): Iterable<{ getAttribute(n: string): string | null }> };

test('every page in the navigation, wide and narrow: its data shown, no error in the browser, no overflow on a phone, a screenshot', async () => {
  requireRoot('the daemon runs as root, with its kernel rules, traffic control and RSVP on');
  requireChromium();
  const d = await startDashboard({ daemonArgs: ['--kernel', 'on', '--tc', 'on', '--rsvp', 'on'] });
  try {
    const home = await d.openPage('flows');
    const ids = await home.page.$$eval('header nav a[data-nav]', (as) => as.map((a) => a.getAttribute('data-nav') ?? ''));
    await home.page.close();
    assert.ok(ids.length >= 2 && ids.includes('flows') && ids.includes('decisions'), ids.join(' '));
    for (const id of ids) {
      for (const [size, name] of [[WIDE, 'wide'], [NARROW, 'narrow']] as const) {
        const { page, errors } = await d.openPage(id, size);
        const active = await page.$eval('header nav a.active', (a) => a.getAttribute('data-nav'));
        assert.equal(active, id, `${id}: the navigation shows where we are`);
        await d.screenshot(page, `page-${id}-${name}`);
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= size.width, `${id} at ${size.width}×${size.height} is ${width} px wide: it overflows`);
        await page.close();
        assert.deepEqual(errors, [], `${id} at ${name}`);
      }
    }
  } finally {
    await d.close();
  }
});

test('without the session every page, asset and API route is 401; with it, an API request without the CSRF token is 403, and one from another origin too', async () => {
  requireRoot('the daemon runs as root');
  const d = await startDashboard();
  try {
    const paths = ['/', '/index.html', '/assets/app.js', '/assets/app.css', '/api/events', '/api/metrics',
      '/api/v1/status', '/api/v1/flows', '/api/v1/decisions', '/api/v1/rules', '/api/v1/tc', '/api/v1/policy', '/api/v1/metrics/history'];
    for (const p of paths) {
      assert.equal((await ask(d.base, 'GET', p)).status, 401, `GET ${p} without a session`);
      assert.equal((await ask(d.base, 'GET', p, { headers: { cookie: 'qosd_session=0123456789abcdef' } })).status, 401, `GET ${p} with a made-up cookie`);
    }
    for (const p of ['/api/v1/reload', '/api/v1/rules', '/api/logout']) assert.equal((await ask(d.base, 'POST', p, { body: '{}' })).status, 401, `POST ${p} without a session`);
    const s = await login(d.base, d.token);
    for (const p of ['/api/v1/status', '/api/v1/flows', '/api/events']) {
      assert.equal((await ask(d.base, 'GET', p, { headers: { cookie: s.cookie } })).status, 403, `GET ${p} without the CSRF token`);
    }
    for (const p of ['/api/v1/reload', '/api/v1/rules/validate']) {
      assert.equal((await ask(d.base, 'POST', p, { body: '{}', headers: { cookie: s.cookie } })).status, 403, `POST ${p} without the CSRF token`);
      assert.equal((await ask(d.base, 'POST', p, { body: '{}', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, origin: 'http://attacker.example' } })).status, 403, `POST ${p} from another origin`);
      assert.equal((await ask(d.base, 'POST', p, { body: '{}', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, 'sec-fetch-site': 'cross-site' } })).status, 403, `POST ${p} cross-site`);
    }
    // and the same session with its token gets in
    assert.equal((await ask(d.base, 'GET', '/api/v1/status', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })).status, 200);
  } finally {
    await d.close();
  }
});
