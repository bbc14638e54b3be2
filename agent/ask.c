/* qosd protocol agent: asking the daemon about a call and following its answer: the request
 * lines (msg.c) sent and the replies read (wire.c), or the answer taken from the decision
 * cache (cache.c) and the daemon only told; the deferred Socket, the socket-event ask, Accept's
 * new descriptor, the application's own marks, and the notifications at close. */
#define _GNU_SOURCE
#include "ask.h"

#include "agent.h"
#include "cache.h"
#include "marks.h"
#include "msg.h"
#include "ring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* The daemon has now heard of fd, by the call just sent: fresh if that was its Socket alone. */
static void heard(int fd, struct fdst *s, int socket_call)
{
	pthread_mutex_lock(stripe(fd));
	s->flags = (uint16_t)((s->flags & ~(F_PENDING | F_DECIDED | F_FRESH)) | F_REPORTED | (socket_call ? F_FRESH : 0));
	pthread_mutex_unlock(stripe(fd));
}

/* Sends the request in buf and reads the replies: with nreq 2, the deferred Socket's first,
 * then the call's. Returns 0 if the daemon answered. */
static int finish(const char *buf, size_t len, int nreq, int fd, struct fdst *s, struct answer *out)
{
	*out = NO_ANSWER;
	if (!len)
		return -1;
	char replies[2][QOS_MAX_REPLY];
	if (qos_ask(buf, len, nreq, replies) != 0)
		return -1;
	heard(fd, s, 0);
	if (nreq == 2)
		qos_parse_reply(replies[0], &out->sock);
	qos_parse_reply(replies[nreq - 1], &out->call);
	/* a daemon that answers CACHE is up: its generation file may be a new one (wire.c) */
	qos_wire_saw_generation(out->sock.cache_gen);
	qos_wire_saw_generation(out->call.cache_gen);
	/* the answer is reusable only if every reply in it is, under one generation */
	out->cache_gen = nreq == 1 || out->sock.cache_gen == out->call.cache_gen ? out->call.cache_gen : 0;
	return 0;
}

/* ---- notifications: records in the connection's ring (ring.h), or lines ---- */

static void note_gen(struct qos_note *n, unsigned long long gen)
{
	n->gen_lo = (uint32_t)gen;
	n->gen_hi = (uint32_t)(gen >> 32);
}

/* The record of s's Socket decided from the cache (generation gen). */
static struct qos_note socket_note(int fd, const struct fdst *s, unsigned long long gen)
{
	struct qos_note n = {.kind = QOS_NOTE_SOCKET, .family = s->family, .type = s->type, .fd = fd, .arg = s->proto};
	note_gen(&n, gen);
	return n;
}

/* Writes k records in order: 0 written (the first at least); 1 none, the ring is full; -1
 * none, there is no ring: the caller sends the lines instead. */
static int notes(const struct qos_note *n, int k)
{
	int r = qos_wire_note(&n[0]);
	for (int i = 1; i < k && r == 0; i++)
		if (qos_wire_note(&n[i]) < 0)
			break; /* the ring went meanwhile: what was written stands */
	return r;
}

/* Tells the daemon about a call (Connect or SendTo) decided from the cache under generation
 * gen, preceded by the socket's own Socket if it is still pending: as records, or, with no
 * ring, -1. */
static int note_cached(const char *type, int fd, const struct fdst *s, const struct sockaddr *sa, socklen_t salen,
		       unsigned long long gen)
{
	struct qos_note n[2];
	int k = 0;
	if (type[0] != 'C' && type[0] != 'S')
		return -1; /* only Connect and SendTo answers are cached (docs/protocol.md) */
	unsigned long long sock_gen = (s->flags & F_DECIDED) ? s->sock_gen : gen;
	int with_socket = (s->flags & F_PENDING) && sock_gen == gen;
	if ((s->flags & F_PENDING) && !with_socket)
		n[k++] = socket_note(fd, s, sock_gen);
	struct qos_note *c = &n[k++];
	/* with its pending Socket: that record's family, type and protocol, in this one */
	*c = with_socket ? socket_note(fd, s, gen) : (struct qos_note){.fd = fd};
	c->kind = type[0] == 'C' ? QOS_NOTE_CONNECT : QOS_NOTE_SENDTO;
	c->flags = with_socket ? QOS_NOTE_WITH_SOCKET : 0;
	c->afamily = (uint8_t)sa->sa_family;
	if (qos_inet_addr(sa, salen, &c->port, c->addr) != 0)
		return -1;
	c->port = ntohs(c->port);
	note_gen(c, gen);
	return notes(n, k);
}

/* Asks about a call on fd with an address (Connect, Bind, SendTo). With cached_gen, tells the
 * daemon about a call decided from the cache instead (no reply to wait for): in the ring, or
 * as a line. */
static int ask_addr(const char *type, int fd, struct fdst *s, const struct sockaddr *sa, socklen_t salen,
		    struct answer *a, unsigned long long cached_gen)
{
	char buf[QOS_MAX_MSG];
	int nreq;
	int told = cached_gen ? note_cached(type, fd, s, sa, salen, cached_gen) : -1;
	if (told < 0) {
		size_t len = qos_msg_addr(buf, sizeof buf, type, fd, s, sa, salen, &nreq, cached_gen);
		if (!cached_gen)
			return finish(buf, len, nreq, fd, s, a);
		if (!len)
			return -1;
		told = qos_tell(buf, len);
		if (told < 0)
			return -1; /* the daemon is gone: proceed as without it, like a failed ask */
	}
	/* told == 1: skipped (the daemon is behind): the decision stands, the daemon misses this
	 * flow, and the socket stays unreported (no Close will follow) */
	if (told == 0)
		heard(fd, s, 0);
	return 0;
}

/* Asks about a call on fd with integer arguments (Listen, SetSockOpt). */
int qos_ask_ints(const char *type, int fd, struct fdst *s, int n, const int *v, struct answer *a)
{
	char buf[QOS_MAX_MSG];
	int nreq;
	size_t len = qos_msg_ints(buf, sizeof buf, type, fd, s, n, v, &nreq);
	return finish(buf, len, nreq, fd, s, a);
}

/* ---- deciding: from the decision cache (cache.h), or by asking ---- */

/* The call's outcome: from the cache if valid (even while asking is paused: using it does
 * not wait), else asked (and cached when allowed). -1: proceed as without the agent. Only a
 * first call on a socket is cached: its Socket still pending, or the only message before. */
int qos_decide_addr(const char *type, int fd, struct fdst *s, const struct sockaddr *sa,
		       socklen_t salen, struct answer *a)
{
	struct ckey k;
	struct centry *e = NULL, *hit;
	unsigned long long gen;
	if (qos_cfg.cache && (s->flags & (F_PENDING | F_FRESH)) && qos_cache_key(&k, type[0], s, sa, salen) == 0 &&
	    (hit = qos_cache_find(&k, &e, &gen))) {
		*a = hit->a;
		return ask_addr(type, fd, s, sa, salen, a, gen);
	}
	if (!qos_wire_maybe_up())
		return -1;
	int r = ask_addr(type, fd, s, sa, salen, a, 0);
	if (r == 0 && e && a->cache_gen)
		qos_cache_store(e, &k, a);
	return r;
}

/* The daemon decides at the socket event (docs/protocol.md): asks about a new socket at once,
 * so that its marks are on it whatever calls follow, those the agent never sees (io_uring,
 * raw system calls) included. From the cache nothing is sent: the Socket goes out as Cached
 * with the socket's next message, or its Close. Returns 0, or the errno of a DENY. */
int qos_socket_now(int fd, struct fdst *s)
{
	struct ckey k;
	struct centry *e = NULL, *hit;
	unsigned long long gen;
	struct answer a;
	qos_cache_key(&k, 'O', s, NULL, 0);
	if (qos_cfg.cache && (hit = qos_cache_find(&k, &e, &gen))) {
		a = hit->a;
		pthread_mutex_lock(stripe(fd));
		s->flags |= F_DECIDED;
		s->sock_gen = gen;
		pthread_mutex_unlock(stripe(fd));
	} else {
		if (!qos_wire_maybe_up())
			return 0;
		char buf[QOS_MAX_MSG];
		size_t len = qos_msg_socket(buf, sizeof buf, fd, s);
		if (finish(buf, len, 1, fd, s, &a) != 0)
			return 0;
		heard(fd, s, 1);
		if (e && a.cache_gen)
			qos_cache_store(e, &k, &a);
	}
	if (a.call.deny)
		return a.call.deny;
	qos_apply_answer(fd, s, &a);
	return 0;
}

/* Tells the daemon "Type pid uid cmd fd ints...", after the Cached Socket line of untold (a
 * socket decided at socket() from the cache that the daemon has not heard of yet), if any. */
void qos_tell_fd(const char *type, int fd, int nints, const int *ints, const struct fdst *untold)
{
	struct qos_note n[2];
	int k = 0;
	if (untold)
		n[k++] = socket_note(fd, untold, untold->sock_gen);
	n[k++] = (struct qos_note){.kind = type[0] == 'C' ? QOS_NOTE_CLOSE : QOS_NOTE_SHUTDOWN, .fd = fd,
				   .arg = nints > 0 ? ints[0] : 0};
	if (notes(n, k) >= 0)
		return;
	char buf[QOS_MAX_MSG];
	size_t len = qos_msg_notice(buf, sizeof buf, type, fd, nints, ints, untold);
	if (len)
		qos_tell(buf, len);
}

/* Forget fd (closed, or replaced by dup2); tells the daemon if it knew the socket, or if it
 * was decided at socket() from the cache and never told. */
void qos_forget(int fd, int tell)
{
	struct fdst *s = fdst_get(fd, 0);
	if (!s || !s->flags)
		return;
	pthread_mutex_lock(stripe(fd));
	struct fdst was = *s; /* its flags and kind: the destinations go with fdst_reset */
	qos_fd_reset(s);
	pthread_mutex_unlock(stripe(fd));
	int untold = (was.flags & (F_PENDING | F_DECIDED)) == (F_PENDING | F_DECIDED);
	if (tell && (untold || (was.flags & F_REPORTED)))
		qos_tell_fd("Close", fd, 0, NULL, untold ? &was : NULL);
}

/* Follows the daemon's answer about a call on fd: -1 with errno set if it denies the call,
 * else 0 with the answer applied. */
int qos_obey(int fd, struct fdst *s, const struct answer *a)
{
	if (qos_denied(a)) {
		errno = qos_denied(a);
		return -1;
	}
	qos_apply_answer(fd, s, a);
	return 0;
}

/* Shared first half of connect/bind: ask first. Returns -1 with errno set if a DENY fails the
 * call before it reaches the kernel, else 0 with errno as it was: the real call goes next. */
int qos_ask_first(const char *type, int fd, const struct sockaddr *sa, socklen_t salen)
{
	int saved = errno;
	struct fdst *s = qos_is_inet(sa) ? qos_fd_tracked(fd) : NULL;
	if (s) {
		struct answer a;
		qos_in_agent++;
		int ok = qos_decide_addr(type, fd, s, sa, salen, &a) == 0;
		qos_in_agent--;
		if (ok && qos_obey(fd, s, &a) != 0)
			return -1;
	}
	errno = saved;
	return 0;
}

int qos_accepted(int lfd, int nfd, struct sockaddr *sa, socklen_t *salen)
{
	struct fdst *ls = qos_fd_tracked(lfd);
	struct fdst *ns = ls ? fdst_get(nfd, 1) : NULL;
	if (!ns)
		return nfd;
	pthread_mutex_lock(stripe(nfd));
	qos_fd_track(ns, ls->family, ls->type, ls->proto, 0);
	pthread_mutex_unlock(stripe(nfd));
	if (!qos_wire_maybe_up())
		return nfd;
	struct sockaddr_storage peer;
	socklen_t pl = sizeof peer;
	const struct sockaddr *pa = (const struct sockaddr *)&peer;
	if (sa && salen && *salen >= sizeof(struct sockaddr_in) && qos_is_inet(sa)) {
		pa = sa;
		pl = *salen;
	} else if (getpeername(nfd, (struct sockaddr *)&peer, &pl) != 0) {
		pl = 0;
	}
	/* Accept pid uid cmd fd address newfd: the listening socket's pending Socket goes first. */
	char buf[QOS_MAX_MSG];
	int nreq;
	qos_in_agent++;
	size_t len = qos_msg_accept(buf, sizeof buf, lfd, ls, pl ? pa : NULL, pl, nfd, &nreq);
	struct answer a;
	int ok = finish(buf, len, nreq, lfd, ls, &a) == 0;
	qos_in_agent--;
	if (!ok)
		return nfd;
	/* the listening socket's deferred Socket decision is its own: it applies to lfd (and so
	 * to the connections accepted after this one, which inherit lfd's marks) */
	pthread_mutex_lock(stripe(lfd));
	qos_apply(lfd, ls, &a.sock);
	pthread_mutex_unlock(stripe(lfd));
	int deny = qos_denied(&a);
	pthread_mutex_lock(stripe(nfd));
	ns->flags |= F_REPORTED;
	if (!deny)
		qos_put(nfd, ns, qos_take(ns, &a.sock) | qos_take(ns, &a.call));
	pthread_mutex_unlock(stripe(nfd));
	if (deny) {
		qos_forget(nfd, 0);
		QOS_REAL(close, nfd);
		errno = deny;
		return -1;
	}
	return nfd;
}

/* The application set its own mark (the real setsockopt succeeded): remember it, so that no
 * later decision replaces it unless it says OVERRIDE, and ask the policy about it. */
void qos_app_mark(int fd, int level, int opt, int v)
{
	int is_tos = level != SOL_SOCKET;
	struct fdst *s = qos_fd_tracked(fd);
	if (!s)
		return;
	pthread_mutex_lock(stripe(fd));
	if (is_tos) {
		s->flags |= F_APP_TOS;
		s->base_tos = s->cur_tos = (int16_t)(v & 0xff);
	} else {
		s->flags |= F_APP_PRIO;
		s->base_prio = s->cur_prio = (int16_t)v;
	}
	pthread_mutex_unlock(stripe(fd));
	if (!qos_wire_maybe_up())
		return;
	/* SetSockOpt pid uid cmd fd level optname value: the reply is the policy's verdict on
	 * the application's own choice, applied as given (empty by default: the choice stands). */
	int args[3] = {level, opt, v};
	struct answer a;
	qos_in_agent++;
	int ok = qos_ask_ints("SetSockOpt", fd, s, 3, args, &a) == 0;
	qos_in_agent--;
	if (ok && !qos_denied(&a)) {
		/* A deferred Socket's decision is about the socket, like any other: it does not
		 * replace the choice just made unless it says OVERRIDE. The SetSockOpt decision is
		 * the policy's verdict on that choice itself: it replaces it as given. */
		a.call.override = 1;
		qos_apply_answer(fd, s, &a);
	}
}
