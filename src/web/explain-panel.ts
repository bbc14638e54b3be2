/* Why a flow has its mark (POST /v1/explain; docs/dashboard.md, "Flows"): the panel the Flows
 * page opens on a click, with what `qos explain --pid P --fd F` says, in the same words
 * (explain/text.ts): the path that decided and why, the rule with its line, each rule before it
 * with the condition that failed, the application's own TOS and whether it was honoured, the
 * kernel's mark on the socket now, the kernel rule its connection's mark names and the
 * traffic-control flow its packets fall in. */

import { api } from './api.js';
import { errorText, h, notice } from './dom.js';
import { decisionText, kernelMarkText, kernelRuleText, limitText, ownTosText, tcText } from '../explain/text.js';
import type { ExplainReport } from '../explain/types.js';
import './explain-panel.css';

/** Which socket: a process and its descriptor (the agent's flows), or its socket to a remote
 * end (the eBPF programs' flows, known by a cookie). */
export interface ExplainTarget { pid: number; fd?: number; proto?: string; remote?: string }

export interface ExplainPanel {
  readonly el: HTMLElement;
  /** asks the daemon and shows the answer; a later show replaces an earlier one still loading */
  show(t: ExplainTarget, title: string): Promise<void>;
  close(): void;
}

const field = (name: string, label: string, ...value: (Node | string)[]) => [h('dt', null, label), h('dd', { dataset: { field: name } }, ...value)];

function render(r: ExplainReport): Node[] {
  const s = r.socket;
  return [h('dl', { class: 'explain-fields' },
    field('path', 'Enforced by', h('strong', null, r.path.path), ` (${r.path.why})`),
    field('rule', 'Decided by', r.decided_by === null ? 'no rule matches and there is no default: the socket is left alone' : `${r.decided_by === 'default' ? 'the default' : `rule ${r.decided_by}`}${r.line ? ` (${r.policy}:${r.line})` : ''}: ${decisionText(r.decision)}`),
    field('own-tos', 'Own TOS', s ? ownTosText(s.own_tos, s.tos) : '-'),
    field('kernel-mark', 'Kernel mark now', s ? `${kernelMarkText(s)} (ss, fd ${s.fd} ${s.local} -> ${s.remote})` : r.sockets_error ? `cannot read the sockets: ${r.sockets_error}` : 'the socket is gone'),
    field('kernel-rule', 'nftables', s ? kernelRuleText(s.kernel_rule) : '-'),
    field('tc', 'Traffic control', s ? tcText(s.tc) : '-'),
    field('limit', 'Limit', s ? limitText(s.limit) : '-'),
  ),
  h('h3', null, 'Rules'),
  h('ol', { class: 'explain-rules', dataset: { field: 'rules' } }, r.rules.map((x) => h('li', { dataset: { result: x.result } },
    h('code', null, x.name), x.line ? ` (line ${x.line})` : '', ': ', x.result === 'failed' ? `did not match because ${x.failed}` : x.result))),
  ];
}

export function explainPanel(): ExplainPanel {
  const title = h('h2', null, 'Why this mark');
  const body = h('div');
  const el = h('section', { class: 'panel explain', 'aria-live': 'polite', hidden: true, dataset: { explain: '' } },
    h('div', { class: 'explain-head' }, title, h('button', { type: 'button', 'aria-label': 'close', dataset: { action: 'close-explain' }, onclick: () => close() }, '×')),
    body);
  let asked = 0;
  const close = () => { asked++; el.hidden = true; delete el.dataset.state; };
  return {
    el, close,
    async show(t, what) {
      const n = ++asked;
      el.hidden = false;
      el.dataset.state = 'loading';
      title.textContent = `Why this mark: ${what}`;
      body.replaceChildren(h('p', { class: 'muted' }, 'Asking the daemon…'));
      try {
        const r = await api<ExplainReport>('/v1/explain', { body: t });
        if (n !== asked) return;
        body.replaceChildren(...render(r));
        el.dataset.state = 'ready';
      } catch (e) {
        if (n !== asked) return;
        body.replaceChildren(notice('error', errorText(e)));
        el.dataset.state = 'error';
      }
    },
  };
}
