/* The dashboard's browser app: a header with the navigation and the live stream's state, and
 * one page at a time in <main>, chosen by the hash route (#/flows, #/policy, ...). Every page
 * reads the daemon through the admin API (api.ts) and its events (events.ts). */

import './style.css';
import { api, logout } from './api.js';
import { clear, h, notice } from './dom.js';
import { onStreamState } from './events.js';
import type { Page, Status } from './page.js';
import { PAGES } from './pages/index.js';

const DEFAULT_PAGE = 'flows';

function route(): { id: string; params: URLSearchParams } {
  const m = /^#\/([\w-]+)(?:\?(.*))?$/.exec(location.hash);
  return { id: m?.[1] ?? DEFAULT_PAGE, params: new URLSearchParams(m?.[2] ?? '') };
}

async function start(): Promise<void> {
  const app = document.getElementById('app')!;
  let status: Status;
  try {
    status = await api<Status>('/v1/status');
  } catch (e) {
    app.appendChild(notice('error', `The daemon did not answer: ${(e as Error).message}`));
    return;
  }
  const shown = PAGES.filter((p) => p.nav !== false && (p.available?.(status) ?? true));
  const links = new Map<string, HTMLAnchorElement>();
  const streamDot = h('span', { class: 'stream', title: 'live event stream' });
  const nav = h('nav', { 'aria-label': 'pages' }, shown.map((p) => {
    const a = h('a', { href: `#/${p.id}`, dataset: { nav: p.id } }, p.title);
    links.set(p.id, a);
    return a;
  }));
  const header = h('header', null,
    h('span', { class: 'brand' }, 'qosd'),
    nav,
    h('span', { class: 'right' }, streamDot, h('button', { type: 'button', class: 'link', onclick: () => void logout() }, 'Log out')));
  const main = h('main', { id: 'page' });
  clear(app);
  app.append(header, main);
  onStreamState((s) => { streamDot.dataset.state = s; streamDot.textContent = s === 'live' ? '● live' : s === 'connecting' ? '○ connecting' : ''; });

  let stop: (() => void) | void;
  let current: string | null = null;
  const show = () => {
    const { id, params } = route();
    const page: Page | undefined = PAGES.find((p) => p.id === id);
    const key = location.hash;
    if (key === current) return;
    current = key;
    try { stop?.(); } catch (e) { console.warn('leaving the page failed', e); }
    stop = undefined;
    for (const [pid, a] of links) a.classList.toggle('active', pid === id);
    const root = h('section', { class: 'page', dataset: { page: id } });
    main.replaceChildren(root);
    if (!page) { root.appendChild(notice('error', `No page "${id}".`)); return; }
    document.title = `qosd: ${page.title}`;
    stop = page.mount(root, { status, params, navigate: (hash) => { location.hash = hash; } });
  };
  window.addEventListener('hashchange', show);
  show();
}

document.addEventListener('DOMContentLoaded', () => void start());
