/* The Policy page: the running policy's YAML in an editor (a textarea with a line-number
 * gutter), checked while typing by the daemon's checker (POST /v1/policy/check, the one
 * `qos policy check` runs), each problem listed and marked at its line; Apply shows the line
 * diff of running → edited text first, then applies it against the running text's sha256;
 * earlier versions listed, viewable and restorable (diff first). Every request is an admin
 * route (docs/policy.md, "Editing the running policy through the API"). */

import { api, ApiError } from '../api.js';
import { clear, h } from '../dom.js';
import { DataTable } from '../table.js';
import { collapse, diffLines, splitLines, type DiffRow } from '../../line-diff.js';
import type { Page } from '../page.js';
import './policy.css';

interface Running {
  source: string; origin: string; editable: boolean; text: string; sha256: string; loaded_at: string;
  generation: number; rules: number; file_differs: boolean; last_error: { at: string; message: string } | null;
}
interface Problem { line?: number; col?: number; path?: string; file?: string; message: string }
interface Check { ok: boolean; rules?: number; problems?: Problem[] }
interface Version { version: number; saved_at: string; sha256: string; size: number; by: string; uid: number }
interface Applied { ok: true; version: number; rules: number; generation: number; sha256: string; restored?: number }

/** Typing pauses this long before the text is checked. */
const CHECK_DELAY_MS = 300;

function mount(root: HTMLElement): () => void {
  let running: Running | null = null;
  let problems: Problem[] = [];
  /** the text the last answered check was of; Apply needs it to be the editor's */
  let checkedText: string | null = null;
  let checkSeq = 0;
  let timer: number | undefined;
  let gone = false;

  const info = h('div', { class: 'policy-info' });
  const gutter = h('div', { class: 'policy-gutter', 'aria-hidden': 'true' });
  const editor = h('textarea', { class: 'policy-text', dataset: { role: 'editor' }, spellcheck: 'false', wrap: 'off', autocomplete: 'off', 'aria-label': 'policy (YAML)' }) as HTMLTextAreaElement;
  const state = h('span', { class: 'policy-state', dataset: { role: 'check-state' } });
  const list = h('ul', { class: 'policy-problems', dataset: { role: 'problems' } });
  const applyBtn = h('button', { type: 'button', class: 'primary', dataset: { action: 'apply' }, disabled: true }, 'Apply…') as HTMLButtonElement;
  const revertBtn = h('button', { type: 'button', dataset: { action: 'revert' }, disabled: true }, 'Revert') as HTMLButtonElement;
  const message = h('p', { class: 'policy-message', dataset: { role: 'message' } });
  const review = h('section', { class: 'policy-review', hidden: true });
  const versionsBox = h('section', { class: 'policy-versions' });

  root.append(
    h('h1', {}, 'Policy'), info,
    h('div', { class: 'policy-editor' }, gutter, editor),
    h('div', { class: 'policy-bar' }, state, applyBtn, revertBtn),
    list, message, review, versionsBox,
  );

  const say = (text: string, kind: 'ok' | 'error' | '' = '') => {
    message.textContent = text;
    message.className = `policy-message${kind ? ` ${kind}` : ''}`;
  };

  // -- the gutter: one number per line, problem lines marked, scrolled with the text; rebuilt
  // only when the number of lines or the marks change (not at every key)
  let shown = '';
  const renderGutter = () => {
    let n = 1;
    for (let i = editor.value.indexOf('\n'); i >= 0; i = editor.value.indexOf('\n', i + 1)) n++;
    const marked = new Map<number, string>();
    for (const p of problems) if (p.line !== undefined && p.file === undefined) marked.set(p.line, [marked.get(p.line), p.message].filter(Boolean).join('\n'));
    const key = JSON.stringify([n, [...marked]]);
    if (key !== shown) {
      shown = key;
      const rows: HTMLElement[] = [];
      for (let i = 1; i <= n; i++) {
        const why = marked.get(i);
        rows.push(h('div', why ? { class: 'problem', title: why, dataset: { line: String(i) } } : { dataset: { line: String(i) } }, String(i)));
      }
      gutter.replaceChildren(...rows);
    }
    gutter.scrollTop = editor.scrollTop;
  };
  editor.addEventListener('scroll', () => { gutter.scrollTop = editor.scrollTop; });

  const canApply = () => !!running?.editable && problems.length === 0 && checkedText === editor.value && editor.value !== running.text;
  const updateButtons = () => {
    applyBtn.disabled = !canApply();
    revertBtn.disabled = !running || editor.value === running.text;
  };

  /** Puts the caret at a 1-based line and column and scrolls it into view. */
  const caretAt = (line: number, col: number) => {
    const lines = editor.value.split('\n');
    let offset = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i++) offset += lines[i]!.length + 1;
    offset += Math.max(0, Math.min(col - 1, (lines[line - 1] ?? '').length));
    editor.focus();
    editor.setSelectionRange(offset, offset);
    const lh = parseFloat(getComputedStyle(editor).lineHeight) || 16;
    editor.scrollTop = Math.max(0, (line - 1) * lh - editor.clientHeight / 2);
  };

  const showProblems = (ps: Problem[]) => {
    problems = ps;
    clear(list);
    for (const p of ps) {
      const where = p.line !== undefined ? `line ${p.line}, column ${p.col ?? 1}` : '';
      const text = `${p.file ? `${p.file}${where ? `, ${where}` : ''}` : where}${where || p.file ? ': ' : ''}${p.path ? `${p.path}: ` : ''}${p.message}`;
      const li = h('li', { dataset: p.line !== undefined ? { line: String(p.line), col: String(p.col ?? 1) } : {} }, text);
      // a problem in the script is at its line, not the editor's
      if (p.line !== undefined && p.file === undefined) {
        li.classList.add('at');
        li.tabIndex = 0;
        li.addEventListener('click', () => caretAt(p.line!, p.col ?? 1));
        li.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') caretAt(p.line!, p.col ?? 1); });
      }
      list.append(li);
    }
    renderGutter();
    updateButtons();
  };

  const check = async () => {
    const text = editor.value;
    const seq = ++checkSeq;
    state.textContent = 'checking…';
    try {
      const c = await api<Check>('/v1/policy/check', { method: 'POST', body: { text } });
      if (gone || seq !== checkSeq) return;
      checkedText = text;
      state.textContent = c.ok ? `ok: ${rules(c.rules ?? 0)}` : `${c.problems?.length ?? 0} problem(s)`;
      state.className = `policy-state ${c.ok ? 'ok' : 'error'}`;
      showProblems(c.ok ? [] : c.problems ?? []);
    } catch (e) {
      if (gone || seq !== checkSeq) return;
      checkedText = null;
      state.textContent = 'not checked';
      state.className = 'policy-state error';
      say(`checking failed: ${(e as Error).message}`, 'error');
      updateButtons();
    }
  };

  editor.addEventListener('input', () => {
    checkedText = null;
    updateButtons();
    renderGutter();
    hideReview();
    window.clearTimeout(timer);
    state.textContent = 'editing…';
    state.className = 'policy-state';
    timer = window.setTimeout(() => void check(), CHECK_DELAY_MS);
  });

  // -- the running policy
  const showInfo = (r: Running) => {
    clear(info);
    info.append(
      h('span', {}, `${r.source} (${r.origin})`), ' · ', h('span', {}, rules(r.rules)), ' · ',
      h('span', {}, `generation ${r.generation}`), ' · ', h('span', {}, `loaded ${r.loaded_at}`),
    );
    if (!r.editable) info.append(h('p', { class: 'note' }, 'The daemon runs the built-in policy, which has no file to write: start it with --policy FILE to edit the running policy here.'));
    if (r.file_differs) info.append(h('p', { class: 'note error' }, `The file on disk is not what runs: a change to it was refused${r.last_error ? ` (${r.last_error.message.split('\n')[0]})` : ''}.`));
  };

  const load = async (keepEdit = false) => {
    const r = await api<Running>('/v1/policy');
    if (gone) return;
    running = r;
    showInfo(r);
    editor.readOnly = !r.editable;
    if (!keepEdit) {
      editor.value = r.text;
      checkedText = r.text;
      problems = [];
      showProblems([]);
      state.textContent = `running: ${rules(r.rules)}`;
      state.className = 'policy-state ok';
    }
    renderGutter();
    updateButtons();
  };

  revertBtn.addEventListener('click', () => { if (running) { editor.value = running.text; editor.dispatchEvent(new Event('input')); } });

  // -- the diff, then confirm: for Apply and for Restore
  function hideReview(): void { review.hidden = true; clear(review); }

  const showDiff = (title: string, from: string, to: string, confirm: () => Promise<void>) => {
    clear(review);
    const rows = collapse(diffLines(splitLines(from), splitLines(to)));
    const table = h('table', { class: 'policy-diff' });
    for (const row of rows) table.append(diffRow(row));
    const confirmBtn = h('button', { type: 'button', class: 'primary', dataset: { action: 'confirm' } }, 'Confirm') as HTMLButtonElement;
    const cancelBtn = h('button', { type: 'button', dataset: { action: 'cancel' } }, 'Cancel');
    const changed = rows.filter((r) => r.kind === 'add' || r.kind === 'del').length;
    review.append(h('h2', {}, title), h('p', {}, changed ? `${changed} line(s) change` : 'No line changes.'), table, h('div', { class: 'policy-bar' }, confirmBtn, cancelBtn));
    review.hidden = false;
    cancelBtn.addEventListener('click', hideReview);
    confirmBtn.addEventListener('click', () => {
      confirmBtn.disabled = true;
      void confirm().finally(() => { confirmBtn.disabled = false; });
    });
    review.scrollIntoView({ block: 'nearest' });
  };

  const applied = async (a: Applied) => {
    hideReview();
    await load();
    await loadVersions();
    say(`${a.restored !== undefined ? `Version ${a.restored} restored` : 'Applied'}: ${rules(a.rules)}, generation ${a.generation}. The policy it replaced is kept as version ${a.version}.`, 'ok');
    root.dataset.applied = String(a.version);
  };

  const refused = (e: unknown) => {
    if (!(e instanceof ApiError)) { say(`failed: ${(e as Error).message}`, 'error'); return; }
    if (e.code === 'QOS_ERR_POLICY_STALE') {
      const reload = h('button', { type: 'button', dataset: { action: 'reload' } }, 'Load the running policy');
      reload.addEventListener('click', () => { hideReview(); void load().then(() => say('')); });
      say('Someone changed the policy since this page loaded it: load theirs (your edit is replaced) and redo the change. ', 'error');
      message.append(reload);
      return;
    }
    hideReview();
    if (e.problems?.length) showProblems(e.problems as Problem[]);
    say(`Refused, nothing changed: ${e.message}`, 'error');
  };

  applyBtn.addEventListener('click', () => {
    if (!running || !canApply()) return;
    const text = editor.value;
    const base = running.sha256;
    showDiff('Apply: running policy → your edit', running.text, text, async () => {
      try { await applied(await api<Applied>('/v1/policy/apply', { method: 'POST', body: { text, base_sha256: base } })); } catch (e) { refused(e); }
    });
  });

  // -- versions
  const viewer = h('section', { class: 'policy-viewer', hidden: true });
  const versions = new DataTable<Version>('versions', [
    { title: 'Version', value: (v) => v.version, class: 'num' },
    { title: 'Saved', value: (v) => v.saved_at },
    { title: 'Size', value: (v) => v.size, render: (v) => `${v.size} B`, class: 'num' },
    {
      title: '', value: () => '', render: (v) => h('span', { class: 'actions' },
        h('button', { type: 'button', dataset: { action: 'view' }, onclick: () => void showVersion(v.version) }, 'View'),
        h('button', { type: 'button', dataset: { action: 'restore' }, disabled: !running?.editable, onclick: () => void restoreVersion(v.version) }, 'Restore…')),
    },
  ], { key: (v) => String(v.version), sortBy: 0, desc: true, maxRows: 100, empty: 'None yet: each apply or restore keeps the policy it replaces.' });
  const versionsNote = h('p', { class: 'muted' });
  versionsBox.append(h('h2', {}, 'Earlier versions'), versionsNote, versions.el, viewer);
  const loadVersions = async () => {
    try {
      const vs = (await api<{ versions: Version[] }>('/v1/policy/versions')).versions;
      if (gone) return;
      versionsNote.textContent = '';
      versionsNote.className = 'muted';
      versions.set(vs);
    } catch (e) {
      versionsNote.textContent = `The versions cannot be read: ${(e as Error).message}`;
      versionsNote.className = 'notice error';
    }
  };

  const showVersion = async (n: number) => {
    try {
      const v = await api<Version & { text: string }>(`/v1/policy/versions/${n}`);
      clear(viewer);
      const close = h('button', { type: 'button', dataset: { action: 'close' } }, 'Close');
      close.addEventListener('click', () => { viewer.hidden = true; clear(viewer); });
      viewer.append(h('h3', {}, `Version ${v.version}, saved ${v.saved_at}`), h('pre', { class: 'policy-version-text', dataset: { role: 'version-text' } }, v.text), close);
      viewer.hidden = false;
    } catch (e) { say(`Version ${n} cannot be read: ${(e as Error).message}`, 'error'); }
  };

  const restoreVersion = async (n: number) => {
    if (!running) return;
    try {
      const v = await api<Version & { text: string }>(`/v1/policy/versions/${n}`);
      const base = running.sha256;
      showDiff(`Restore version ${n}: running policy → version ${n}`, running.text, v.text, async () => {
        try { await applied(await api<Applied>(`/v1/policy/versions/${n}/restore`, { method: 'POST', body: { base_sha256: base } })); } catch (e) { refused(e); }
      });
    } catch (e) { say(`Version ${n} cannot be read: ${(e as Error).message}`, 'error'); }
  };

  void (async () => {
    try {
      await load();
      await loadVersions();
    } catch (e) {
      if (!gone) say(`The running policy cannot be read: ${(e as Error).message}`, 'error');
    }
    if (!gone) root.dataset.ready = '1';
  })();

  return () => { gone = true; window.clearTimeout(timer); };
}

const rules = (n: number) => `${n} rule${n === 1 ? '' : 's'}`;

function diffRow(row: DiffRow): HTMLElement {
  if (row.kind === 'skip') return h('tr', { class: 'skip' }, h('td', { colspan: '3' }, `… ${row.lines} unchanged line(s)`));
  const sign = row.kind === 'add' ? '+' : row.kind === 'del' ? '−' : ' ';
  return h('tr', { class: row.kind },
    h('td', { class: 'num' }, row.kind === 'add' ? '' : String(row.old)),
    h('td', { class: 'num' }, row.kind === 'del' ? '' : String(row.new)),
    h('td', { class: 'line' }, `${sign} ${row.text}`));
}

export default { id: 'policy', title: 'Policy', mount } satisfies Page;
