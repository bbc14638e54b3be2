/* A page's periodic read: read() now and every `everyMs` after the last one ended, one read at
 * a time (now() during a read asks for another right after it), errors to onError, nothing
 * after stop(). The Traffic control and RSVP pages read their routes so. */

export interface Poll {
  /** read at once (or right after the read under way) */
  now(): void;
  stop(): void;
}

export function poll(read: () => Promise<void>, everyMs: number, onError: (e: unknown) => void): Poll {
  let alive = true;
  let reading = false;
  let again = false;
  let timer: number | undefined;
  const tick = (): void => {
    window.clearTimeout(timer);
    if (reading) { again = true; return; }
    reading = true;
    read().catch((e: unknown) => { if (alive) onError(e); }).finally(() => {
      reading = false;
      if (!alive) return;
      if (again) { again = false; tick(); } else timer = window.setTimeout(tick, everyMs);
    });
  };
  tick();
  return { now: tick, stop: () => { alive = false; window.clearTimeout(timer); } };
}
