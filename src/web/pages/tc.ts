/* The Traffic control page: the host's traffic control as GET /v1/tc gives it
 * (docs/traffic-control.md): interfaces, flows and filters, read again every 2 s. The one edit
 * it offers is the API's simplest: deleting a flow (with its filters) or a filter
 * (DELETE /v1/tc/flows/ID, /v1/tc/filters/ID), each asked twice before it is done. Shown only
 * when the daemon runs traffic control (its status has a `tc` block). */

import { api } from '../api.js';
import { errorText, fmtRate, h } from '../dom.js';
import type { Page } from '../page.js';
import { poll } from '../poll.js';
import { DataTable } from '../table.js';

interface Mark { dscp: number; pcp: number }
interface TcInterface { dev: string; rate: number; rate_bit: number; reserved: number; flows: number; vlan: boolean; dot1p: boolean; nonconforming: Mark }
interface TcFlow {
  id: number; dev: string; name: string | null; mode: string; service: string; rate: number; bucket: number;
  policer: { size: number; pps: number; burst: number } | null; conforming: Mark; nonconforming: Mark; filters: number; owner: { kind: string };
}
interface TcFilter { id: number; flow: number; family: number; src: string; dst: string; proto: string; sport: string; dport: string; exact: boolean }
interface TcList { interfaces: TcInterface[]; flows: TcFlow[]; filters: TcFilter[] }

const REFRESH_MS = 2000;
const mark = (m: Mark) => `${m.dscp} / ${m.pcp}`;

/** A button that deletes only when pressed a second time within 5 s. */
function deleteButton(what: string, del: () => Promise<void>, onError: (e: unknown) => void): HTMLElement {
  let armed: number | null = null;
  const b = h('button', { type: 'button', class: 'danger', dataset: { role: 'delete' }, title: `delete ${what}` }, 'Delete');
  b.addEventListener('click', () => {
    if (armed === null) {
      b.textContent = 'Really delete?';
      armed = window.setTimeout(() => { armed = null; b.textContent = 'Delete'; }, 5000);
      return;
    }
    window.clearTimeout(armed);
    armed = null;
    b.disabled = true;
    del().catch(onError).finally(() => { b.disabled = false; b.textContent = 'Delete'; });
  });
  return b;
}

const page = {
  id: 'tc',
  title: 'Traffic control',
  available: (status) => !!status.tc,
  mount(root) {
    let alive = true;
    let shown = '';
    const status = h('p', { class: 'muted', role: 'status', dataset: { role: 'status' } }, 'Loading…');
    const fail = (e: unknown) => {
      if (!alive) return;
      status.className = 'notice error';
      status.textContent = errorText(e);
    };
    const interfaces = new DataTable<TcInterface>('interfaces', [
      { title: 'Interface', value: (i) => i.dev },
      { title: 'Rate', value: (i) => i.rate, render: (i) => (i.rate ? fmtRate(i.rate) : 'not set'), class: 'num' },
      { title: 'Reserved', value: (i) => i.reserved, render: (i) => fmtRate(i.reserved), class: 'num' },
      { title: 'Flows', value: (i) => i.flows, class: 'num' },
      { title: 'Non-conforming', value: (i) => mark(i.nonconforming) },
      { title: '802.1p', value: (i) => (i.dot1p ? (i.vlan ? 'VLAN' : 'tagger') : 'no') },
    ], { key: (i) => i.dev, empty: 'No interface is under traffic control (qos tc set-interface).' });
    const flows = new DataTable<TcFlow>('flows', [
      { title: 'ID', value: (f) => f.id, class: 'num' },
      { title: 'Name', value: (f) => f.name ?? '' },
      { title: 'Interface', value: (f) => f.dev },
      { title: 'Service', value: (f) => f.service },
      { title: 'Mode', value: (f) => f.mode },
      { title: 'Rate', value: (f) => f.rate, render: (f) => fmtRate(f.rate), class: 'num' },
      { title: 'Bucket', value: (f) => f.bucket, render: (f) => `${f.bucket} B`, class: 'num' },
      { title: 'Policer', value: (f) => (f.policer ? `${f.policer.pps} pkt/s of ${f.policer.size} B, burst ${f.policer.burst}` : '') },
      { title: 'Conforming', value: (f) => mark(f.conforming) },
      { title: 'Non-conforming', value: (f) => mark(f.nonconforming) },
      { title: 'Filters', value: (f) => f.filters, class: 'num' },
      { title: 'Owner', value: (f) => f.owner.kind },
      { title: '', value: () => '', render: (f) => deleteButton(`flow ${f.id} and its filters`, async () => { await api(`/v1/tc/flows/${f.id}`, { method: 'DELETE' }); await refresh(); }, fail) },
    ], { key: (f) => String(f.id), empty: 'No flow (qos tc add-flow, or a policy action with tc).' });
    const filters = new DataTable<TcFilter>('filters', [
      { title: 'ID', value: (x) => x.id, class: 'num' },
      { title: 'Flow', value: (x) => x.flow, class: 'num' },
      { title: 'Family', value: (x) => `IPv${x.family}` },
      { title: 'Source', value: (x) => x.src, class: 'addr' },
      { title: 'Destination', value: (x) => x.dst, class: 'addr' },
      { title: 'Protocol', value: (x) => x.proto },
      { title: 'Source port', value: (x) => x.sport },
      { title: 'Destination port', value: (x) => x.dport },
      { title: 'Exact', value: (x) => (x.exact ? 'yes' : 'no') },
      { title: '', value: () => '', render: (x) => deleteButton(`filter ${x.id}`, async () => { await api(`/v1/tc/filters/${x.id}`, { method: 'DELETE' }); await refresh(); }, fail) },
    ], { key: (x) => String(x.id), empty: 'No filter (qos tc add-filter).' });
    root.append(
      h('h1', null, 'Traffic control'),
      h('p', { class: 'muted' }, 'This host\'s traffic control (qos tc): the interfaces it shapes, its flows and the filters that put packets in them, read every 2 s. Marks are DSCP / 802.1p.'),
      status,
      h('h2', null, 'Interfaces'), interfaces.el,
      h('h2', null, 'Flows'), flows.el,
      h('h2', null, 'Filters'), filters.el,
    );

    async function refresh(): Promise<void> {
      const l = await api<TcList>('/v1/tc');
      if (!alive) return;
      // drawn again only when it changed: a Delete pressed once stays armed across reads
      const text = JSON.stringify(l);
      if (text !== shown) {
        shown = text;
        interfaces.set(l.interfaces);
        flows.set(l.flows);
        filters.set(l.filters);
      }
      status.className = 'muted';
      status.textContent = `${l.interfaces.length} interface${l.interfaces.length === 1 ? '' : 's'}, ${l.flows.length} flow${l.flows.length === 1 ? '' : 's'}, ${l.filters.length} filter${l.filters.length === 1 ? '' : 's'}; read at ${new Date().toLocaleTimeString()}.`;
      root.dataset.ready = '1';
    }

    const reads = poll(refresh, REFRESH_MS, fail);
    return () => {
      alive = false;
      reads.stop();
    };
  },
} satisfies Page;

export default page;
