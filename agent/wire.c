/* qosd protocol agent: the connection to the policy daemon.
 * One Unix stream connection per thread, request lines out, reply lines in, with a
 * per-request deadline; any failure disables asking for a back-off period (paper 4.1.1). */
#define _GNU_SOURCE
#include "agent.h"
#include "msg.h"
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	unsigned gen;   /* fork generation the connection belongs to */
	unsigned epoch; /* credential epoch it was opened in (creds.c) */
	struct qos_ids ids; /* and the ids then: the daemon's SO_PEERCRED of us */
	dev_t dev;
	ino_t ino;
	struct qos_ring ring; /* its notification ring, if the daemon gave one */
	int ring_asked;       /* Ring was sent on it (once per connection) */
	int passed_fd;        /* a descriptor that came with the replies (the ring's), or -1 */
	long long lag_since;  /* since when the daemon has left a record of ours unread, or 0 */
	size_t rlen; /* bytes buffered in rbuf */
	char rbuf[QOS_MAX_REPLY];
};

static __thread struct conn tconn = {.fd = -1, .passed_fd = -1};
static pthread_key_t conn_key;

/* Every open connection, so a forked child can close its parent's (all threads'). */
#define REG_MAX 4096
static struct {
	int fd;
	dev_t dev;
	ino_t ino;
	void *ring; /* its ring's mapping (unmapped in a forked child) */
	size_t ring_bytes;
} reg[REG_MAX];
static int reg_n;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;

/* Our descriptors as a bitmap, so the application's every close() checks without a lock. */
#define OURS_MAX 65536
static _Atomic unsigned long ours[OURS_MAX / (8 * sizeof(unsigned long))];
#define OURS_BITS (8 * sizeof(unsigned long))
static void ours_set(int fd, int on)
{
	if (fd < 0 || fd >= OURS_MAX)
		return;
	unsigned long bit = 1UL << ((unsigned)fd % OURS_BITS);
	if (on)
		__atomic_fetch_or(&ours[(unsigned)fd / OURS_BITS], bit, __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_and(&ours[(unsigned)fd / OURS_BITS], ~bit, __ATOMIC_SEQ_CST);
}

static _Atomic unsigned fork_gen;
static _Atomic long long down_until_ns;
static _Atomic int backoff_ms = QOS_BACKOFF_MIN_MS;
/* The Startup line was sent for credential epoch startup_for - 1; 0: not yet. The daemon
 * reads a process afresh at its Startup, so one goes out again after the uids or gids change. */
static _Atomic unsigned startup_for;
static _Atomic int daemon_ok = 1; /* 0 once the daemon proved unusable for good */

/* The daemon's policy generation ([0]), flags ([1]) and the deadline it gives agents in ms
 * ([2], qos daemon --agent-timeout-ms), mapped read-only from "<socket>.gen"
 * (docs/protocol.md). An older daemon's shorter file reads 0 for what it lacks: the rest of a
 * mapped page past the end of a file reads as zeros. */
#define QOS_GEN_WORDS 3
static const volatile unsigned long long *gen_map;
static _Atomic int gen_tried;
/* The mapped file (a daemon removes it when it stops and the next one makes a new one): the
 * mapping is swapped for the new file's after a reconnect. An old mapping is never unmapped
 * (another thread may be reading it), so swaps are bounded. */
static dev_t gen_dev;
static ino_t gen_ino;
static _Atomic int gen_swaps;
#define QOS_GEN_MAX_SWAPS 64

long long qos_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

void qos_debug(const char *fmt, ...)
{
	if (!qos_cfg.debug)
		return;
	char buf[512];
	int n = snprintf(buf, sizeof buf, "qosagent[%d]: ", (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = strnlen(buf, sizeof buf - 2);
	buf[len++] = '\n';
	ssize_t w = write(2, buf, len);
	(void)w;
}

/* ---- connection management ---- */

static void reg_add(int fd, dev_t dev, ino_t ino)
{
	pthread_mutex_lock(&reg_lock);
	if (reg_n < REG_MAX) {
		reg[reg_n].fd = fd;
		reg[reg_n].dev = dev;
		reg[reg_n].ino = ino;
		reg[reg_n].ring = NULL;
		reg_n++;
	}
	ours_set(fd, 1);
	pthread_mutex_unlock(&reg_lock);
}

static void reg_ring(int fd, void *ring, size_t bytes)
{
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < reg_n; i++)
		if (reg[i].fd == fd)
			reg[i].ring = ring, reg[i].ring_bytes = bytes;
	pthread_mutex_unlock(&reg_lock);
}

static void reg_del(int fd)
{
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < reg_n; i++)
		if (reg[i].fd == fd) {
			reg[i] = reg[--reg_n];
			break;
		}
	ours_set(fd, 0);
	pthread_mutex_unlock(&reg_lock);
}

/* Is fd still the socket we opened? The application may have closed it behind our back
 * (raw syscall, close_range) and reused the number: then it is not ours to touch. */
static int still_ours(int fd, dev_t dev, ino_t ino)
{
	struct stat st;
	return fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

/* Forgets c's ring and any descriptor that came with its replies (only c's own thread runs
 * this: nobody else writes the ring). */
static void conn_forget_ring(struct conn *c)
{
	qos_ring_detach(&c->ring);
	c->ring_asked = 0;
	if (c->passed_fd >= 0)
		QOS_REAL(close, c->passed_fd);
	c->passed_fd = -1;
}

static void conn_drop(struct conn *c, int close_it)
{
	if (c->fd >= 0) {
		reg_del(c->fd);
		if (close_it && still_ours(c->fd, c->dev, c->ino))
			QOS_REAL(close, c->fd);
	}
	c->fd = -1;
	c->rlen = 0;
	conn_forget_ring(c);
}

static void thread_exit(void *unused)
{
	(void)unused;
	if (tconn.gen == fork_gen)
		conn_drop(&tconn, 1);
}

void qos_wire_init(void)
{
	pthread_key_create(&conn_key, thread_exit);
}

/* Called when the application closes or dup2()s over fd: if it is one of our connections,
 * forget it without closing (the application's call does that). */
void qos_wire_fd_gone(int fd)
{
	if (tconn.fd == fd)
		tconn.fd = -1, tconn.rlen = 0;
	reg_del(fd);
}

int qos_wire_is_ours(int fd)
{
	if (fd < 0 || fd >= OURS_MAX)
		return 0;
	return (ours[(unsigned)fd / OURS_BITS] >> ((unsigned)fd % OURS_BITS)) & 1;
}

/* close_range/closefrom over [first, last]: forget every connection of ours in it. */
void qos_wire_range_gone(unsigned first, unsigned last)
{
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < reg_n;) {
		if ((unsigned)reg[i].fd >= first && (unsigned)reg[i].fd <= last) {
			ours_set(reg[i].fd, 0);
			reg[i] = reg[--reg_n];
		} else {
			i++;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	if (tconn.fd >= 0 && (unsigned)tconn.fd >= first && (unsigned)tconn.fd <= last)
		tconn.fd = -1, tconn.rlen = 0;
}

/* Maps the generation file once per process (the mapping survives fork): tried at the first
 * inet socket (qos_wire_asks_at_socket) and, until it is mapped, again after each Startup the
 * daemon answered (again: a process that made its first socket before the daemon started
 * would otherwise never map it). Only a file owned by root or (outside secure mode) by us
 * counts, like the daemon itself. */
static void map_generation(int again)
{
	if (__atomic_exchange_n(&gen_tried, 1, __ATOMIC_SEQ_CST) && !again)
		return;
	const volatile unsigned long long *old = gen_map;
	/* mapped already: looked at again only when it says "stopped" (a new daemon answered) */
	if (old && (old[0] || gen_swaps >= QOS_GEN_MAX_SWAPS))
		return;
	char path[sizeof qos_cfg.socket_path + 8];
	snprintf(path, sizeof path, "%s.gen", qos_cfg.socket_path);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 8 &&
	    qos_creds_trusted(st.st_uid) && !(old && st.st_dev == gen_dev && st.st_ino == gen_ino)) {
		void *m = mmap(NULL, QOS_GEN_WORDS * sizeof *gen_map, PROT_READ, MAP_SHARED, fd, 0);
		if (m != MAP_FAILED) {
			if (__atomic_compare_exchange_n(&gen_map, &old, m, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
				gen_dev = st.st_dev, gen_ino = st.st_ino;
				if (old)
					gen_swaps++;
			} else {
				munmap(m, QOS_GEN_WORDS * sizeof *gen_map); /* another thread mapped it meanwhile */
			}
		}
	}
	QOS_REAL(close, fd);
}

/* The deadline of one request: QOSD_TIMEOUT_MS if given (not in a privileged program), else
 * the running daemon's (its generation file, a file only root or, outside secure mode, our
 * own user can have made), else the built-in 50 ms. */
static int timeout_ms(void)
{
	if (qos_cfg.timeout_given)
		return qos_cfg.timeout_ms;
	const volatile unsigned long long *m = gen_map;
	if (m && m[0]) {
		unsigned long long ms = m[2];
		if (ms >= 1 && ms <= 60000)
			return (int)ms;
	}
	return qos_cfg.timeout_ms;
}

unsigned long long qos_wire_generation(void)
{
	return gen_map ? gen_map[0] : 0;
}

/* A reply carried CACHE gen: a daemon is up. When the mapped file says "stopped", that daemon
 * has made a new one (the old was removed at its stop), which is mapped instead. Memory loads
 * only while the mapping is live. */
void qos_wire_saw_generation(unsigned long long gen)
{
	const volatile unsigned long long *m = gen_map;
	if (!m || m[0] || !gen)
		return;
	map_generation(1);
}

/* Whether the running daemon decides at the socket event, so that a new socket is asked about
 * at once (flags word bit 0). Memory loads only, once the file is mapped; a process pays the
 * mapping (four system calls) at its first inet socket. */
int qos_wire_asks_at_socket(void)
{
	if (!gen_tried && daemon_ok && !qos_cfg.disabled)
		map_generation(0);
	const volatile unsigned long long *m = gen_map;
	return m && m[0] && (m[1] & QOS_GEN_ASK_AT_SOCKET);
}

unsigned qos_wire_fork_gen(void) { return fork_gen; }

/* Whether this process has announced itself (so Cleanup is worth sending). */
int qos_wire_started(void) { return startup_for != 0; }

void qos_wire_atfork_prepare(void) { pthread_mutex_lock(&reg_lock); }

void qos_wire_atfork_parent(void) { pthread_mutex_unlock(&reg_lock); }

/* In the child: the parent's connections identify the parent (SO_PEERCRED), so close them
 * all; the child connects afresh and announces itself with its own pid. */
void qos_wire_atfork_child(void)
{
	for (int i = 0; i < reg_n; i++) {
		if (still_ours(reg[i].fd, reg[i].dev, reg[i].ino))
			QOS_REAL(close, reg[i].fd);
		if (reg[i].ring) /* the parent's threads' rings: the child writes none of them */
			munmap(reg[i].ring, reg[i].ring_bytes);
	}
	reg_n = 0;
	memset((void *)ours, 0, sizeof ours);
	tconn.fd = -1;
	tconn.rlen = 0;
	tconn.ring = (struct qos_ring){0}; /* unmapped above */
	conn_forget_ring(&tconn);
	fork_gen++;
	startup_for = 0;
	pthread_mutex_init(&reg_lock, NULL);
}

/* A failure suspends asking for the current back-off, which doubles only for a failure seen
 * after the previous pause ended: many threads timing out together are one failure. */
static void fail(struct conn *c, const char *why, long long started)
{
	long long now = qos_now_ns();
	long long until = down_until_ns;
	if (started >= until) {
		int b = backoff_ms;
		if (__atomic_compare_exchange_n(&down_until_ns, &until, now + (long long)b * 1000000LL, 0,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			backoff_ms = b * 2 > QOS_BACKOFF_MAX_MS ? QOS_BACKOFF_MAX_MS : b * 2;
			qos_debug("daemon unusable (%s after %lld ms): not asking for %d ms", why,
				  (now - started) / 1000000, b);
		}
	}
	conn_drop(c, 1);
}

static int conn_open(struct conn *c)
{
	conn_forget_ring(c); /* an earlier connection's (its descriptor went behind our back) */
	int fd = QOS_REAL(socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (fd < 3) { /* keep off stdin/stdout/stderr, which daemonising programs reopen */
		int hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		QOS_REAL(close, fd);
		if (hi < 0)
			return -1;
		fd = hi;
	}
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, qos_cfg.socket_path, strnlen(qos_cfg.socket_path, sizeof a.sun_path - 1));
	/* who we are as the connection is made (the kernel records it for the daemon): taken
	 * before, so a change racing with the connect is seen as a change later */
	c->epoch = qos_creds_epoch();
	qos_creds_now(&c->ids);
	if (QOS_REAL(connect, fd, (struct sockaddr *)&a, sizeof a) != 0) {
		QOS_REAL(close, fd);
		return -1;
	}
	/* Only trust a daemon run by root or (outside secure mode) by our own user; never ask
	 * ourselves (the daemon is itself a process that may carry the agent via
	 * /etc/ld.so.preload). */
	struct ucred peer;
	socklen_t pl = sizeof peer;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &pl) != 0 || peer.pid == getpid() ||
	    !qos_creds_trusted(peer.uid)) {
		qos_debug("not asking daemon pid %d uid %d", (int)peer.pid, (int)peer.uid);
		QOS_REAL(close, fd);
		daemon_ok = 0;
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		QOS_REAL(close, fd);
		return -1;
	}
	c->fd = fd;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->lag_since = 0;
	c->gen = fork_gen;
	c->rlen = 0;
	reg_add(fd, st.st_dev, st.st_ino);
	pthread_setspecific(conn_key, (void *)1);
	return 0;
}

/* Waits until fd is ready or the deadline passes. Past the deadline it still looks once
 * without waiting: a thread that was not scheduled for a while (64 busy threads on 2 cores)
 * must not call a reply that is already there a timeout. */
static int wait_fd(int fd, short ev, long long deadline)
{
	for (;;) {
		long long left = deadline - qos_now_ns();
		struct pollfd p = {.fd = fd, .events = ev};
		int ms = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
		int r = poll(&p, 1, ms);
		if (r == 0 && left <= 0)
			return 0;
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* Sends the n pieces of iov whole, in one system call when the socket has room: 0 sent; 1
 * nothing sent because the daemon's socket is full and the caller may skip this message
 * (may_skip); -1 failed. A line once begun is always finished (within the timeout), or the
 * stream would be corrupt. iov is consumed. */
static int send_iov(struct conn *c, struct iovec *iov, int n, long long deadline, int may_skip)
{
	size_t sent = 0;
	while (n > 0) {
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			sent += (size_t)w;
			size_t left = (size_t)w;
			for (; n > 0 && left >= iov->iov_len; iov++, n--)
				left -= iov->iov_len;
			if (n > 0) {
				iov->iov_base = (char *)iov->iov_base + left;
				iov->iov_len -= left;
			}
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && errno == EAGAIN) {
			if (sent == 0 && may_skip)
				return 1;
			if (deadline == 0)
				deadline = qos_now_ns() + (long long)timeout_ms() * 1000000LL;
			if (wait_fd(c->fd, POLLOUT, deadline) != 1)
				return -1;
		} else {
			return -1;
		}
	}
	return 0;
}

static int send_all(struct conn *c, const char *buf, size_t len, long long deadline, int may_skip)
{
	struct iovec v = {.iov_base = (void *)buf, .iov_len = len};
	return send_iov(c, &v, 1, deadline, may_skip);
}

/* Receives into c's buffer what the daemon sent, keeping a descriptor passed with it (the
 * ring's, with the reply to Ring) in c->passed_fd; any other is closed. */
static ssize_t recv_some(struct conn *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec v = {.iov_base = c->rbuf + c->rlen, .iov_len = sizeof c->rbuf - c->rlen};
	struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
	ssize_t r = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (r < 0 || m.msg_controllen == 0)
		return r;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
			if (c->passed_fd < 0)
				c->passed_fd = fd;
			else
				QOS_REAL(close, fd);
		}
	}
	return r;
}

/* Reads one reply line into line (NUL-terminated). 0 ok, -1 failure (*why says which). */
static int recv_line(struct conn *c, char *line, size_t cap, long long deadline, const char **why)
{
	for (;;) {
		char *nl = memchr(c->rbuf, '\n', c->rlen);
		if (nl) {
			size_t n = (size_t)(nl - c->rbuf);
			if (n >= cap)
				return *why = "reply too long", -1;
			memcpy(line, c->rbuf, n);
			line[n] = '\0';
			c->rlen -= n + 1;
			memmove(c->rbuf, nl + 1, c->rlen);
			return 0;
		}
		if (c->rlen == sizeof c->rbuf)
			return *why = "reply too long", -1; /* longer than any reply we accept: garbage */
		ssize_t r = recv_some(c);
		if (r > 0) {
			c->rlen += (size_t)r;
		} else if (r < 0 && errno == EINTR) {
			continue;
		} else if (r < 0 && errno == EAGAIN) {
			if (wait_fd(c->fd, POLLIN, deadline) != 1)
				return *why = "timeout", -1;
		} else {
			return *why = r == 0 ? "closed by the daemon" : "receive error", -1;
		}
	}
}

/* This thread's connection, opened if need be. During a back-off pause (the daemon failed
 * to answer in time) nobody asks, but a notification (asking = 0) may still go out on a
 * connection that is already open: telling never waits. */
static struct conn *usable_conn(int asking)
{
	if (!daemon_ok || qos_cfg.disabled)
		return NULL;
	int paused = down_until_ns && qos_now_ns() < down_until_ns;
	if (paused && asking)
		return NULL;
	struct conn *c = &tconn;
	if (c->fd >= 0 && (c->gen != fork_gen || !still_ours(c->fd, c->dev, c->ino))) {
		if (c->gen == fork_gen)
			reg_del(c->fd);
		c->fd = -1;
		c->rlen = 0;
	}
	/* The daemon knows this connection as who we were when it was opened: after a change
	 * of uids or gids, a new one (the decision cache goes too: agent.c). */
	if (c->fd >= 0 && (c->epoch != qos_creds_epoch() || (asking && qos_creds_moved(&c->ids)))) {
		qos_debug("credentials changed: reconnecting");
		conn_drop(c, 1);
	}
	if (c->fd < 0 && paused)
		return NULL;
	if (c->fd < 0 && conn_open(c) != 0) {
		if (daemon_ok)
			fail(c, "connect", qos_now_ns());
		return NULL;
	}
	return c;
}

/* The reply to Ring: the ring comes with it ("RING n" and the descriptor), or not ("RING 0",
 * or an ERROR from a daemon that predates rings): either way the connection goes on. */
static void take_ring(struct conn *c, const char *reply)
{
	long slots = qos_parse_ring(reply);
	int fd = c->passed_fd;
	c->passed_fd = -1;
	if (slots > 0 && fd >= 0 && qos_ring_attach(&c->ring, fd, slots) == 0)
		reg_ring(c->fd, c->ring.mem, (size_t)c->ring.slots * QOS_RING_SLOT);
	else if (fd >= 0)
		QOS_REAL(close, fd);
	qos_debug("notification ring: %s", c->ring.mem ? "mapped" : reply);
}

/* Sends the request lines in req (each ending in '\n'; nreq of them expect replies) and
 * fills replies[0..nreq). On a new connection Ring goes first, and Startup on the process's
 * first request, all in one send. Returns 0 when every reply arrived, -1 when the call must
 * proceed as without the agent. */
int qos_ask(const char *req, size_t len, int nreq, char replies[][QOS_MAX_REPLY])
{
	struct conn *c = usable_conn(1);
	if (!c)
		return -1;
	long long started = qos_now_ns();
	long long deadline = started + (long long)timeout_ms() * 1000000LL;
	unsigned had = startup_for, want = c->epoch + 1;
	int with_startup = had < want && __atomic_compare_exchange_n(&startup_for, &had, want, 0,
								       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	int with_ring = qos_cfg.ring && !c->ring_asked;
	char st[QOS_MAX_MSG], rg[64];
	struct iovec iov[3];
	int n = 0;
	if (with_ring) {
		size_t rl = qos_msg_ring(rg, sizeof rg);
		if (!rl)
			return -1;
		iov[n++] = (struct iovec){rg, rl};
		c->ring_asked = 1;
	}
	if (with_startup) {
		size_t sl = qos_msg_startup(st, sizeof st);
		if (!sl)
			return -1;
		iov[n++] = (struct iovec){st, sl};
	}
	iov[n++] = (struct iovec){(void *)req, len};
	if (send_iov(c, iov, n, deadline, 0) != 0) {
		fail(c, "send", started);
		return -1;
	}
	const char *why = "";
	char v[QOS_MAX_REPLY];
	if (with_ring) {
		if (recv_line(c, v, sizeof v, deadline, &why) != 0) {
			fail(c, why, started);
			return -1;
		}
		take_ring(c, v);
	}
	if (with_startup) {
		if (recv_line(c, v, sizeof v, deadline, &why) != 0) {
			fail(c, why, started);
			return -1;
		}
		if (qos_parse_version(v) != QOS_PROTOCOL_VERSION) {
			qos_debug("daemon speaks '%s', not VERSION %d: agent off", v, QOS_PROTOCOL_VERSION);
			daemon_ok = 0;
			conn_drop(c, 1);
			return -1;
		}
		map_generation(1);
	}
	for (int i = 0; i < nreq; i++) {
		if (recv_line(c, replies[i], QOS_MAX_REPLY, deadline, &why) != 0) {
			fail(c, why, started);
			return -1;
		}
	}
	if (c->passed_fd >= 0) { /* only the reply to Ring carries one */
		QOS_REAL(close, c->passed_fd);
		c->passed_fd = -1;
	}
	backoff_ms = QOS_BACKOFF_MIN_MS;
	return 0;
}

/* Writes a notification into this thread's ring, without a system call: 0 written; 1 dropped
 * (the ring is full: the daemon is behind, as with a full socket); -1 there is no ring to
 * write (no connection, none given, or the daemon let go of it): send the line instead. */
int qos_wire_note(const struct qos_note *n)
{
	struct conn *c = &tconn;
	if (!c->ring.mem || c->fd < 0 || c->gen != fork_gen || c->epoch != qos_creds_epoch() || !daemon_ok ||
	    qos_cfg.disabled)
		return -1;
	/* A daemon that died leaves its ring mapped and writes nothing to say so. One that reads
	 * our records is there; once it has left one unread for QOS_ALIVE_CHECK_MS, one look at
	 * the connection (and again every QOS_ALIVE_CHECK_MS while that lasts): no system call
	 * while the daemon keeps up. Gone: the line path finds no daemon, and the call goes
	 * unmarked, as without the agent. A stopped or busy daemon's connection is still open:
	 * the ring fills, then sheds. */
	if (qos_ring_caught_up(&c->ring)) {
		c->lag_since = 0;
	} else {
		long long now = qos_now_ns();
		if (!c->lag_since) {
			c->lag_since = now;
		} else if (now - c->lag_since > QOS_ALIVE_CHECK_MS * 1000000LL) {
			char b;
			ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
				qos_debug("daemon connection closed: notifications as lines");
				conn_drop(c, 1);
				return -1;
			}
			c->lag_since = now;
		}
	}
	int r = qos_ring_put(&c->ring, n);
	if (r < 0) {
		qos_debug("notification ring closed by the daemon: reconnecting");
		conn_drop(c, 1);
	}
	return r;
}

/* Fire-and-forget notification (Close, Shutdown, Cleanup, Cached): does not wait for the
 * daemon. 0 sent; 1 skipped because the daemon is behind (its socket is full: it sheds our
 * notifications, the connection stays); -1 the daemon is gone. */
int qos_tell(const char *msg, size_t len)
{
	struct conn *c = usable_conn(0);
	if (!c)
		return -1;
	int r = send_all(c, msg, len, 0, 1);
	if (r < 0)
		conn_drop(c, 1);
	return r;
}

/* Whether this thread could talk to the daemon now (used to skip building messages). */
int qos_wire_maybe_up(void)
{
	return daemon_ok && !qos_cfg.disabled && !(down_until_ns && qos_now_ns() < down_until_ns);
}
