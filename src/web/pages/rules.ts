/* Kernel rules: the ordered rule set of `/v1/rules` with its counters (read again every 2 s),
 * the policy's kernel rules apart (read-only), and every change (add, edit, move, delete,
 * enable, disable, import, the whole set on or off) first as a dry run whose nft text is shown,
 * then applied with the revision that dry run was made against, or refused with the API's
 * message and nothing changed. Export shows the portable file, to copy or download.
 * The routes: docs/kernel-rules.md, "Managing the rule set". */

import { api, ApiError } from '../api.js';
import { clear, fmtBytes, h } from '../dom.js';
import type { Page } from '../page.js';
import './rules.css';

type Scalar = string | number;
type OneOrMany = Scalar | Scalar[];
interface KernelRule { name?: string; match?: Record<string, OneOrMany>; action: Record<string, Scalar | boolean>; enabled?: boolean }
interface ListedRule extends KernelRule { position: number; packets: number; bytes: number }
interface PolicyRule { position: number; name?: string; where: string; reason?: string; packets?: number; bytes?: number }
interface RuleList { revision: number; enabled: boolean; kernel: { active: boolean; problem: string | null }; rules: ListedRule[]; policy_rules: PolicyRule[] }
interface Values { match: Record<string, string | string[]>; action: Record<string, string | string[]> }
interface EditAnswer { revision: number; applied: boolean; apply_ms: number; commands: number; layers: Record<string, number>; nft?: string }

/** One change as the API takes it; `fromForm`: the form is cleared once it is applied. */
interface Change { what: string; method: 'POST' | 'PUT' | 'DELETE'; path: string; body: Record<string, unknown>; fromForm?: boolean }

const MATCH_FIELDS = ['family', 'proto', 'remote', 'remote_port', 'local', 'local_port', 'uid', 'gid', 'user', 'group'] as const;
/** match fields whose items are numbers when written as digits */
const NUMERIC_ITEMS = new Set<string>(['proto', 'remote_port', 'local_port', 'uid', 'gid']);
const COLUMNS = ['#', 'Name', 'Match', 'Action', 'Enabled', 'Packets', 'Bytes', ''];
const REFRESH_MS = 2000;

/** A match or action as `key=value` words (lists joined with commas), as `qos rules list`. */
function words(o: Record<string, unknown> | undefined): string {
  return Object.entries(o ?? {}).map(([k, v]) => (v === true ? k : `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)).join(' ');
}

/** A comma-separated field as the API's value: one item or a list, digits as numbers where
 * the field takes numbers; undefined when empty. */
function listValue(field: string, text: string): OneOrMany | undefined {
  const items = text.split(',').map((s) => s.trim()).filter(Boolean).map((s) => (NUMERIC_ITEMS.has(field) && /^\d+$/.test(s) ? Number(s) : s));
  return items.length === 0 ? undefined : items.length === 1 ? items[0] : items;
}

/** The names among an API's allowed values (the others describe: "a number 0-63"). */
const namesIn = (x: string | string[] | undefined): string[] => (Array.isArray(x) ? x.filter((s) => /^[A-Za-z]\w*$/.test(s)) : []);
const hint = (x: string | string[] | undefined): string => (Array.isArray(x) ? x.join(', ') : x ?? '');

const page: Page = {
  id: 'rules',
  title: 'Kernel rules',
  mount(root) {
    let live = true;
    let list: RuleList | null = null;
    let shownRevision = -1;
    /** the position being edited, or null: the form adds */
    let editing: number | null = null;
    let exportUrl: string | null = null;
    let pending: { change: Change; revision: number } | null = null;

    const summary = h('span', { dataset: { role: 'summary' } }, 'Loading…');
    const setToggle = h('button', { type: 'button', dataset: { action: 'set-disable' }, onclick: () => toggleSet() }, 'Disable the set');
    const message = h('p', { class: 'rules-message', role: 'status', dataset: { role: 'message' } });
    const errorBox = h('div', { class: 'notice error', role: 'alert', dataset: { role: 'error' } });
    errorBox.hidden = true;

    // the set: rows rebuilt only when its revision changes, counters updated in place, so that
    // a button under the pointer stays the same element (hence not the sortable DataTable:
    // the order is the rules' own)
    const tbody = h('tbody');
    const table = h('table', { dataset: { table: 'rules' } }, h('thead', null, h('tr', null, COLUMNS.map((t) => h('th', { scope: 'col', class: t === 'Packets' || t === 'Bytes' ? 'num' : undefined }, t)))), tbody);
    const empty = h('p', { class: 'muted', dataset: { role: 'empty' } }, 'No rules in the set: add one below, or import a file.');
    const pbody = h('tbody');
    const ptable = h('table', { dataset: { table: 'policy-rules' } }, h('thead', null, h('tr', null, ['#', 'Name', 'Where', 'Packets', 'Bytes'].map((t) => h('th', { scope: 'col' }, t)))), pbody);

    // the preview of a change: its nft text, Apply, Cancel
    const pvTitle = h('h2', null, '');
    const pvNote = h('p', { class: 'muted' });
    const pvText = h('pre', { class: 'rules-nft', dataset: { role: 'nft-preview' } });
    const applyBtn = h('button', { type: 'button', class: 'primary', dataset: { action: 'apply' }, onclick: () => void apply() }, 'Apply');
    const previewBox = h('section', { class: 'panel rules-preview', dataset: { role: 'preview' } }, pvTitle, pvNote, pvText,
      h('div', { class: 'toolbar' }, applyBtn, h('button', { type: 'button', dataset: { action: 'cancel' }, onclick: () => closePreview() }, 'Cancel')));
    previewBox.hidden = true;

    // add and edit: the form is built from GET /v1/rules/values
    const formTitle = h('h2', null, 'Add a rule');
    const form = h('form', { class: 'rules-form', dataset: { role: 'rule-form' }, onsubmit: (ev: Event) => { ev.preventDefault(); submitForm(); } });

    // import: a file or pasted text
    let importName = '<pasted>';
    const importText = h('textarea', { name: 'text', rows: 6, class: 'rules-text', dataset: { role: 'import-text' }, placeholder: '{"qosd_rules": 1, "enabled": true, "rules": [...]} (JSON or YAML)', oninput: () => { importName = '<pasted>'; } });
    const importFile = h('input', { type: 'file', accept: '.json,.yaml,.yml,application/json', dataset: { role: 'import-file' }, onchange: () => {
      const f = importFile.files?.[0];
      if (f) f.text().then((t) => { importText.value = t; importName = f.name; }, (e: unknown) => showError(e));
    } });

    // export: the text, a copy button, and a download (a Blob URL: a download is no fetch the
    // CSP's connect-src governs)
    const exportText = h('textarea', { rows: 8, readonly: true, class: 'rules-text', dataset: { role: 'export-text' } });
    const download = h('a', { class: 'rules-download', dataset: { action: 'download' }, download: 'qosd-rules.json' }, 'Download');
    const exportBox = h('div', null, exportText, h('div', { class: 'toolbar' },
      h('button', { type: 'button', dataset: { action: 'copy' }, onclick: () => copyExport() }, 'Copy'), download));
    exportBox.hidden = true;

    root.append(
      h('h1', null, 'Kernel rules'),
      h('p', { class: 'muted' }, 'Ordered, first match wins, applied by nftables to the packets of every process in the daemon’s network namespace, programs the agent cannot reach included. The policy’s rules the kernel can express come first (below). Every change is shown as nft commands before it is applied.'),
      h('div', { class: 'toolbar' }, summary, setToggle),
      message, errorBox, previewBox,
      h('div', { class: 'table-wrap' }, table), empty,
      h('section', { class: 'rules-section' }, formTitle, form),
      h('section', { class: 'rules-section' }, h('h2', null, 'Import'),
        h('p', { class: 'muted' }, 'Replaces the whole set with a rule-set file (as Export gives it), checked whole.'),
        importFile, importText,
        h('div', { class: 'toolbar' }, h('button', { type: 'button', dataset: { action: 'import' }, onclick: () => previewImport() }, 'Preview import'))),
      h('section', { class: 'rules-section' }, h('h2', null, 'Export'),
        h('div', { class: 'toolbar' }, h('button', { type: 'button', dataset: { action: 'export' }, onclick: () => void doExport() }, 'Export')), exportBox),
      h('section', { class: 'rules-section' }, h('h2', null, 'From the policy (read-only)'),
        h('p', { class: 'muted' }, 'The policy file’s rules; those the kernel can express are applied before the set. Change them on the Policy page.'),
        h('div', { class: 'table-wrap' }, ptable)),
    );

    function say(text: string): void { message.textContent = text; }

    function showError(e: unknown): void {
      clear(errorBox);
      if (e instanceof ApiError) {
        errorBox.append(h('strong', null, 'Refused: '), `${e.message} (${e.code}, HTTP ${e.status})`);
        if (e.problems.length) errorBox.append(h('ul', null, e.problems.map((p) => h('li', null, `${p.path ? `${p.path}: ` : ''}${p.line ? `line ${p.line}, column ${p.col ?? 1}: ` : ''}${p.message}`))));
      } else errorBox.append(e instanceof Error ? e.message : String(e));
      errorBox.hidden = false;
    }
    function clearError(): void { errorBox.hidden = true; clear(errorBox); }

    const field = (label: string, input: HTMLElement) => h('label', { class: 'rules-field' }, h('span', null, label), input);

    function buildForm(v: Values): void {
      clear(form);
      const matchBox = h('fieldset', null, h('legend', null, 'Match (empty fields match anything; lists: comma-separated)'));
      for (const f of MATCH_FIELDS) {
        if (!(f in v.match)) continue;
        const input = f === 'family'
          ? h('select', { name: f }, h('option', { value: '' }, 'any'), namesIn(v.match[f]).map((o) => h('option', { value: o }, o)))
          : h('input', { name: f, list: f === 'proto' ? 'rules-protos' : undefined, placeholder: hint(v.match[f]), autocomplete: 'off' });
        matchBox.append(field(f.replace('_', ' '), input));
      }
      const actionBox = h('fieldset', null, h('legend', null, 'Action'),
        field('dscp', h('input', { name: 'dscp', list: 'rules-dscps', placeholder: 'EF, AF41, CS5… or 0-63', autocomplete: 'off' })),
        field('tos', h('input', { name: 'tos', type: 'number', min: 0, max: 255, placeholder: hint(v.action.tos) })),
        field('priority', h('input', { name: 'priority', type: 'number', min: 0, max: 7, placeholder: hint(v.action.priority) })),
        h('label', { class: 'rules-check' }, h('input', { name: 'override', type: 'checkbox' }), h('span', null, 'override: ', hint(v.action.override).replace(/^true: /, ''))));
      // checked by default: what form.reset() comes back to
      const enabledBox = h('input', { name: 'enabled', type: 'checkbox' });
      enabledBox.defaultChecked = true;
      enabledBox.checked = true;
      form.append(
        h('datalist', { id: 'rules-protos' }, namesIn(v.match.proto).map((o) => h('option', { value: o }))),
        h('datalist', { id: 'rules-dscps' }, namesIn(v.action.dscp).map((o) => h('option', { value: o }))),
        h('div', { class: 'rules-row' },
          field('name', h('input', { name: 'name', placeholder: 'optional: letters, digits, _ . : @ -', autocomplete: 'off' })),
          field('position', h('input', { name: 'position', type: 'number', min: 1, placeholder: 'the end' })),
          h('label', { class: 'rules-check' }, enabledBox, h('span', null, 'enabled (in the kernel)'))),
        matchBox, actionBox,
        h('div', { class: 'toolbar' },
          h('button', { type: 'submit', class: 'primary', dataset: { action: 'preview-rule' } }, 'Preview'),
          h('button', { type: 'button', dataset: { action: 'reset' }, onclick: () => resetForm() }, 'Clear')));
    }

    const input = (name: string) => form.elements.namedItem(name) as HTMLInputElement | null;

    function resetForm(): void {
      form.reset();
      editing = null;
      formTitle.textContent = 'Add a rule';
      const pos = input('position');
      if (pos) pos.disabled = false;
    }

    function fillForm(r: ListedRule): void {
      resetForm();
      editing = r.position;
      formTitle.textContent = `Edit rule ${r.position}${r.name ? ` (${r.name})` : ''}`;
      const set = (n: string, v: unknown) => { const el = input(n); if (el) el.value = v === undefined ? '' : Array.isArray(v) ? v.join(', ') : String(v); };
      set('name', r.name);
      for (const f of MATCH_FIELDS) set(f, r.match?.[f]);
      set('dscp', r.action.dscp); set('tos', r.action.tos); set('priority', r.action.priority);
      input('override')!.checked = r.action.override === true;
      input('enabled')!.checked = r.enabled !== false;
      // an edit replaces the rule where it is; the row's arrows move it
      const pos = input('position')!;
      pos.value = String(r.position);
      pos.disabled = true;
      formTitle.scrollIntoView({ block: 'start' });
    }

    function submitForm(): void {
      const text = (n: string) => (input(n)?.value ?? '').trim();
      const match: Record<string, OneOrMany> = {};
      for (const f of MATCH_FIELDS) { const v = listValue(f, text(f)); if (v !== undefined) match[f] = v; }
      const action: Record<string, Scalar | boolean> = {};
      const dscp = text('dscp');
      if (dscp) action.dscp = /^\d+$/.test(dscp) ? Number(dscp) : dscp;
      if (text('tos')) action.tos = Number(text('tos'));
      if (text('priority')) action.priority = Number(text('priority'));
      if (input('override')!.checked) action.override = true;
      const rule: KernelRule = { ...(text('name') ? { name: text('name') } : {}), match, action, ...(input('enabled')!.checked ? {} : { enabled: false }) };
      if (editing !== null) { void preview({ what: `Replace rule ${editing}`, method: 'PUT', path: `/v1/rules/${editing}`, body: { rule }, fromForm: true }); return; }
      const pos = text('position');
      void preview(pos
        ? { what: `Insert a rule at position ${pos}`, method: 'POST', path: '/v1/rules', body: { rule, position: Number(pos) }, fromForm: true }
        : { what: 'Add a rule at the end', method: 'POST', path: '/v1/rules', body: { rule }, fromForm: true });
    }

    function previewImport(): void {
      if (!importText.value.trim()) { showError(new Error('Choose a file or paste a rule set first.')); return; }
      void preview({ what: `Import ${importName} (the whole set replaced)`, method: 'POST', path: '/v1/rules/import', body: { text: importText.value, file: importName } });
    }

    function toggleSet(): void {
      if (!list) return;
      void preview(list.enabled
        ? { what: 'Disable the whole set', method: 'POST', path: '/v1/rules/disable', body: {} }
        : { what: 'Enable the whole set', method: 'POST', path: '/v1/rules/enable', body: {} });
    }

    /** A dry run of the change on the revision the page shows; its nft text, then Apply. */
    async function preview(change: Change): Promise<void> {
      clearError();
      say('');
      try {
        const dry = await api<EditAnswer>(change.path, { method: change.method, body: { ...change.body, dry_run: true, ...(list ? { revision: list.revision } : {}) } });
        if (!live) return;
        pending = { change, revision: dry.revision };
        pvTitle.textContent = `${change.what}: the change, before it is applied`;
        const layers = Object.entries(dry.layers).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
        pvNote.textContent = `${dry.commands} nft commands on revision ${dry.revision} (layers after it: ${layers}).`
          + (list && !list.kernel.active ? ` Kernel rules are not applied here (${list.kernel.problem ?? 'inactive'}): Apply only stores the set.` : '');
        pvText.textContent = dry.nft ?? '';
        previewBox.hidden = false;
        previewBox.scrollIntoView({ block: 'nearest' });
      } catch (e) {
        if (live) { closePreview(); showError(e); }
      }
    }

    function closePreview(): void {
      pending = null;
      previewBox.hidden = true;
      pvText.textContent = '';
    }

    /** The change previewed, sent with its dry run's revision: refused if the set moved on. */
    async function apply(): Promise<void> {
      if (!pending) return;
      const { change, revision } = pending;
      applyBtn.disabled = true;
      try {
        const r = await api<EditAnswer>(change.path, { method: change.method, body: { ...change.body, revision } });
        if (!live) return;
        closePreview();
        say(`${change.what}: revision ${r.revision}, ${r.applied ? `applied in ${r.apply_ms} ms (${r.commands} nft commands)` : 'stored (kernel rules are not applied here)'}.`);
        if (change.fromForm) resetForm();
      } catch (e) {
        if (!live) return;
        closePreview();
        showError(e);
      } finally {
        applyBtn.disabled = false;
      }
      await load();
    }

    function rowButtons(r: ListedRule, n: number): HTMLElement {
      const p = r.position;
      const b = (action: string, label: string, title: string, change: Change | (() => void), disabled = false) =>
        h('button', { type: 'button', title, disabled, dataset: { action }, onclick: () => (typeof change === 'function' ? change() : void preview(change)) }, label);
      return h('td', { class: 'rules-actions', dataset: { label: '' } },
        b('up', '↑', 'move up', { what: `Move rule ${p} to ${p - 1}`, method: 'POST', path: '/v1/rules/move', body: { from: p, to: p - 1 } }, p === 1),
        b('down', '↓', 'move down', { what: `Move rule ${p} to ${p + 1}`, method: 'POST', path: '/v1/rules/move', body: { from: p, to: p + 1 } }, p === n),
        b('edit', 'Edit', 'edit this rule in the form', () => fillForm(r)),
        r.enabled === false
          ? b('enable', 'Enable', 'put this rule in the kernel again', { what: `Enable rule ${p}`, method: 'POST', path: `/v1/rules/${p}/enable`, body: {} })
          : b('disable', 'Disable', 'keep it in the set, out of the kernel', { what: `Disable rule ${p}`, method: 'POST', path: `/v1/rules/${p}/disable`, body: {} }),
        b('delete', 'Delete', 'delete this rule', { what: `Delete rule ${p}`, method: 'DELETE', path: `/v1/rules/${p}`, body: {} }));
    }

    function render(l: RuleList): void {
      summary.textContent = `Revision ${l.revision} · ${l.rules.length} rule${l.rules.length === 1 ? '' : 's'} · the set is ${l.enabled ? 'enabled' : 'disabled'} · ${l.kernel.active ? 'applied by nftables' : `not applied: ${l.kernel.problem ?? 'inactive'}`}`;
      setToggle.textContent = l.enabled ? 'Disable the set' : 'Enable the set';
      setToggle.dataset.action = l.enabled ? 'set-disable' : 'set-enable';
      const td = (label: string, text: string, o: { class?: string; col?: string; title?: string } = {}) =>
        h('td', { class: o.class, title: o.title, dataset: { label, ...(o.col ? { col: o.col } : {}) } }, text);
      if (l.revision !== shownRevision) {
        tbody.replaceChildren(...l.rules.map((r) => h('tr', { dataset: { key: String(r.position) }, class: r.enabled === false ? 'rules-off' : undefined },
          td('#', String(r.position)), td('Name', r.name ?? ''), td('Match', words(r.match) || 'any (the default rule)', { class: 'rules-match' }),
          td('Action', words(r.action)), td('Enabled', r.enabled === false ? 'no' : 'yes', { col: 'enabled' }),
          td('Packets', String(r.packets), { class: 'num', col: 'packets' }), td('Bytes', fmtBytes(r.bytes), { class: 'num', col: 'bytes', title: `${r.bytes} bytes` }),
          rowButtons(r, l.rules.length))));
        shownRevision = l.revision;
      } else {
        for (const r of l.rules) {
          const tr = tbody.querySelector(`tr[data-key="${r.position}"]`);
          const put = (col: string, text: string) => { const c = tr?.querySelector(`[data-col="${col}"]`); if (c && c.textContent !== text) c.textContent = text; };
          put('packets', String(r.packets));
          put('bytes', fmtBytes(r.bytes));
        }
      }
      empty.hidden = l.rules.length > 0;
      pbody.replaceChildren(...l.policy_rules.map((p) => h('tr', { dataset: { key: String(p.position) } },
        td('#', String(p.position)), td('Name', p.name ?? ''),
        td('Where', p.where === 'agent+kernel' ? 'agent and kernel' : `agent only${p.reason ? ` (${p.reason})` : ''}`),
        td('Packets', p.packets === undefined ? '' : String(p.packets), { class: 'num' }), td('Bytes', p.bytes === undefined ? '' : fmtBytes(p.bytes), { class: 'num' }))));
    }

    async function load(): Promise<void> {
      try {
        const l = await api<RuleList>('/v1/rules');
        // answers may cross: one older than the set shown is left out
        if (!live || (list && l.revision < list.revision)) return;
        list = l;
        render(l);
        root.dataset.ready = '1';
      } catch (e) {
        if (live) showError(e);
      }
    }

    async function doExport(): Promise<void> {
      try {
        const x = await api<{ text: string; revision: number }>('/v1/rules/export');
        if (!live) return;
        exportText.value = x.text;
        if (exportUrl) URL.revokeObjectURL(exportUrl);
        exportUrl = URL.createObjectURL(new Blob([x.text], { type: 'application/json' }));
        download.href = exportUrl;
        download.download = `qosd-rules-r${x.revision}.json`;
        exportBox.hidden = false;
      } catch (e) {
        if (live) showError(e);
      }
    }

    function copyExport(): void {
      exportText.select();
      if (!navigator.clipboard) { say('Selected: copy it with the keyboard.'); return; }
      navigator.clipboard.writeText(exportText.value).then(() => say('Copied.'), () => say('The browser refused the clipboard: the text is selected, copy it with the keyboard.'));
    }

    void (async () => {
      try {
        const v = await api<Values>('/v1/rules/values');
        if (live) buildForm(v);
      } catch (e) {
        if (live) showError(e);
      }
      await load();
    })();
    const timer = window.setInterval(() => void load(), REFRESH_MS);
    return () => {
      live = false;
      window.clearInterval(timer);
      if (exportUrl) URL.revokeObjectURL(exportUrl);
    };
  },
};

export default page;
