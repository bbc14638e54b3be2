// At most two EF flows per user at a time; later ones get AF41.
//
// A lookup table cannot say this: the answer depends on what the user already has open,
// which only the daemon's flow table knows (qos.flows(): the calling user's sockets now,
// with the class each was given). When one of the EF flows closes, the next connect gets
// EF again.

const LIMIT = 2;

export function Connect(ev) {
  if (!qos.glob('*media*', ev.cmdline)) return undefined; // not a media program: the rules decide
  const ef = qos.flows().filter((f) => f.class === 'EF').length;
  return ef < LIMIT ? { dscp: 'EF' } : { dscp: 'AF41' };
}
