/* The helper library inside the JavaScript sandbox, evaluated before the policy module:
 * the global `qos` object (docs/scripts.md). Plain JavaScript text, run by QuickJS, so it
 * can use nothing but the language itself (the glob compiler is the rules' own, whose
 * compiled text is self-contained). `__qos_call` is the one entry the host uses. */

import { compilePattern } from '../policy/glob.js';

export const PRELUDE = String.raw`
(() => {
  "use strict";
  // The paper's SprintLib.tcl arrays, with Linux's numbers (as the agent sends them).
  const AF = Object.freeze({ UNSPEC: 0, UNIX: 1, INET: 2, INET6: 10 });
  const SockType = Object.freeze({ STREAM: 1, DGRAM: 2, RAW: 3, SEQPACKET: 5 });
  const DSCP = Object.freeze({
    CS0: 0, DF: 0, BE: 0, LE: 1, CS1: 8, AF11: 10, AF12: 12, AF13: 14, CS2: 16, AF21: 18, AF22: 20,
    AF23: 22, CS3: 24, AF31: 26, AF32: 28, AF33: 30, CS4: 32, AF41: 34, AF42: 36, AF43: 38,
    CS5: 40, VA: 44, EF: 46, CS6: 48, CS7: 56,
  });
  const CLASS = [];
  for (const k of Object.keys(DSCP)) if (k !== 'DF' && k !== 'BE' && CLASS[DSCP[k]] === undefined) CLASS[DSCP[k]] = k;

  function v4(s) {
    const p = String(s).split('.');
    if (p.length !== 4) return null;
    let v = 0;
    for (const x of p) {
      if (!/^(0|[1-9][0-9]{0,2})$/.test(x) || +x > 255) return null;
      v = v * 256 + +x;
    }
    return v;
  }
  // An address as 8 16-bit groups (IPv4 mapped into ::ffff:0:0/96), or null.
  function groups(s) {
    s = String(s);
    const n = v4(s);
    if (n !== null) return [0, 0, 0, 0, 0, 0xffff, Math.floor(n / 65536), n % 65536];
    const pct = s.indexOf('%');
    if (pct >= 0) s = s.slice(0, pct);
    const halves = s.split('::');
    if (halves.length > 2) return null;
    const part = (h) => {
      if (h === '') return [];
      const out = [];
      const items = h.split(':');
      for (let i = 0; i < items.length; i++) {
        const g = items[i];
        if (i === items.length - 1 && g.includes('.')) {
          const w = v4(g);
          if (w === null) return null;
          out.push(Math.floor(w / 65536), w % 65536);
        } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) out.push(parseInt(g, 16));
        else return null;
      }
      return out;
    };
    const head = part(halves[0]), tail = halves.length === 2 ? part(halves[1]) : [];
    if (!head || !tail) return null;
    if (halves.length === 1) return head.length === 8 ? head : null;
    const fill = 8 - head.length - tail.length;
    return fill >= 1 ? [...head, ...new Array(fill).fill(0), ...tail] : null;
  }
  /** Whether address addr lies in prefix (a.b.c.d/n, v6/n or a bare address). */
  function cidr(prefix, addr) {
    const [net, len] = String(prefix).split('/');
    const a = groups(addr), n = groups(net);
    if (!a || !n) return false;
    let bits = len === undefined ? 128 : Number(len) + (v4(net) !== null ? 96 : 0);
    if (!Number.isInteger(bits) || bits < 0 || bits > 128) return false;
    for (let i = 0; i < 8 && bits > 0; i++, bits -= 16) {
      const mask = bits >= 16 ? 0xffff : (0xffff << (16 - bits)) & 0xffff;
      if ((a[i] & mask) !== (n[i] & mask)) return false;
    }
    return true;
  }
  /** Glob (or /regex/) match as in policy rules: the rules' own compiler, policy/glob.ts. */
  const compilePattern = ${compilePattern.toString()};
  const globs = new Map();
  function glob(pattern, s) {
    let re = globs.get(pattern);
    if (!re) {
      re = compilePattern(String(pattern));
      if (globs.size > 1000) globs.clear();
      globs.set(pattern, re);
    }
    return re.test(String(s));
  }

  // Machine state is fetched from the daemon, as JSON text, only when a handler first asks
  // for it during a call, and in two sizes: the caller's counts by class and the load (a few
  // dozen characters whatever the user holds), or every flow of the caller (can be many).
  const fetchState = globalThis.__qos_state;
  delete globalThis.__qos_state;
  let summary = null, flows = null;
  const counts = () => (summary ??= JSON.parse(fetchState(false)));
  const className = (v) => CLASS[v] ?? String(v);
  globalThis.qos = Object.freeze({
    AF, SockType, DSCP, className, cidr, glob,
    /** How many sockets the calling user has now: all, or those of one class (a name such as
     * "EF", "none" or "deny", or a DSCP number). */
    count: (cls) => {
      const s = counts();
      if (cls === undefined) return s.count;
      return s.classes[typeof cls === 'number' ? className(cls) : String(cls)] ?? 0;
    },
    /** The calling user's sockets by class now, e.g. { EF: 2, AF41: 1, none: 3 }. */
    classes: () => Object.assign({}, counts().classes),
    /** The calling user's sockets now, each in full, as the daemon's flow table has them; the
     * cost grows with how many the user has. */
    flows: () => (flows ??= JSON.parse(fetchState(true)).flows),
    /** 1, 5 and 15 minute load averages. */
    loadavg: () => counts().loadavg,
  });
  // Callers (who is calling: pid, uid, user, exe, ...) are sent once per process and kept
  // here by serial number, so that each call parses only its own few facts.
  const callers = new Map();
  const ep = (a) => (a ? { address: a[0], port: a[1] } : null);
  // One call's record, as ScriptPool writes it: [serial, caller, facts]. serial 0: no caller
  // kept (caller inline or null); > 0: caller is stored under it, or null to use the stored
  // one; < 0: forget every stored caller first. facts: an array in the order below, or an
  // event object used as it is.
  function eventOf(rec) {
    let serial = rec[0], c = rec[1];
    if (serial < 0) { callers.clear(); serial = -serial; }
    if (serial > 0) { if (c) callers.set(serial, c); else c = callers.get(serial) ?? null; }
    const f = rec[2];
    if (!Array.isArray(f)) {
      if (c) for (const k of Object.keys(c)) f[k] = c[k];
      return f;
    }
    const e = {
      event: f[0], pid: c && c.pid, uid: c && c.uid, gid: c && c.gid, user: c && c.user, group: c && c.group,
      exe: c && c.exe, cmdline: c && c.cmdline, unit: c && c.unit,
      fd: f[1], family: f[2], type: f[3], proto: f[4], protocol: f[5], local: ep(f[6]), remote: ep(f[7]),
      rule: f[8], class: f[9], dscp: f[10],
    };
    if (f.length > 11) e.how = f[11];
    return e;
  }
  // The host's entry: one call of an exported handler with a record (JSON text, above);
  // returns the decision as JSON text, '' for none.
  Object.defineProperty(globalThis, '__qos_call', {
    value: (fn, record) => {
      summary = flows = null;
      const r = fn(eventOf(JSON.parse(record)));
      return r === undefined || r === null ? '' : String(JSON.stringify(r));
    },
  });
})();
`;