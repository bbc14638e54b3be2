/* qosd protocol agent: what a decision does to a socket: the DS field (IP_TOS, and IPV6_TCLASS
 * on an inet6 socket) and SO_PRIORITY, set with the real setsockopt only when they change, and
 * the application's own choice kept unless a decision says OVERRIDE. */
#define _GNU_SOURCE
#include "marks.h"

#include "agent.h"

#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

static void set_tos(int fd, int family, int tos)
{
	if (family == AF_INET6) {
		QOS_REAL(setsockopt, fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof tos);
		/* dual-stack socket talking to a v4-mapped peer: the IPv4 header needs it too */
		QOS_REAL(setsockopt, fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
	} else {
		QOS_REAL(setsockopt, fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
	}
}

/* Takes a decision into the socket-level marks (base) without setting them: the
 * application's own IP_TOS/IPV6_TCLASS or SO_PRIORITY stands unless the decision says
 * OVERRIDE. Returns what it decided: 1 the DS field, 2 the priority. Caller holds the lock. */
int qos_take(struct fdst *s, const struct decision *d)
{
	int took = 0;
	if (d->tos >= 0 && (!(s->flags & F_APP_TOS) || d->override)) {
		s->base_tos = (int16_t)d->tos;
		took |= 1;
	}
	if (d->prio >= 0 && (!(s->flags & F_APP_PRIO) || d->override)) {
		s->base_prio = (int16_t)d->prio;
		took |= 2;
	}
	return took;
}

/* Sets the socket-level marks that took says were decided, if they are not set already:
 * decisions taken together (a Socket's and its first call's) cost one setsockopt each. */
void qos_put(int fd, struct fdst *s, int took)
{
	if ((took & 1) && s->cur_tos != s->base_tos) {
		set_tos(fd, s->family, s->base_tos);
		s->cur_tos = s->base_tos;
	}
	if ((took & 2) && s->cur_prio != s->base_prio) {
		int prio = s->base_prio;
		QOS_REAL(setsockopt, fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof prio);
		s->cur_prio = s->base_prio;
	}
}

/* Applies a socket-level decision; caller holds the stripe lock. */
void qos_apply(int fd, struct fdst *s, const struct decision *d) { qos_put(fd, s, qos_take(s, d)); }

/* Applies an answer to fd: the Socket's decision, then the call's. Takes the stripe lock. */
void qos_apply_answer(int fd, struct fdst *s, const struct answer *a)
{
	pthread_mutex_lock(stripe(fd));
	qos_put(fd, s, qos_take(s, &a->sock) | qos_take(s, &a->call));
	pthread_mutex_unlock(stripe(fd));
}

/* Sets what a datagram leaves with: tos and prio (-1: the unmarked default, if the agent
 * changed it). Caller holds the stripe lock. */
void qos_set_marks(int fd, struct fdst *s, int tos, int prio)
{
	if (tos < 0 && s->cur_tos >= 0)
		tos = 0; /* back to the unmarked default */
	if (tos >= 0 && tos != s->cur_tos) {
		set_tos(fd, s->family, tos);
		s->cur_tos = (int16_t)tos;
	}
	if (prio < 0 && s->cur_prio >= 0)
		prio = 0;
	if (prio >= 0 && prio != s->cur_prio) {
		QOS_REAL(setsockopt, fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof prio);
		s->cur_prio = (int16_t)prio;
	}
}
