/* qosd protocol agent: what a decision does to a socket (marks.c): the DS field and
 * SO_PRIORITY, set with the real setsockopt, the application's own choice kept unless a
 * decision says OVERRIDE. Every function here wants the descriptor's stripe lock held, except
 * qos_apply_answer, which takes it. */
#ifndef QOS_MARKS_H
#define QOS_MARKS_H

#include "fdtable.h"
#include "msg.h"

/* Takes a decision into the socket-level marks without setting them; returns what it decided:
 * 1 the DS field, 2 the priority. */
int qos_take(struct fdst *s, const struct decision *d);
/* Sets the socket-level marks took says were decided, if they are not set already. */
void qos_put(int fd, struct fdst *s, int took);
/* Applies a socket-level decision. */
void qos_apply(int fd, struct fdst *s, const struct decision *d);
/* Applies an answer to fd: the Socket's decision, then the call's. Takes the stripe lock. */
void qos_apply_answer(int fd, struct fdst *s, const struct answer *a);
/* Sets what a datagram leaves with: tos and prio (-1: the unmarked default, if changed). */
void qos_set_marks(int fd, struct fdst *s, int tos, int prio);

/* The errno that fails the call (a DENY in the Socket reply fails its first call), or 0. */
static inline int qos_denied(const struct answer *a) { return a->sock.deny ? a->sock.deny : a->call.deny; }

#endif
