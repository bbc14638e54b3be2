/* qosd protocol agent: the descriptor table (fdtable.h): chunk allocation, tracking a socket,
 * learning one the agent did not see created, and the stripe locks across fork. */
#define _GNU_SOURCE
#include "fdtable.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct fdst *_Atomic qos_fd_chunks[QOS_FD_NCHUNKS];
pthread_mutex_t qos_fd_stripes[QOS_FD_NSTRIPES];

/* Allocates chunk ci on first use; another thread may win the race, and then its chunk is it. */
struct fdst *qos_fd_chunk_new(unsigned ci)
{
	struct fdst *n = calloc(QOS_FD_CHUNK, sizeof *n);
	if (!n)
		return NULL;
	struct fdst *expected = NULL;
	if (!__atomic_compare_exchange_n(&qos_fd_chunks[ci], &expected, n, 0, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST)) {
		free(n);
		return expected;
	}
	return n;
}

void qos_fd_reset(struct fdst *s)
{
	free(s->dc);
	memset(s, 0, sizeof *s);
}

void qos_fd_track(struct fdst *s, int family, int type, int proto, uint8_t flags)
{
	qos_fd_reset(s);
	s->flags = F_TRACKED | flags;
	s->family = (uint8_t)family;
	s->type = (uint8_t)type;
	s->proto = (int16_t)proto;
	s->base_tos = s->cur_tos = s->base_prio = s->cur_prio = -1;
}

/* The state of fd if it is an inet socket; learns sockets we did not see created
 * (inherited across exec, dup'ed) from the kernel once. */
struct fdst *qos_fd_tracked(int fd)
{
	struct fdst *s = fdst_get(fd, 1);
	if (!s || (s->flags & F_IGNORED))
		return NULL;
	if (s->flags & F_TRACKED)
		return s;
	int dom, type, proto;
	socklen_t l = sizeof dom;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l) != 0)
		return NULL; /* not a socket, or not open: do not remember */
	l = sizeof type;
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l);
	l = sizeof proto;
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l) != 0)
		proto = 0;
	pthread_mutex_lock(stripe(fd));
	if (dom == AF_INET || dom == AF_INET6)
		qos_fd_track(s, dom, type, proto, F_PENDING);
	else
		s->flags = F_IGNORED;
	pthread_mutex_unlock(stripe(fd));
	return (s->flags & F_TRACKED) ? s : NULL;
}

void qos_fd_each(unsigned first, unsigned last, void (*fn)(int fd))
{
	for (unsigned ci = first / QOS_FD_CHUNK; ci < QOS_FD_NCHUNKS && ci <= last / QOS_FD_CHUNK; ci++) {
		if (!qos_fd_chunks[ci])
			continue;
		for (unsigned i = 0; i < QOS_FD_CHUNK; i++) {
			unsigned fd = ci * QOS_FD_CHUNK + i;
			if (fd >= first && fd <= last && qos_fd_chunks[ci][i].flags)
				fn((int)fd);
		}
	}
}

void qos_fd_init(void)
{
	for (int i = 0; i < QOS_FD_NSTRIPES; i++)
		pthread_mutex_init(&qos_fd_stripes[i], NULL);
}

/* fork: every stripe is held across it, so the child's table is consistent. */
void qos_fd_atfork_prepare(void)
{
	for (int i = 0; i < QOS_FD_NSTRIPES; i++)
		pthread_mutex_lock(&qos_fd_stripes[i]);
}

void qos_fd_atfork_parent(void)
{
	for (int i = QOS_FD_NSTRIPES - 1; i >= 0; i--)
		pthread_mutex_unlock(&qos_fd_stripes[i]);
}

void qos_fd_atfork_child(void) { qos_fd_init(); }
