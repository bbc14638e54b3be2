/* Reservation status as GQoS's FD_QOS notifications (seed 002, "Making Your App RSVP-savvy"):
 * every change of a session's reservation becomes one event with a status code, the session,
 * the flow and the program it is for, and the reason. Like FD_QOS, the first Path and the
 * first Resv are reported, and a refresh is not, unless what it carries changed.
 *
 *   code               where           when
 *   RECEIVERS          sender          a Resv arrived (the first, or one with a new FLOWSPEC)
 *   NO_RECEIVERS       sender          the reservation was torn down or timed out
 *   SENDERS            receiver        a Path arrived (the first, or one with a new TSpec)
 *   NO_SENDERS         receiver        the path state was torn down or timed out
 *   REQUEST_CONFIRMED  receiver        a ResvConf arrived
 *   ADMISSION_FAILURE  either          ResvErr/PathErr code 1, or this host's own admission
 *   POLICY_FAILURE     either          code 2 (RFC 2750: policy control failure)
 *   BAD_STYLE          receiver        code 5 (conflicting style) or 6 (unknown style)
 *   BAD_OBJECT         either          codes 3, 4 (no path, no sender for the reservation),
 *                                      7, 8 (ports), 13, 14 (unknown object class, c-type)
 *   TRAFFIC_CTRL_ERROR either          code 21, or this host's traffic control refused
 *   GENERIC_ERROR      either          any other error code, or a local failure
 *
 * (winsock2.h's WSA_QOS_* codes without the prefix.) */

import type { FilterSpec, SenderTemplate } from './filter-spec.js';
import type { Session } from './session.js';

export const STATUS_CODES = [
  'RECEIVERS', 'SENDERS', 'NO_RECEIVERS', 'NO_SENDERS', 'REQUEST_CONFIRMED', 'ADMISSION_FAILURE',
  'POLICY_FAILURE', 'BAD_STYLE', 'BAD_OBJECT', 'TRAFFIC_CTRL_ERROR', 'GENERIC_ERROR',
] as const;
export type StatusCode = (typeof STATUS_CODES)[number];

/** The program a session is for, when the daemon made it for a socket (policy `reserve`). */
export interface StatusProgram { pid: number; fd: number; exe: string; uid: number; user: string; rule: string | null }

/** One FD_QOS-style notification. */
export interface StatusEvent {
  seq: number;
  at: string;
  code: StatusCode;
  /** the manager's session number, when the event is about one of this host's sessions */
  id: number | null;
  role: 'sender' | 'receiver' | null;
  session: Session;
  /** the sender it concerns, when one is known */
  sender: SenderTemplate | FilterSpec | null;
  program: StatusProgram | null;
  /** the RSVP error code and value (ERROR_SPEC), for errors that came in a message */
  error: { code: number; value: number; node: string } | null;
  reason: string;
}

/** The status code an RSVP error code (RFC 2205 appendix B, RFC 2750) reports as. */
export function codeOfError(code: number): StatusCode {
  switch (code) {
    case 1: return 'ADMISSION_FAILURE';
    case 2: return 'POLICY_FAILURE';
    case 5: case 6: return 'BAD_STYLE';
    case 3: case 4: case 7: case 8: case 13: case 14: return 'BAD_OBJECT';
    case 21: return 'TRAFFIC_CTRL_ERROR';
    default: return 'GENERIC_ERROR';
  }
}

const ERROR_TEXT: Record<number, string> = {
  1: 'admission control failure', 2: 'policy control failure', 3: 'no path information for this reservation',
  4: 'no sender information for this reservation', 5: 'conflicting reservation style', 6: 'unknown reservation style',
  7: 'conflicting destination ports', 8: 'conflicting sender ports', 12: 'service preempted', 13: 'unknown object class',
  14: 'unknown object c-type', 20: 'API error', 21: 'traffic control error', 22: 'traffic control system error',
  23: 'RSVP system error', 24: 'routing problem',
};

/** An RSVP error in words: "admission control failure (code 1, value 2) at 10.0.1.1". */
export function errorText(e: { code: number; value: number; node: string }): string {
  return `${ERROR_TEXT[e.code] ?? 'error'} (code ${e.code}, value ${e.value}) at ${e.node}`;
}
