/* qosd protocol agent (libqosagent.so): interposes the socket control calls of an unmodified
 * program (LD_PRELOAD), asks the policy daemon how to treat each socket and applies the
 * answer with setsockopt before the first packet leaves (paper sections 4.1, 4.1.3).
 * Data-path calls are never touched; on any failure the real call proceeds unchanged. */
#define _GNU_SOURCE
#include "agent.h"

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

/* ---- per-descriptor state: a two-level table, chunks allocated on first use ---- */

enum {
	F_TRACKED = 1,  /* an AF_INET/AF_INET6 socket we follow */
	F_PENDING = 2,  /* its Socket message is not yet sent (it goes with the first control call) */
	F_REPORTED = 4, /* the daemon has heard of it */
	F_IGNORED = 8,  /* known not to be an inet socket */
	F_APP_TOS = 16, /* the application chose its own DS field */
	F_APP_PRIO = 32,
	F_CONNECTED = 64, /* a datagram socket with a default destination (connect) */
	F_DECIDED = 128, /* with F_PENDING: decided at socket() from the cache; its Socket goes out
			  * as a Cached notification (sock_gen) with the next message about it */
	F_FRESH = 256,   /* the daemon has heard only its Socket: the next call is a first call */
};

#define DC_SLOTS 8
struct dest {
	uint8_t used;
	uint8_t family;
	uint16_t port;
	uint8_t addr[16];
	int16_t tos;  /* the SendTo decision's; -1: the socket-level mark */
	int16_t prio; /* -1: the socket-level priority */
	uint8_t override; /* it says OVERRIDE: it replaces the application's own mark */
	int deny;
};

struct fdst {
	uint16_t flags;
	uint8_t family;
	uint8_t type;
	int16_t proto;
	int16_t base_tos, cur_tos;   /* socket-level mark, and what is set now (-1 none) */
	int16_t base_prio, cur_prio;
	uint8_t dc_next;
	struct dest *dc;             /* unconnected datagram destinations already decided */
	unsigned long long sock_gen; /* F_DECIDED: the generation its Socket was decided under */
};

#define CHUNK 1024
#define NCHUNKS 1024 /* descriptors up to 1,048,576; beyond that calls pass straight through */
static struct fdst *_Atomic chunks[NCHUNKS];

#define NSTRIPES 64
static pthread_mutex_t stripes[NSTRIPES];

static struct fdst *fdst_get(int fd, int create)
{
	if (fd < 0 || (unsigned)fd >= CHUNK * NCHUNKS)
		return NULL;
	unsigned ci = (unsigned)fd / CHUNK;
	struct fdst *c = chunks[ci];
	if (!c) {
		if (!create)
			return NULL;
		struct fdst *n = calloc(CHUNK, sizeof *n);
		if (!n)
			return NULL;
		struct fdst *expected = NULL;
		if (!__atomic_compare_exchange_n(&chunks[ci], &expected, n, 0, __ATOMIC_SEQ_CST,
						 __ATOMIC_SEQ_CST)) {
			free(n);
			c = expected;
		} else {
			c = n;
		}
	}
	return &c[(unsigned)fd % CHUNK];
}

static pthread_mutex_t *stripe(int fd) { return &stripes[(unsigned)fd % NSTRIPES]; }

static void fdst_reset(struct fdst *s)
{
	free(s->dc);
	memset(s, 0, sizeof *s);
}

static void fdst_track(struct fdst *s, int family, int type, int proto, uint8_t flags)
{
	fdst_reset(s);
	s->flags = F_TRACKED | flags;
	s->family = (uint8_t)family;
	s->type = (uint8_t)type;
	s->proto = (int16_t)proto;
	s->base_tos = s->cur_tos = s->base_prio = s->cur_prio = -1;
}

/* The state of fd if it is an inet socket; learns sockets we did not see created
 * (inherited across exec, dup'ed) from the kernel once. */
static struct fdst *tracked(int fd)
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
		fdst_track(s, dom, type, proto, F_PENDING);
	else
		s->flags = F_IGNORED;
	pthread_mutex_unlock(stripe(fd));
	return (s->flags & F_TRACKED) ? s : NULL;
}

/* ---- configuration and symbol resolution ---- */

static void resolve(void)
{
#define R(name) qos_real.name = dlsym(RTLD_NEXT, #name)
	R(socket); R(connect); R(bind); R(listen); R(accept); R(accept4); R(close);
	R(shutdown); R(sendto); R(sendmsg); R(sendmmsg); R(setsockopt); R(dup2); R(dup3);
	R(close_range); R(closefrom);
#undef R
}

static void atfork_prepare(void)
{
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_lock(&stripes[i]);
	qos_wire_atfork_prepare();
}

static void atfork_parent(void)
{
	qos_wire_atfork_parent();
	for (int i = NSTRIPES - 1; i >= 0; i--)
		pthread_mutex_unlock(&stripes[i]);
}

static void atfork_child(void)
{
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&stripes[i], NULL);
	qos_wire_atfork_child();
}

static void init(void)
{
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&stripes[i], NULL);
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

struct decision {
	int tos;  /* -1: none */
	int prio; /* -1: none */
	int deny; /* errno, 0: none */
	int override;
	unsigned long long cache_gen; /* CACHE gen: reusable while the daemon publishes gen */
};
#define NO_DECISION ((struct decision){-1, -1, 0, 0, 0})

/* What the daemon said about one call: the deferred Socket's decision, if the Socket went
 * with it, and the call's own. Each is applied by itself, the Socket's first, so that each
 * says for itself whether it overrides the application's own mark. */
struct answer {
	struct decision sock, call;
	unsigned long long cache_gen; /* every reply carried this CACHE gen (0: not reusable) */
};
#define NO_ANSWER ((struct answer){NO_DECISION, NO_DECISION, 0})

static const struct { const char *name; int value; } errnames[] = {
	{"EPERM", EPERM}, {"EACCES", EACCES}, {"ECONNREFUSED", ECONNREFUSED},
	{"ENETUNREACH", ENETUNREACH}, {"EHOSTUNREACH", EHOSTUNREACH}, {"ETIMEDOUT", ETIMEDOUT},
	{"ECONNRESET", ECONNRESET}, {"ECONNABORTED", ECONNABORTED}, {"EADDRINUSE", EADDRINUSE},
	{"EADDRNOTAVAIL", EADDRNOTAVAIL}, {"ENOBUFS", ENOBUFS}, {"EAGAIN", EAGAIN},
	{"ENETDOWN", ENETDOWN}, {"EHOSTDOWN", EHOSTDOWN}, {"EAFNOSUPPORT", EAFNOSUPPORT},
	{"EPROTONOSUPPORT", EPROTONOSUPPORT}, {"EINVAL", EINVAL}, {"EMFILE", EMFILE},
	{"ENFILE", ENFILE}, {"ENOMEM", ENOMEM}, {"EINTR", EINTR}, {"EIO", EIO},
	{"EOPNOTSUPP", EOPNOTSUPP}, {"EDQUOT", EDQUOT}, {"ECANCELED", ECANCELED},
};

static int dscp_value(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s && !*end)
		return v >= 0 && v <= 63 ? (int)v : -1;
	if (!strcmp(s, "EF")) return 46;
	if (!strcmp(s, "LE")) return 1;
	if (!strcmp(s, "VA")) return 44;
	if (!strcmp(s, "DF") || !strcmp(s, "BE")) return 0;
	if (s[0] == 'C' && s[1] == 'S' && s[2] >= '0' && s[2] <= '7' && !s[3]) return (s[2] - '0') * 8;
	if (s[0] == 'A' && s[1] == 'F' && s[2] >= '1' && s[2] <= '4' && s[3] >= '1' && s[3] <= '3' && !s[4])
		return (s[2] - '0') * 8 + (s[3] - '0') * 2;
	return -1;
}

static int int_in(const char *s, int lo, int hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *s && !*end && v >= lo && v <= hi ? (int)v : -1;
}

/* Parses a reply line of directives. Anything not understood voids the whole reply: the
 * call then proceeds as without the agent. */
static void parse_reply(char *line, struct decision *d)
{
	struct decision r = NO_DECISION;
	char *save = NULL;
	for (char *tok = strtok_r(line, " \t\r", &save); tok; tok = strtok_r(NULL, " \t\r", &save)) {
		char *arg = NULL;
		if (!strcmp(tok, "OVERRIDE")) {
			r.override = 1;
			continue;
		}
		if (strcmp(tok, "TOS") && strcmp(tok, "DSCP") && strcmp(tok, "PRIORITY") && strcmp(tok, "DENY") &&
		    strcmp(tok, "CACHE"))
			goto garbage;
		arg = strtok_r(NULL, " \t\r", &save);
		if (!arg)
			goto garbage;
		if (!strcmp(tok, "TOS")) {
			if ((r.tos = int_in(arg, 0, 255)) < 0) goto garbage;
		} else if (!strcmp(tok, "DSCP")) {
			int v = dscp_value(arg);
			if (v < 0) goto garbage;
			r.tos = v << 2;
		} else if (!strcmp(tok, "PRIORITY")) {
			if ((r.prio = int_in(arg, 0, 7)) < 0) goto garbage;
		} else if (!strcmp(tok, "CACHE")) {
			char *end;
			r.cache_gen = strtoull(arg, &end, 10);
			if (*end || !r.cache_gen) goto garbage;
			qos_wire_saw_generation(r.cache_gen);
		} else {
			for (size_t i = 0; i < sizeof errnames / sizeof *errnames; i++)
				if (!strcmp(arg, errnames[i].name))
					r.deny = errnames[i].value;
			if (!r.deny) goto garbage;
		}
	}
	*d = r;
	return;
garbage:
	qos_debug("ignoring reply directive '%s'", line);
	*d = NO_DECISION;
}

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

/* ---- messages ---- */

static size_t fmt_addr(char *out, size_t len, size_t cap, const struct sockaddr *sa, socklen_t salen)
{
	char host[INET6_ADDRSTRLEN] = "";
	int port = 0, fam = sa ? sa->sa_family : 0;
	if (fam == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
	} else if (fam == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
	}
	char el[INET6_ADDRSTRLEN + 24];
	int n = snprintf(el, sizeof el, "%d %s %d", fam, host[0] ? host : "{}", port);
	if (!host[0])
		n = snprintf(el, sizeof el, "%d {} 0", fam);
	if (len >= cap || len + (size_t)n + 3 > cap)
		return cap;
	out[len++] = ' ';
	out[len++] = '{';
	memcpy(out + len, el, (size_t)n);
	len += (size_t)n;
	out[len++] = '}';
	return len;
}

static size_t fmt_ints(char *out, size_t len, size_t cap, int n, const int *v)
{
	for (int i = 0; i < n && len < cap; i++) {
		int w = snprintf(out + len, cap - len, " %d", v[i]);
		len = w < 0 || (size_t)w >= cap - len ? cap : len + (size_t)w;
	}
	return len;
}

/* "Socket pid uid cmd family type protocol fd" for fd, or the Cached form with gen != 0;
 * without the newline. */
static size_t socket_msg(char *buf, size_t cap, int fd, const struct fdst *s, unsigned long long gen)
{
	size_t len = qos_msg_begin(buf, cap, "Socket", gen);
	int v[4] = {s->family, s->type, s->proto, fd};
	return fmt_ints(buf, len, cap, 4, v);
}

/* Begins a request in buf: the deferred Socket line for fd, if any, then "Type pid uid cmd"
 * (as Cached notifications when cached_gen != 0). *nreq counts the lines that get replies: a
 * Socket decided at socket() from the cache goes as a Cached notification. */
static size_t begin(char *buf, size_t cap, int fd, struct fdst *s, const char *type, int *nreq,
		    unsigned long long cached_gen)
{
	size_t len = 0;
	*nreq = 0;
	if (s->flags & F_PENDING) {
		int decided = (s->flags & F_DECIDED) != 0;
		len = socket_msg(buf, cap, fd, s, decided ? s->sock_gen : cached_gen);
		if (len + 1 >= cap)
			return cap;
		buf[len++] = '\n';
		if (!decided)
			(*nreq)++;
	}
	size_t l2 = qos_msg_begin(buf + len, cap - len, type, cached_gen);
	if (l2 >= cap - len)
		return cap;
	(*nreq)++;
	return len + l2;
}

/* The daemon has now heard of fd, by the call just sent: fresh if that was its Socket alone. */
static void heard(int fd, struct fdst *s, int socket_call)
{
	pthread_mutex_lock(stripe(fd));
	s->flags = (uint16_t)((s->flags & ~(F_PENDING | F_DECIDED | F_FRESH)) | F_REPORTED | (socket_call ? F_FRESH : 0));
	pthread_mutex_unlock(stripe(fd));
}

/* Sends the request in buf and reads the replies: with nreq 2, the deferred Socket's first,
 * then the call's. Returns 0 if the daemon answered. */
static int finish(char *buf, size_t len, size_t cap, int nreq, int fd, struct fdst *s, struct answer *out)
{
	*out = NO_ANSWER;
	if (len + 1 >= cap)
		return -1;
	buf[len++] = '\n';
	char replies[2][QOS_MAX_REPLY];
	if (qos_ask(buf, len, nreq, replies) != 0)
		return -1;
	heard(fd, s, 0);
	if (nreq == 2)
		parse_reply(replies[0], &out->sock);
	parse_reply(replies[nreq - 1], &out->call);
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

/* Asks about a call on fd with an address argument and trailing integer arguments;
 * suffix is appended verbatim (e.g. " {} {}" for Connect's sqos and gqos). With cached_gen,
 * tells the daemon about a call decided from the cache instead (no reply to wait for). */
static int ask_addr(const char *type, int fd, struct fdst *s, const struct sockaddr *sa,
		    socklen_t salen, const char *suffix, int nints, const int *ints, struct answer *a,
		    unsigned long long cached_gen)
{
	char buf[QOS_MAX_MSG];
	int nreq;
	size_t len = begin(buf, sizeof buf, fd, s, type, &nreq, cached_gen);
	len = fmt_ints(buf, len, sizeof buf, 1, &fd);
	if (sa)
		len = fmt_addr(buf, len, sizeof buf, sa, salen);
	if (suffix) {
		size_t sl = strlen(suffix);
		len = len + sl < sizeof buf ? (memcpy(buf + len, suffix, sl), len + sl) : sizeof buf;
	}
	len = fmt_ints(buf, len, sizeof buf, nints, ints);
	if (!cached_gen)
		return finish(buf, len, sizeof buf, nreq, fd, s, a);
	if (len + 1 >= sizeof buf)
		return -1;
	buf[len++] = '\n';
	int told = qos_tell(buf, len);
	if (told < 0)
		return -1; /* the daemon is gone: proceed as without it, like a failed ask */
	/* told == 1: skipped (the daemon is behind): the decision stands, the daemon misses this
	 * flow, and the socket stays unreported (no Close will follow) */
	if (told == 0)
		heard(fd, s, 0);
	return 0;
}

/* ---- the decision cache: per thread, as the daemon sees one connection per thread ----
 * A first call on a fresh socket (Socket still pending) depends only on who asks, the
 * socket's kind and the address: when the daemon says so (CACHE gen), the same call on
 * another fresh socket reuses the outcome while the daemon's published generation is
 * unchanged, and the daemon is only told (Cached), not asked. */

#define CACHE_SLOTS 64
struct ckey {
	char call; /* first letter of the call: 'C'onnect, 'B'ind, 'S'endTo; 'O' a Socket alone */
	uint8_t first; /* the Socket went with the call (its answer holds the Socket's decision) */
	uint8_t family, type, afamily;
	int16_t proto;
	uint16_t port;
	uint8_t addr[16];
};
struct centry {
	struct ckey k;
	unsigned long long gen; /* 0: empty */
	struct answer a;
};
static __thread struct centry cache[CACHE_SLOTS];
static __thread unsigned cache_fork_gen, cache_epoch;

static int ckey_make(struct ckey *k, char call, const struct fdst *s, const struct sockaddr *sa, socklen_t salen)
{
	memset(k, 0, sizeof *k);
	k->call = call;
	k->first = call != 'O' && (s->flags & (F_PENDING | F_DECIDED)) == F_PENDING;
	k->family = s->family;
	k->type = s->type;
	k->proto = s->proto;
	if (!sa) {
		return call == 'O' ? 0 : -1;
	} else if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		k->port = in->sin_port;
		memcpy(k->addr, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		k->port = in6->sin6_port;
		memcpy(k->addr, &in6->sin6_addr, 16);
	} else {
		return -1;
	}
	k->afamily = (uint8_t)sa->sa_family;
	return 0;
}

static struct centry *cache_slot(const struct ckey *k)
{
	/* A forked child is someone else, and so is a process that changed its uids or gids
	 * (the daemon decided for who it was): their answers are not ours. */
	if (cache_fork_gen != qos_wire_fork_gen() || cache_epoch != qos_creds_epoch()) {
		memset(cache, 0, sizeof cache);
		cache_fork_gen = qos_wire_fork_gen();
		cache_epoch = qos_creds_epoch();
	}
	uint32_t h = 2166136261u;
	const uint8_t *p = (const uint8_t *)k;
	for (size_t i = 0; i < sizeof *k; i++)
		h = (h ^ p[i]) * 16777619u;
	return &cache[h % CACHE_SLOTS];
}

/* The cache entry for k if it holds a valid answer (else NULL); *slot is where k goes. */
static struct centry *cache_find(const struct ckey *k, struct centry **slot, unsigned long long *gen)
{
	struct centry *e = *slot = cache_slot(k);
	*gen = qos_wire_generation();
	return *gen && e->gen == *gen && !memcmp(&e->k, k, sizeof *k) ? e : NULL;
}

/* The call's outcome: from the cache if valid (even while asking is paused: using it does
 * not wait), else asked (and cached when allowed). -1: proceed as without the agent. Only a
 * first call on a socket is cached: its Socket still pending, or the only message before. */
static int decide_addr(const char *type, int fd, struct fdst *s, const struct sockaddr *sa,
		       socklen_t salen, const char *suffix, struct answer *a)
{
	struct ckey k;
	struct centry *e = NULL, *hit;
	unsigned long long gen;
	if (qos_cfg.cache && (s->flags & (F_PENDING | F_FRESH)) && ckey_make(&k, type[0], s, sa, salen) == 0 &&
	    (hit = cache_find(&k, &e, &gen))) {
		*a = hit->a;
		return ask_addr(type, fd, s, sa, salen, suffix, 0, NULL, a, gen);
	}
	if (!qos_wire_maybe_up())
		return -1;
	int r = ask_addr(type, fd, s, sa, salen, suffix, 0, NULL, a, 0);
	if (r == 0 && e && a->cache_gen) {
		e->k = k;
		e->a = *a;
		e->gen = a->cache_gen;
	}
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
	ckey_make(&k, 'O', s, NULL, 0);
	if (qos_cfg.cache && (hit = cache_find(&k, &e, &gen))) {
		a = hit->a;
		pthread_mutex_lock(stripe(fd));
		s->flags |= F_DECIDED;
		s->sock_gen = gen;
		pthread_mutex_unlock(stripe(fd));
	} else {
		if (!qos_wire_maybe_up())
			return 0;
		char buf[QOS_MAX_MSG];
		size_t len = socket_msg(buf, sizeof buf, fd, s, 0);
		if (finish(buf, len, sizeof buf, 1, fd, s, &a) != 0)
			return 0;
		heard(fd, s, 1);
		if (e && a.cache_gen) {
			e->k = k;
			e->a = a;
			e->gen = a.cache_gen;
		}
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
	size_t len = 0;
	if (untold) {
		len = socket_msg(buf, sizeof buf, fd, untold, untold->sock_gen);
		if (len + 1 >= sizeof buf)
			return;
		buf[len++] = '\n';
	}
	size_t l2 = qos_msg_begin(buf + len, sizeof buf - len, type, 0);
	if (l2 >= sizeof buf - len)
		return;
	len = fmt_ints(buf, len + l2, sizeof buf, 1, &fd);
	len = fmt_ints(buf, len, sizeof buf, nints, ints);
	if (len + 1 >= sizeof buf)
		return;
	buf[len++] = '\n';
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
	fdst_reset(s);
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
	fdst_track(s, domain, type & 0xf, protocol, F_PENDING);
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

/* Shared first half of connect/bind: ask first. Returns -1 with errno set if a DENY fails the
 * call before it reaches the kernel, else 0 with errno as it was: the real call goes next. */
static int ask_first(const char *type, int fd, const struct sockaddr *sa, socklen_t salen, const char *suffix)
{
	int saved = errno;
	struct fdst *s = inet(sa) ? tracked(fd) : NULL;
	if (s) {
		struct answer a;
		in_agent++;
		int ok = decide_addr(type, fd, s, sa, salen, suffix, &a) == 0;
		in_agent--;
		if (ok && denied(&a)) {
			errno = denied(&a);
			return -1;
		}
		if (ok)
			apply_answer(fd, s, &a);
	}
	errno = saved;
	return 0;
}

QOS_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t salen)
{
	ENTER(connect, fd, sa, salen);
	if (ask_first("Connect", fd, sa, salen, " {} {}") != 0)
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
	if (ask_first("Bind", fd, sa, salen, NULL) != 0)
		return -1;
	return QOS_REAL(bind, fd, sa, salen);
}

QOS_EXPORT int listen(int fd, int backlog)
{
	ENTER(listen, fd, backlog);
	int saved = errno;
	struct fdst *s = qos_wire_maybe_up() ? tracked(fd) : NULL;
	if (s) {
		struct answer a;
		in_agent++;
		int ok = ask_addr("Listen", fd, s, NULL, 0, NULL, 1, &backlog, &a, 0) == 0;
		in_agent--;
		if (ok && denied(&a)) {
			errno = denied(&a);
			return -1;
		}
		if (ok)
			apply_answer(fd, s, &a);
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
	struct fdst *ls = tracked(lfd);
	struct fdst *ns = ls ? fdst_get(nfd, 1) : NULL;
	if (!ns)
		return nfd;
	pthread_mutex_lock(stripe(nfd));
	fdst_track(ns, ls->family, ls->type, ls->proto, 0);
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
	size_t len = begin(buf, sizeof buf, lfd, ls, "Accept", &nreq, 0);
	len = fmt_ints(buf, len, sizeof buf, 1, &lfd);
	len = fmt_addr(buf, len, sizeof buf, pl ? pa : NULL, pl);
	len = fmt_ints(buf, len, sizeof buf, 1, &nfd);
	struct answer a;
	int ok = finish(buf, len, sizeof buf, nreq, lfd, ls, &a) == 0;
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
		int ok = decide_addr("SendTo", fd, s, sa, salen, NULL, &a) == 0;
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
	struct fdst *s = tracked(fd);
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
	struct fdst *s = tracked(fd);
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
	int ok = ask_addr("SetSockOpt", fd, s, NULL, 0, NULL, 3, args, &a, 0) == 0;
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

static void range_gone(unsigned first, unsigned last)
{
	for (unsigned ci = first / CHUNK; ci < NCHUNKS && ci <= last / CHUNK; ci++) {
		if (!chunks[ci])
			continue;
		for (unsigned i = 0; i < CHUNK; i++) {
			unsigned fd = ci * CHUNK + i;
			if (fd >= first && fd <= last && chunks[ci][i].flags)
				forget((int)fd, 0);
		}
	}
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
	size_t len = qos_msg_begin(buf, sizeof buf, "Cleanup", 0);
	if (len + 1 >= sizeof buf)
		return;
	buf[len++] = '\n';
	if (qos_wire_started())
		qos_tell(buf, len);
}
