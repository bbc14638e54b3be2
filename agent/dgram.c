/* qosd protocol agent: unconnected datagrams: one SendTo per new destination of a datagram
 * socket, its decision kept per destination (a few slots per socket), and the socket's marks
 * switched to each datagram's destination and back. */
#define _GNU_SOURCE
#include "dgram.h"

#include "agent.h"
#include "ask.h"
#include "marks.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int dest_key(const struct sockaddr *sa, socklen_t len, struct dest *k)
{
	memset(k, 0, sizeof *k);
	k->family = (uint8_t)sa->sa_family;
	return qos_inet_addr(sa, len, &k->port, k->addr);
}

static struct dest *dest_find(struct fdst *s, const struct dest *k)
{
	for (int i = 0; s->dc && i < DC_SLOTS; i++) {
		struct dest *e = &s->dc[i];
		if (e->used && e->family == k->family && e->port == k->port && !memcmp(e->addr, k->addr, 16))
			return e;
	}
	return NULL;
}

/* Marks fd for a datagram to sa; returns 0 to send, or an errno to refuse the send. */
int qos_dgram_before(int fd, struct fdst *s, const struct sockaddr *sa, socklen_t salen)
{
	struct dest k;
	if (!sa || !qos_is_inet(sa) || dest_key(sa, salen, &k) != 0)
		return 0;
	pthread_mutex_lock(stripe(fd));
	struct dest *e = dest_find(s, &k);
	pthread_mutex_unlock(stripe(fd));
	if (!e) {
		struct answer a;
		qos_in_agent++;
		int ok = qos_decide_addr("SendTo", fd, s, sa, salen, &a) == 0;
		qos_in_agent--;
		if (!ok)
			return 0;
		if (a.sock.deny)
			return a.sock.deny; /* fails this first call only, as for any call */
		const struct decision *d = &a.call;
		pthread_mutex_lock(stripe(fd));
		qos_take(s, &a.sock); /* the Socket's decision is the socket's, for every destination */
		if (!s->dc)
			s->dc = calloc(DC_SLOTS, sizeof *s->dc);
		if (s->dc) {
			e = dest_find(s, &k);
			if (!e) {
				e = &s->dc[s->dc_next];
				s->dc_next = (uint8_t)((s->dc_next + 1) % DC_SLOTS);
			}
			*e = k;
			e->used = 1;
			e->tos = (int16_t)d->tos;
			e->prio = (int16_t)d->prio;
			e->override = (uint8_t)d->override;
			e->deny = d->deny;
		}
		pthread_mutex_unlock(stripe(fd));
		if (!e)
			return d->deny;
	}
	pthread_mutex_lock(stripe(fd));
	int deny = e->deny;
	if (!deny) {
		/* Whether the destination's decision replaces the application's own mark is asked
		 * now, not when it was decided: the program may have set its mark since. */
		int tos = e->tos >= 0 && (!(s->flags & F_APP_TOS) || e->override) ? e->tos : s->base_tos;
		int prio = e->prio >= 0 && (!(s->flags & F_APP_PRIO) || e->override) ? e->prio : s->base_prio;
		qos_set_marks(fd, s, tos, prio);
	}
	pthread_mutex_unlock(stripe(fd));
	return deny;
}

/* After a datagram to an address on a connected socket: what send() sends next goes to the
 * connected peer, so the socket-level mark comes back (send and write are not interposed).
 * errno is left as the send left it. */
void qos_dgram_after(int fd, struct fdst *s)
{
	if (!(s->flags & F_CONNECTED))
		return;
	int saved = errno;
	pthread_mutex_lock(stripe(fd));
	qos_set_marks(fd, s, s->base_tos, s->base_prio);
	pthread_mutex_unlock(stripe(fd));
	errno = saved;
}

/* The datagram socket behind fd, if the agent marks its datagrams. */
struct fdst *qos_dgram_socket(int fd)
{
	struct fdst *s = qos_fd_tracked(fd);
	return s && s->type == SOCK_DGRAM ? s : NULL;
}

/* Before one datagram to sa on fd: *sp is the datagram socket the agent marks, or NULL.
 * Returns the errno of a DENY, or 0 with errno as it was. */
int qos_dgram_before_send(int fd, const struct sockaddr *sa, socklen_t salen, struct fdst **sp)
{
	int saved = errno;
	struct fdst *s = *sp = qos_dgram_socket(fd);
	int deny = s ? qos_dgram_before(fd, s, sa, salen) : 0;
	errno = saved;
	return deny;
}
