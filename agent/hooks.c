/* qosd protocol agent (libqosagent.so): interposes the socket control calls of an unmodified
 * program (LD_PRELOAD), asks the policy daemon how to treat each socket and applies the
 * answer with setsockopt before the first packet leaves (paper sections 4.1, 4.1.3). This file
 * is the interposed entry points only: each calls the real function and hands the agent's
 * part to ask.c (asking, answers), dgram.c (datagram destinations) and wire.c (its own
 * connection). Data-path calls are never touched; on any failure the real call proceeds. */
#define _GNU_SOURCE
#include "agent.h"
#include "ask.h"
#include "dgram.h"
#include "fdtable.h"
#include "marks.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ENTER(realfn, ...)                                                                          \
	qos_ensure_init();                                                                             \
	if (qos_in_agent || qos_cfg.disabled)                                                          \
		return QOS_REAL(realfn, __VA_ARGS__)

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
		qos_in_agent++;
		int deny = qos_socket_now(fd, s);
		qos_in_agent--;
		if (deny) {
			qos_forget(fd, 1);
			QOS_REAL(close, fd);
			errno = deny;
			return -1;
		}
	}
	errno = saved;
	return fd;
}

QOS_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t salen)
{
	ENTER(connect, fd, sa, salen);
	if (qos_ask_first("Connect", fd, sa, salen) != 0)
		return -1;
	int r = QOS_REAL(connect, fd, sa, salen);
	/* A datagram socket's default destination: its datagrams without an address carry the
	 * socket-level mark (restored after a datagram to another destination); AF_UNSPEC
	 * dissolves the association. */
	struct fdst *s = r == 0 && sa ? fdst_get(fd, 0) : NULL;
	if (s && (s->flags & F_TRACKED) && s->type == SOCK_DGRAM) {
		pthread_mutex_lock(stripe(fd));
		s->flags = (uint16_t)(qos_is_inet(sa) ? s->flags | F_CONNECTED : s->flags & ~F_CONNECTED);
		pthread_mutex_unlock(stripe(fd));
	}
	return r;
}

QOS_EXPORT int bind(int fd, const struct sockaddr *sa, socklen_t salen)
{
	ENTER(bind, fd, sa, salen);
	if (qos_ask_first("Bind", fd, sa, salen) != 0)
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
		qos_in_agent++;
		int ok = qos_ask_ints("Listen", fd, s, 1, &backlog, &a) == 0;
		qos_in_agent--;
		if (ok && qos_obey(fd, s, &a) != 0)
			return -1;
	}
	errno = saved;
	return QOS_REAL(listen, fd, backlog);
}

/* After accept/accept4 returned nfd (the real call's errno is kept). */
static int after_accept(int lfd, int nfd, struct sockaddr *sa, socklen_t *salen)
{
	if (nfd < 0)
		return nfd;
	int saved = errno;
	int r = qos_accepted(lfd, nfd, sa, salen);
	if (r >= 0)
		errno = saved;
	return r;
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
		qos_forget(fd, 1);
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
		qos_tell_fd("Shutdown", fd, 1, &how, NULL);
		errno = saved;
	}
	return r;
}

QOS_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *sa, socklen_t salen)
{
	ENTER(sendto, fd, buf, len, flags, sa, salen);
	struct fdst *s;
	int deny = qos_is_inet(sa) ? qos_dgram_before_send(fd, sa, salen, &s) : (s = NULL, 0);
	if (deny) {
		errno = deny;
		return -1;
	}
	ssize_t r = QOS_REAL(sendto, fd, buf, len, flags, sa, salen);
	if (s)
		qos_dgram_after(fd, s);
	return r;
}

QOS_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ENTER(sendmsg, fd, msg, flags);
	struct fdst *s;
	int deny = msg && qos_is_inet(msg->msg_name) ? qos_dgram_before_send(fd, msg->msg_name, msg->msg_namelen, &s) : (s = NULL, 0);
	if (deny) {
		errno = deny;
		return -1;
	}
	ssize_t r = QOS_REAL(sendmsg, fd, msg, flags);
	if (s)
		qos_dgram_after(fd, s);
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
	struct fdst *s = qos_dgram_socket(fd);
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
			deny = qos_dgram_before(fd, s, h->msg_name, h->msg_namelen);
		else
			qos_dgram_after(fd, s); /* to the connected peer, with its mark */
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
	qos_dgram_after(fd, s);
	if (failed && done == 0)
		return -1;
	errno = saved;
	return (int)done;
}

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
	qos_app_mark(fd, level, opt, v);
	errno = saved;
	return r;
}

/* ---- descriptor replacement: keep our own connection safe ---- */

QOS_EXPORT int dup2(int oldfd, int newfd)
{
	ENTER(dup2, oldfd, newfd);
	int saved = errno;
	if (oldfd != newfd) {
		qos_forget(newfd, 1);
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
	qos_forget(newfd, 1);
	if (qos_wire_is_ours(newfd))
		qos_wire_fd_gone(newfd);
	errno = saved;
	return QOS_REAL(dup3, oldfd, newfd, flags);
}

static void forget_untold(int fd) { qos_forget(fd, 0); }

static void range_gone(unsigned first, unsigned last)
{
	qos_fd_each(first, last, forget_untold);
	qos_wire_range_gone(first, last);
}

QOS_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	qos_ensure_init();
	if (!qos_in_agent && !(flags & 4 /* CLOSE_RANGE_CLOEXEC */) && first <= last)
		range_gone(first, last);
	if (qos_real.close_range)
		return qos_real.close_range(first, last, flags);
	return (int)syscall(SYS_close_range, first, last, flags);
}

QOS_EXPORT void closefrom(int lowfd)
{
	qos_ensure_init();
	if (!qos_in_agent && lowfd >= 0)
		range_gone((unsigned)lowfd, ~0u);
	if (qos_real.closefrom)
		qos_real.closefrom(lowfd);
	else
		syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0);
}
