/* What a browser without a session gets for a page (status 401): a small page that logs in with
 * the token in the URL's fragment (`qos dashboard` prints http://ADDR:PORT/#token=TOKEN; a
 * fragment is never sent in a request line, so no log sees it) or one pasted in its form, then
 * loads the app. Its script is a file of its own, /login.js (the one path served without a
 * session: it holds no secret), because the Content-Security-Policy allows no inline script. */

export const LOGIN_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qosd: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<script src="/login.js" defer></script></head>
<body><h1>qosd dashboard</h1>
<p id="why">Log in with the token <code>sudo qos dashboard</code> prints.</p>
<form id="login"><input id="token" name="token" type="password" autocomplete="off" size="70" aria-label="token">
<button type="submit">Log in</button></form></body></html>
`;

export const LOGIN_JS = `'use strict';
async function login(token) {
  const r = await fetch('/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }), credentials: 'same-origin' });
  if (r.ok) {
    // the app sends it with every API request; storage of this origin, port included, is this dashboard's alone
    localStorage.setItem('qosd-csrf', (await r.json()).csrf);
    history.replaceState(null, '', location.pathname);
    location.reload();
    return;
  }
  document.getElementById('why').textContent = r.status === 401 ? 'That token is not the daemon\\'s current one (it changes when the daemon restarts).' : 'Login failed: ' + r.status;
}
document.addEventListener('DOMContentLoaded', () => {
  const m = /(?:^#|&)token=([0-9a-f]{64})/.exec(location.hash);
  if (m) { history.replaceState(null, '', location.pathname); void login(m[1]); }
  document.getElementById('login').addEventListener('submit', (e) => { e.preventDefault(); void login(document.getElementById('token').value.trim()); });
});
`;

/** What `/` answers (after login) while dist/web/ has no index.html. */
export const NOT_BUILT_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qosd</title><link rel="icon" href="data:,"></head>
<body><h1>qosd dashboard</h1><p>The browser app is not built (no index.html in dist/web/). The API answers under /api/: /api/v1/status, /api/v1/flows, /api/events.</p></body></html>
`;
