// At most two EF flows per user at a time; later ones get AF41.
//
// A lookup table cannot say this: the answer depends on what the user already has open,
// which only the daemon's flow table knows. qos.count('EF') asks it how many of the calling
// user's sockets are EF now: the daemon keeps those counts as it decides, so the question
// costs the same for a user with three sockets as for one with sixty thousand (qos.flows(),
// every socket in full, would not). When one of the EF flows closes, the next connect gets
// EF again.

const LIMIT = 2;

export function Connect(ev) {
  if (!qos.glob('*media*', ev.cmdline)) return undefined; // not a media program: the rules decide
  return qos.count('EF') < LIMIT ? { dscp: 'EF' } : { dscp: 'AF41' };
}
