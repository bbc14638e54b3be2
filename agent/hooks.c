/* qosd protocol agent (libqosagent.so): interposes the socket control calls of an unmodified
 * program (LD_PRELOAD), asks the policy daemon how to treat each socket and applies the
 * answer with setsockopt before the first packet leaves (paper sections 4.1, 4.1.3).
 * Data-path calls are never touched; on any failure the real call proceeds unchanged. */
#define _GNU_SOURCE
#include "agent.h"
#include "cache.h"
#include "fdtable.h"
#include "msg.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct qos_cfg qos_cfg;
struct qos_real qos_real;

static __thread int in_agent; /* re-entrancy guard */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* ---- configuration and symbol resolution ---- */

static void resolve(void)
{
#define R(name) qos_real.name = dlsym(RTLD_NEXT, #name)
	R(socket); R(connect); R(bind); R(listen); R(accept); R(accept4); R(close);
	R(shutdown); R(sendto); R(sendmsg); R(sendmmsg); R(setsockopt); R(dup2); R(dup3);
	R(close_range); R(closefrom);
#undef R
#ifdef QOS_TEST_UNRESOLVED
	/* Test build only (build/test/libqosagent-unresolved.so), as under a libc that lacks the
	 * functions: "all" clears every real symbol (the agent then disables itself), "some" all
	 * but the four it needs to work (src/agent/unresolved.test.ts). */
	const char *u = getenv("QOS_TEST_UNRESOLVED");
	if (u && !strcmp(u, "all"))
		memset(&qos_real, 0, sizeof qos_real);
	if (u && !strcmp(u, "some"))
		qos_real = (struct qos_real){.socket = qos_real.socket, .connect = qos_real.connect,
					     .close = qos_real.close, .setsockopt = qos_real.setsockopt};
#endif
}

static void atfork_prepare(void)
{
	qos_fd_atfork_prepare();
	qos_msg_atfork_prepare();
	qos_wire_atfork_prepare();
}

static void atfork_parent(void)
{
	qos_wire_atfork_parent();
	qos_msg_atfork_parent();
	qos_fd_atfork_parent();
}

static void atfork_child(void)
{
	qos_fd_atfork_child();
	qos_msg_atfork_child();
	qos_wire_atfork_child();
}

static void init(void)
{
	qos_fd_init();
	resolve();
	qos_creds_init();
	/* secure_getenv: in a setuid/setgid or file-capability program the environment is the
	 * caller's, who must not choose the daemon, the deadline or a debug stream on the
	 * program's stderr; there every variable reads as unset (docs/agent.md). So the socket
	 * is the default path, and the daemon on it must be root's (qos_creds_trusted). */
	qos_cfg.secure = qos_creds_secure();
	const char *p = secure_getenv("QOSD_SOCKET");
	strncpy(qos_cfg.socket_path, p && *p ? p : QOS_DEFAULT_SOCKET, sizeof qos_cfg.socket_path - 1);
	const char *t = secure_getenv("QOSD_TIMEOUT_MS");
	long ms = t ? strtol(t, NULL, 10) : QOS_DEFAULT_TIMEOUT_MS;
	qos_cfg.timeout_ms = ms > 0 && ms <= 60000 ? (int)ms : QOS_DEFAULT_TIMEOUT_MS;
	const char *d = secure_getenv("QOSD_DEBUG");
	qos_cfg.debug = d && *d && strcmp(d, "0") != 0;
	const char *c = secure_getenv("QOSD_CACHE");
	qos_cfg.cache = !(c && strcmp(c, "0") == 0);
	const char *off = secure_getenv("QOSD_DISABLE");
	qos_cfg.disabled = (off && *off && strcmp(off, "0") != 0) || !qos_real.socket ||
			   !qos_real.connect || !qos_real.close || !qos_real.setsockopt;
	qos_wire_init();
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static inline void ensure_init(void) { pthread_once(&init_once, init); }

__attribute__((constructor)) static void agent_startup(void) { ensure_init(); }

/* ---- decisions ---- */

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
static int take(struct fdst *s, const struct decision *d)
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
static void put(int fd, struct fdst *s, int took)
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
static void apply(int fd, struct fdst *s, const struct decision *d) { put(fd, s, take(s, d)); }

/* ---- asking ---- */

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

/* Applies an answer to fd: the Socket's decision, then the call's. Takes the stripe lock. */
static void apply_answer(int fd, struct fdst *s, const struct answer *a)
{
	pthread_mutex_lock(stripe(fd));
	put(fd, s, take(s, &a->sock) | take(s, &a->call));
	pthread_mutex_unlock(stripe(fd));
}

/* The errno that fails the call (a DENY in the Socket reply fails its first call), or 0. */
static int denied(const struct answer *a) { return a->sock.deny ? a->sock.deny : a->call.deny; }

/* Asks about a call on fd with an address (Connect, Bind, SendTo). With cached_gen, tells the
 * daemon about a call decided from the cache instead (no reply to wait for). */
static int ask_addr(const char *type, int fd, struct fdst *s, const struct sockaddr *sa, socklen_t salen,
		    struct answer *a, unsigned long long cached_gen)
{
	char buf[QOS_MAX_MSG];
	int nreq;
	size_t len = qos_msg_addr(buf, sizeof buf, type, fd, s, sa, salen, &nreq, cached_gen);
	if (!cached_gen)
		return finish(buf, len, nreq, fd, s, a);
	if (!len)
		return -1;
	int told = qos_tell(buf, len);
	if (told < 0)
		return -1; /* the daemon is gone: proceed as without it, like a failed ask */
	/* told == 1: skipped (the daemon is behind): the decision stands, the daemon misses this
	 * flow, and the socket stays unreported (no Close will follow) */
	if (told == 0)
		heard(fd, s, 0);
	return 0;
}

/* Asks about a call on fd with integer arguments (Listen, SetSockOpt). */
static int ask_ints(const char *type, int fd, struct fdst *s, int n, const int *v, struct answer *a)
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
static int decide_addr(const char *type, int fd, struct fdst *s, const struct sockaddr *sa,
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
static int socket_now(int fd, struct fdst *s)
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
	apply_answer(fd, s, &a);
	return 0;
}

/* Tells the daemon "Type pid uid cmd fd ints...", after the Cached Socket line of untold (a
 * socket decided at socket() from the cache that the daemon has not heard of yet), if any. */
static void tell_fd(const char *type, int fd, int nints, const int *ints, const struct fdst *untold)
{
	char buf[QOS_MAX_MSG];
	size_t len = qos_msg_notice(buf, sizeof buf, type, fd, nints, ints, untold);
	if (len)
		qos_tell(buf, len);
}

/* Forget fd (closed, or replaced by dup2); tells the daemon if it knew the socket, or if it
 * was decided at socket() from the cache and never told. */
static void forget(int fd, int tell)
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
		tell_fd("Close", fd, 0, NULL, untold ? &was : NULL);
}

/* ---- interposed calls ---- */

#define ENTER(realfn, ...)                                                                          \
	ensure_init();                                                                                 \
	if (in_agent || qos_cfg.disabled)                                                              \
		return QOS_REAL(realfn, __VA_ARGS__)

static int inet(const struct sockaddr *sa) { return sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6); }

/* The agent's own work (asking, telling, looking at a descriptor) must not show in errno: a
 * program sees the errno the real call leaves, success included, as without the agent. Each
 * interposed call saves errno before that work and puts it back after. */

QOS_EXPORT int socket(int domain, int type, int protocol)
{
	ENTER(socket, domain, type, protocol);
	int fd = QOS_REAL(socket, domain, type, protocol);
	if (fd < 0 || (domain != AF_INET && domain != AF_INET6))
		return fd;
	int saved = errno;
	struct fdst *s = fdst_get(fd, 1);
	if (!s)
		return fd;
	pthread_mutex_lock(stripe(fd));
	qos_fd_track(s, domain, type & 0xf, protocol, F_PENDING);
	pthread_mutex_unlock(stripe(fd));
	/* Deferred (sent with the socket's first control call: one round trip per connect, none
	 * for a socket nobody decides on), unless the policy decides at the socket event itself. */
	if (qos_wire_asks_at_socket()) {
		in_agent++;
		int deny = socket_now(fd, s);
		in_agent--;
		if (deny) {
			forget(fd, 1);
			QOS_REAL(close, fd);
			errno = deny;
			return -1;
		}
	}
	errno = saved;
	return fd;
}

/* Follows the daemon's answer about a call on fd: -1 with errno set if it denies the call,
 * else 0 with the answer applied. */
static int obey(int fd, struct fdst *s, const struct answer *a)
{
	if (denied(a)) {
		errno = denied(a);
		return -1;
	}
	apply_answer(fd, s, a);
	return 0;
}

/* Shared first half of connect/bind: ask first. Returns -1 with errno set if a DENY fails the
 * call before it reaches the kernel, else 0 with errno as it was: the real call goes next. */
static int ask_first(const char *type, int fd, const struct sockaddr *sa, socklen_t salen)
{
	int saved = errno;
	struct fdst *s = inet(sa) ? qos_fd_tracked(fd) : NULL;
	if (s) {
		struct answer a;
		in_agent++;
		int ok = decide_addr(type, fd, s, sa, salen, &a) == 0;
		in_agent--;
		if (ok && obey(fd, s, &a) != 0)
			return -1;
	}
	errno = saved;
	return 0;
}

QOS_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t salen)
{
	ENTER(connect, fd, sa, salen);
	if (ask_first("Connect", fd, sa, salen) != 0)
		return -1;
	int r = QOS_REAL(connect, fd, sa, salen);
	/* A datagram socket's default destination: its datagrams without an address carry the
	 * socket-level mark (restored after a datagram to another destination); AF_UNSPEC
	 * dissolves the association. */
	struct fdst *s = r == 0 && sa ? fdst_get(fd, 0) : NULL;
	if (s && (s->flags & F_TRACKED) && s->type == SOCK_DGRAM) {
		pthread_mutex_lock(stripe(fd));
		s->flags = (uint16_t)(inet(sa) ? s->flags | F_CONNECTED : s->flags & ~F_CONNECTED);
		pthread_mutex_unlock(stripe(fd));
	}
	return r;
}

QOS_EXPORT int bind(int fd, const struct sockaddr *sa, socklen_t salen)
{
	ENTER(bind, fd, sa, salen);
	if (ask_first("Bind", fd, sa, salen) != 0)
		return -1;
	return QOS_REAL(bind, fd, sa, salen);
}

QOS_EXPORT int listen(int fd, int backlog)
{
	ENTER(listen, fd, backlog);
	int saved = errno;
	struct fdst *s = qos_wire_maybe_up() ? qos_fd_tracked(fd) : NULL;
	if (s) {
		struct answer a;
		in_agent++;
		int ok = ask_ints("Listen", fd, s, 1, &backlog, &a) == 0;
		in_agent--;
		if (ok && obey(fd, s, &a) != 0)
			return -1;
	}
	errno = saved;
	return QOS_REAL(listen, fd, backlog);
}

static int accepted(int lfd, int nfd, struct sockaddr *sa, socklen_t *salen);

/* After accept/accept4 returned nfd (the real call's errno is kept). */
static int after_accept(int lfd, int nfd, struct sockaddr *sa, socklen_t *salen)
{
	if (nfd < 0)
		return nfd;
	int saved = errno;
	int r = accepted(lfd, nfd, sa, salen);
	if (r >= 0)
		errno = saved;
	return r;
}

static int accepted(int lfd, int nfd, struct sockaddr *sa, socklen_t *salen)
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
	if (sa && salen && *salen >= sizeof(struct sockaddr_in) && inet(sa)) {
		pa = sa;
		pl = *salen;
	} else if (getpeername(nfd, (struct sockaddr *)&peer, &pl) != 0) {
		pl = 0;
	}
	/* Accept pid uid cmd fd address newfd: the listening socket's pending Socket goes first. */
	char buf[QOS_MAX_MSG];
	int nreq;
	in_agent++;
	size_t len = qos_msg_accept(buf, sizeof buf, lfd, ls, pl ? pa : NULL, pl, nfd, &nreq);
	struct answer a;
	int ok = finish(buf, len, nreq, lfd, ls, &a) == 0;
	in_agent--;
	if (!ok)
		return nfd;
	/* the listening socket's deferred Socket decision is its own: it applies to lfd (and so
	 * to the connections accepted after this one, which inherit lfd's marks) */
	pthread_mutex_lock(stripe(lfd));
	apply(lfd, ls, &a.sock);
	pthread_mutex_unlock(stripe(lfd));
	int deny = denied(&a);
	pthread_mutex_lock(stripe(nfd));
	ns->flags |= F_REPORTED;
	if (!deny)
		put(nfd, ns, take(ns, &a.sock) | take(ns, &a.call));
	pthread_mutex_unlock(stripe(nfd));
	if (deny) {
		forget(nfd, 0);
		QOS_REAL(close, nfd);
		errno = deny;
		return -1;
	}
	return nfd;
}

QOS_EXPORT int accept(int fd, struct sockaddr *sa, socklen_t *salen)
{
	ENTER(accept, fd, sa, salen);
	return after_accept(fd, QOS_REAL(accept, fd, sa, salen), sa, salen);
}

QOS_EXPORT int accept4(int fd, struct sockaddr *sa, socklen_t *salen, int flags)
{
	ENTER(accept4, fd, sa, salen, flags);
	return after_accept(fd, QOS_REAL(accept4, fd, sa, salen, flags), sa, salen);
}

QOS_EXPORT int close(int fd)
{
	ENTER(close, fd);
	int saved = errno;
	struct fdst *s = fdst_get(fd, 0);
	if (s && s->flags)
		forget(fd, 1);
	if (qos_wire_is_ours(fd))
		qos_wire_fd_gone(fd);
	errno = saved;
	return QOS_REAL(close, fd);
}

QOS_EXPORT int shutdown(int fd, int how)
{
	ENTER(shutdown, fd, how);
	int r = QOS_REAL(shutdown, fd, how);
	struct fdst *s = fdst_get(fd, 0);
	if (r == 0 && s && (s->flags & F_REPORTED)) {
		int saved = errno;
		tell_fd("Shutdown", fd, 1, &how, NULL);
		errno = saved;
	}
	return r;
}

/* ---- unconnected datagrams: one SendTo per new destination, then a cached decision ---- */

static int dest_key(const struct sockaddr *sa, socklen_t len, struct dest *k)
{
	memset(k, 0, sizeof *k);
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		k->family = AF_INET;
		k->port = in->sin_port;
		memcpy(k->addr, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		k->family = AF_INET6;
		k->port = in6->sin6_port;
		memcpy(k->addr, &in6->sin6_addr, 16);
		return 0;
	}
	return -1;
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

/* Sets what a datagram leaves with: tos and prio (-1: the unmarked default, if the agent
 * changed it). Caller holds the stripe lock. */
static void set_marks(int fd, struct fdst *s, int tos, int prio)
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

/* Marks fd for a datagram to sa; returns 0 to send, or an errno to refuse the send. */
static int before_datagram(int fd, struct fdst *s, const struct sockaddr *sa, socklen_t salen)
{
	struct dest k;
	if (!sa || !inet(sa) || dest_key(sa, salen, &k) != 0)
		return 0;
	pthread_mutex_lock(stripe(fd));
	struct dest *e = dest_find(s, &k);
	pthread_mutex_unlock(stripe(fd));
	if (!e) {
		struct answer a;
		in_agent++;
		int ok = decide_addr("SendTo", fd, s, sa, salen, &a) == 0;
		in_agent--;
		if (!ok)
			return 0;
		if (a.sock.deny)
			return a.sock.deny; /* fails this first call only, as for any call */
		const struct decision *d = &a.call;
		pthread_mutex_lock(stripe(fd));
		take(s, &a.sock); /* the Socket's decision is the socket's, for every destination */
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
		set_marks(fd, s, tos, prio);
	}
	pthread_mutex_unlock(stripe(fd));
	return deny;
}

/* After a datagram to an address on a connected socket: what send() sends next goes to the
 * connected peer, so the socket-level mark comes back (send and write are not interposed).
 * errno is left as the send left it. */
static void after_datagram(int fd, struct fdst *s)
{
	if (!(s->flags & F_CONNECTED))
		return;
	int saved = errno;
	pthread_mutex_lock(stripe(fd));
	set_marks(fd, s, s->base_tos, s->base_prio);
	pthread_mutex_unlock(stripe(fd));
	errno = saved;
}

/* The datagram socket behind fd, if the agent marks its datagrams. */
static struct fdst *datagram_socket(int fd)
{
	struct fdst *s = qos_fd_tracked(fd);
	return s && s->type == SOCK_DGRAM ? s : NULL;
}

/* Before one datagram to sa on fd: *sp is the datagram socket the agent marks, or NULL.
 * Returns the errno of a DENY, or 0 with errno as it was. */
static int before_send(int fd, const struct sockaddr *sa, socklen_t salen, struct fdst **sp)
{
	int saved = errno;
	struct fdst *s = *sp = datagram_socket(fd);
	int deny = s ? before_datagram(fd, s, sa, salen) : 0;
	errno = saved;
	return deny;
}

QOS_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *sa, socklen_t salen)
{
	ENTER(sendto, fd, buf, len, flags, sa, salen);
	struct fdst *s;
	int deny = inet(sa) ? before_send(fd, sa, salen, &s) : (s = NULL, 0);
	if (deny) {
		errno = deny;
		return -1;
	}
	ssize_t r = QOS_REAL(sendto, fd, buf, len, flags, sa, salen);
	if (s)
		after_datagram(fd, s);
	return r;
}

QOS_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ENTER(sendmsg, fd, msg, flags);
	struct fdst *s;
	int deny = msg && inet(msg->msg_name) ? before_send(fd, msg->msg_name, msg->msg_namelen, &s) : (s = NULL, 0);
	if (deny) {
		errno = deny;
		return -1;
	}
	ssize_t r = QOS_REAL(sendmsg, fd, msg, flags);
	if (s)
		after_datagram(fd, s);
	return r;
}

static int same_dest(const struct msghdr *a, const struct msghdr *b)
{
	if (!a->msg_name || !b->msg_name)
		return a->msg_name == b->msg_name;
	return a->msg_namelen == b->msg_namelen && !memcmp(a->msg_name, b->msg_name, a->msg_namelen);
}

/* The kernel sends at most UIO_MAXIOV messages in one sendmmsg (net/socket.c). */
#define MMSG_MAX 1024

QOS_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	ENTER(sendmmsg, fd, vec, vlen, flags);
	if (!vec || vlen == 0)
		return QOS_REAL(sendmmsg, fd, vec, vlen, flags);
	int saved = errno;
	struct fdst *s = datagram_socket(fd);
	errno = saved;
	if (!s)
		return QOS_REAL(sendmmsg, fd, vec, vlen, flags);
	/* One mark per destination: each run of messages to one destination is marked, then sent
	 * with its own real sendmmsg, and the program sees the sum, exactly what one call would
	 * have returned: the count sent before a failure or a short run, or the failure itself if
	 * nothing was sent. */
	if (vlen > MMSG_MAX)
		vlen = MMSG_MAX;
	unsigned done = 0;
	int failed = 0;
	while (done < vlen) {
		unsigned n = 1;
		while (done + n < vlen && same_dest(&vec[done].msg_hdr, &vec[done + n].msg_hdr))
			n++;
		const struct msghdr *h = &vec[done].msg_hdr;
		int deny = 0;
		if (h->msg_name)
			deny = before_datagram(fd, s, h->msg_name, h->msg_namelen);
		else
			after_datagram(fd, s); /* to the connected peer, with its mark */
		if (deny) {
			errno = deny;
			failed = 1;
			break;
		}
		errno = saved;
		int r = QOS_REAL(sendmmsg, fd, vec + done, n, flags);
		if (r < 0) {
			failed = 1;
			break;
		}
		done += (unsigned)r;
		if ((unsigned)r < n)
			break;
	}
	after_datagram(fd, s);
	if (failed && done == 0)
		return -1;
	errno = saved;
	return (int)done;
}

static void app_mark(int fd, int level, int opt, int v);

QOS_EXPORT int setsockopt(int fd, int level, int opt, const void *val, socklen_t len)
{
	ENTER(setsockopt, fd, level, opt, val, len);
	int r = QOS_REAL(setsockopt, fd, level, opt, val, len);
	int is_mark = (level == IPPROTO_IP && opt == IP_TOS) || (level == IPPROTO_IPV6 && opt == IPV6_TCLASS) ||
		      (level == SOL_SOCKET && opt == SO_PRIORITY);
	if (r != 0 || !is_mark)
		return r;
	/* What the kernel took (it succeeded): an int, or for IP_TOS also a single byte, or
	 * nothing (then 0: net/ipv4/ip_sockglue.c); IPV6_TCLASS -1 means the default, 0. */
	int v = 0;
	if (len >= (socklen_t)sizeof(int))
		memcpy(&v, val, sizeof v);
	else if (len >= 1)
		v = *(const unsigned char *)val;
	if (level == IPPROTO_IPV6 && v == -1)
		v = 0;
	int saved = errno;
	app_mark(fd, level, opt, v);
	errno = saved;
	return r;
}

/* The application set its own mark (the real setsockopt succeeded): remember it, so that no
 * later decision replaces it unless it says OVERRIDE, and ask the policy about it. */
static void app_mark(int fd, int level, int opt, int v)
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
	in_agent++;
	int ok = ask_ints("SetSockOpt", fd, s, 3, args, &a) == 0;
	in_agent--;
	if (ok && !denied(&a)) {
		/* A deferred Socket's decision is about the socket, like any other: it does not
		 * replace the choice just made unless it says OVERRIDE. The SetSockOpt decision is
		 * the policy's verdict on that choice itself: it replaces it as given. */
		a.call.override = 1;
		apply_answer(fd, s, &a);
	}
}

/* ---- descriptor replacement: keep our own connection safe ---- */

QOS_EXPORT int dup2(int oldfd, int newfd)
{
	ENTER(dup2, oldfd, newfd);
	int saved = errno;
	if (oldfd != newfd) {
		forget(newfd, 1);
		if (qos_wire_is_ours(newfd))
			qos_wire_fd_gone(newfd);
	}
	errno = saved;
	return QOS_REAL(dup2, oldfd, newfd);
}

QOS_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	ENTER(dup3, oldfd, newfd, flags);
	int saved = errno;
	forget(newfd, 1);
	if (qos_wire_is_ours(newfd))
		qos_wire_fd_gone(newfd);
	errno = saved;
	return QOS_REAL(dup3, oldfd, newfd, flags);
}

static void forget_untold(int fd) { forget(fd, 0); }

static void range_gone(unsigned first, unsigned last)
{
	qos_fd_each(first, last, forget_untold);
	qos_wire_range_gone(first, last);
}

QOS_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	ensure_init();
	if (!in_agent && !(flags & 4 /* CLOSE_RANGE_CLOEXEC */) && first <= last)
		range_gone(first, last);
	if (qos_real.close_range)
		return qos_real.close_range(first, last, flags);
	return (int)syscall(SYS_close_range, first, last, flags);
}

QOS_EXPORT void closefrom(int lowfd)
{
	ensure_init();
	if (!in_agent && lowfd >= 0)
		range_gone((unsigned)lowfd, ~0u);
	if (qos_real.closefrom)
		qos_real.closefrom(lowfd);
	else
		syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0);
}

/* Cleanup: the process is exiting (paper figure 3); only if it ever talked to the daemon. */
__attribute__((destructor)) static void agent_cleanup(void)
{
	if (qos_cfg.disabled || in_agent)
		return;
	char buf[QOS_MAX_MSG];
	size_t len = qos_msg_cleanup(buf, sizeof buf);
	if (len && qos_wire_started())
		qos_tell(buf, len);
}
