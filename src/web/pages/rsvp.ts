/* RSVP: the host's RSVP sessions (GET /v1/rsvp/sessions, docs/rsvp.md) with their state and
 * TSpec, and its status notifications (seed 002's FD_QOS codes) as they come: read from
 * GET /v1/rsvp/notifications?after=N every 2 s, and at once on a `reservation` event of the
 * event stream (a policy session's notification). Read-only. Listed only when the daemon runs
 * RSVP (`qos daemon --rsvp on`: its status has an `rsvp` block). */

import { api, apiLines } from '../api.js';
import { errorText, fmtRate, h } from '../dom.js';
import { onEvent } from '../events.js';
import type { Page } from '../page.js';
import { poll } from '../poll.js';
import { DataTable } from '../table.js';

interface SessionObj { destination: string; protocol: number; port: number }
interface Template { source: string; port: number }
/** IntServ counts bytes of IP datagrams: r and p in bytes/s, b, m and M in bytes; p may be "Infinity" */
interface TokenBucket { r: number; b: number; p: number | string; m: number; M: number }
interface Program { pid: number; fd: number; exe: string; user: string; rule: string | null }
interface Note { seq: number; at: string; code: string; id: number | null; role: string | null; session: SessionObj; sender: Template | null; program: Program | null; reason: string }
interface Managed {
  id: number; uid: number; role: 'sender' | 'receiver'; origin: string; active: boolean; program: Program | null; session: SessionObj;
  sender?: { sender: Template; tspec: TokenBucket };
  receiver?: { service: string; mode: string; style: string | null; tspec: TokenBucket | null };
  signalling?: boolean; reserved?: boolean; paths?: { sender: Template; tspec: TokenBucket }[];
  last?: { code: string; reason: string; at: string } | null;
}

const REFRESH_MS = 2000;
/** notifications kept on the page (the daemon keeps its own last ones) */
const MAX_NOTES = 500;

const proto = (p: number) => (p === 6 ? 'tcp' : p === 17 ? 'udp' : `ip${p}`);
const addr = (a: string, port: number) => `${a.includes(':') ? `[${a}]` : a}:${port}`;
const sessionText = (s: SessionObj) => `${addr(s.destination, s.port)} ${proto(s.protocol)}`;

/** A TSpec for people (rates from bytes/s, as fmtRate takes them). */
function tspecText(t: TokenBucket | null | undefined): string {
  if (!t) return 'from the Path';
  const p = typeof t.p === 'number' && Number.isFinite(t.p) ? fmtRate(t.p) : '∞';
  return `r ${fmtRate(t.r)}, b ${t.b} B, p ${p}, m ${t.m} B, M ${t.M} B`;
}

function stateText(m: Managed): string {
  if (!m.active) return 'inactive';
  if (m.role === 'sender') return m.reserved ? 'reserved' : m.signalling ? 'sending Path' : 'active';
  const n = m.paths?.length ?? 0;
  return `${n ? `${n} sender${n === 1 ? '' : 's'}` : 'no Path yet'}${m.signalling ? ', sending Resv' : ''}`;
}

const page: Page = {
  id: 'rsvp',
  title: 'RSVP',
  available: (status) => !!status.rsvp,
  mount(root) {
    let alive = true;
    let after = 0;
    let shown = '';
    const notes: Note[] = [];
    const status = h('p', { class: 'muted', role: 'status', dataset: { role: 'status' } }, 'Loading…');
    const sessions = new DataTable<Managed>('sessions', [
      { title: 'ID', value: (m) => m.id, class: 'num' },
      { title: 'Role', value: (m) => m.role },
      { title: 'Origin', value: (m) => m.origin },
      { title: 'Program', value: (m) => (m.program ? `${m.program.exe} (pid ${m.program.pid})` : '') },
      { title: 'Session', value: (m) => sessionText(m.session), class: 'addr' },
      { title: 'Sender', value: (m) => (m.sender ? addr(m.sender.sender.source, m.sender.sender.port) : ''), class: 'addr' },
      { title: 'Service', value: (m) => (m.receiver ? `${m.receiver.service} ${m.receiver.mode}${m.receiver.style ? ` ${m.receiver.style}` : ''}` : '') },
      { title: 'TSpec', value: (m) => tspecText(m.sender?.tspec ?? m.receiver?.tspec ?? m.paths?.[0]?.tspec) },
      { title: 'State', value: (m) => stateText(m) },
      { title: 'Last status', value: (m) => (m.last ? `${m.last.code}: ${m.last.reason}` : '') },
    ], { key: (m) => String(m.id), empty: 'No session: qos rsvp open, or a policy rule with reserve.' });
    const notifications = new DataTable<Note>('notifications', [
      { title: '#', value: (n) => n.seq, class: 'num' },
      { title: 'Time', value: (n) => n.at, render: (n) => new Date(n.at).toLocaleTimeString() },
      { title: 'Code', value: (n) => n.code },
      { title: 'Session', value: (n) => sessionText(n.session), class: 'addr' },
      { title: 'Role', value: (n) => n.role ?? '' },
      { title: 'Program', value: (n) => n.program?.exe ?? '' },
      { title: 'Reason', value: (n) => n.reason },
    ], { key: (n) => String(n.seq), sortBy: 0, desc: true, maxRows: MAX_NOTES, rowClass: (n) => `code-${n.code.toLowerCase()}`, empty: 'No notification yet.' });
    root.append(
      h('h1', null, 'RSVP'),
      h('p', { class: 'muted' }, 'This host\'s RSVP sessions (qos rsvp sessions) and their status notifications as they come (qos rsvp events --follow).'),
      status,
      h('h2', null, 'Sessions'), sessions.el,
      h('h2', null, 'Notifications'), notifications.el,
    );
    const fail = (e: unknown) => {
      if (!alive) return;
      status.className = 'notice error';
      status.textContent = errorText(e);
    };

    async function refresh(): Promise<void> {
      const [list, fresh] = await Promise.all([api<Managed[]>('/v1/rsvp/sessions'), apiLines<Note & { dropped?: number }>('/v1/rsvp/notifications', { query: { after } })]);
      if (!alive) return;
      const json = JSON.stringify(list);
      if (json !== shown) { shown = json; sessions.set(list); }
      // a `dropped` line (a reader that fell behind) has no seq: the next read starts after the last one seen
      const added = fresh.filter((n) => typeof n.seq === 'number' && n.seq > after);
      if (added.length || !root.dataset.ready) {
        for (const n of added) { notes.push(n); after = Math.max(after, n.seq); }
        notes.splice(0, Math.max(0, notes.length - MAX_NOTES));
        notifications.set(notes);
      }
      status.className = 'muted';
      status.textContent = `${list.length} session${list.length === 1 ? '' : 's'}, ${notes.length} notification${notes.length === 1 ? '' : 's'}; read at ${new Date().toLocaleTimeString()}.`;
      root.dataset.ready = '1';
    }

    const reads = poll(refresh, REFRESH_MS, fail);
    // a policy session's notification comes on the event stream too: read at once (or right
    // after the read under way)
    const off = onEvent('reservation', () => reads.now());
    return () => {
      alive = false;
      off();
      reads.stop();
    };
  },
};

export default page;
