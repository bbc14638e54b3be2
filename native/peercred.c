/* qosd daemon native helper: what Node cannot do on the agent socket.
 * - peercred(fd): the peer credentials (SO_PEERCRED) of a connected Unix socket; the daemon
 *   needs them because a client's own claims are not trusted. With them, the start time of
 *   the process that connected, read without a race through SO_PEERPIDFD (the kernel's
 *   reference to that very process, Linux 6.5): /proc/PID/stat is read, then the pidfd must
 *   still name a live process, so the pid cannot have been given to another process in
 *   between. start is -1 when the process is gone (a connection nobody can be held to).
 * - peergroups(fd): the peer's supplementary groups (SO_PEERGROUPS), for the admin socket.
 * - credsOf(pid): the effective uid and gid a process has now (/proc/PID/status), for a
 *   process that changed them after connecting (SO_PEERCRED is fixed at connect).
 * - raiseNofile(n): the descriptor limit raised to n (soft and hard), or as far as allowed.
 * - acceptPending(fd, max): accepts every connection already queued on a listening socket.
 *   libuv accepts one Unix-socket connection per event-loop turn (measured: 64 queued
 *   connections take 64 turns), so a burst of new threads would wait behind everything
 *   else the loop does; the daemon drains the queue at the first one instead.
 * - niceThread(n): the calling thread's own nice value (Linux schedules threads, not
 *   processes): policy-script workers run below the event loop, so a script spinning to its
 *   deadline on both cores does not starve the daemon's answers.
 * - sendText(sock, text[, fd]): a reply written on an agent's socket without Node's stream
 *   machinery, with a descriptor if given.
 * - ringCreate(bytes), ringRelease(buffer): an agent connection's
 *   notification ring (docs/protocol.md): shared memory (a sealed memfd: the agent can neither
 *   shrink nor grow it, so reading it never faults), mapped here as an ArrayBuffer, and passed
 *   to the agent with the reply to its Ring request (SCM_RIGHTS, which Node's sockets do not
 *   send). Released explicitly: the buffer is detached first, so no JavaScript can read the
 *   memory after it is unmapped. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* Start time (field 22 of /proc/PID/stat, clock ticks since boot), or -1. */
static long long start_time(int pid)
{
	char path[32], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
	if (!p)
		return -1;
	p += 2; /* field 3 */
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return p ? strtoll(p, NULL, 10) : -1;
}

/* The connected process's start time, or -1 if it is gone. Without SO_PEERPIDFD (older
 * kernels) the pid is read as it is, which a pid reused in between would fool. */
static long long peer_start(int sock, int pid)
{
	int pidfd = -1;
	socklen_t l = sizeof pidfd;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &l) != 0 || pidfd < 0)
		return start_time(pid);
	long long st = start_time(pid);
	if (st >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) != 0)
		st = -1; /* exited: what /proc showed may already be another process */
	close(pidfd);
	return st;
}

/* Reads the call's first n arguments as 32-bit integers into out; 0, or -1 with a TypeError
 * saying usage thrown. */
static int int32_args(napi_env env, napi_callback_info info, size_t n, int32_t *out, const char *usage)
{
	size_t argc = n;
	napi_value argv[2];
	int ok = n <= 2 && napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= n;
	for (size_t i = 0; ok && i < n; i++)
		ok = napi_get_value_int32(env, argv[i], &out[i]) == napi_ok;
	if (!ok)
		napi_throw_type_error(env, NULL, usage);
	return ok ? 0 : -1;
}

static napi_value peercred(napi_env env, napi_callback_info info)
{
	napi_value out, v;
	int32_t fd = -1;
	if (int32_args(env, info, 1, &fd, "peercred(fd): fd must be a number") != 0)
		return NULL;
	struct ucred c;
	socklen_t l = sizeof c;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &l) != 0) {
		napi_get_null(env, &out);
		return out;
	}
	napi_create_object(env, &out);
	napi_create_int32(env, c.pid, &v);
	napi_set_named_property(env, out, "pid", v);
	napi_create_uint32(env, c.uid, &v);
	napi_set_named_property(env, out, "uid", v);
	napi_create_uint32(env, c.gid, &v);
	napi_set_named_property(env, out, "gid", v);
	napi_create_double(env, (double)peer_start(fd, c.pid), &v);
	napi_set_named_property(env, out, "start", v);
	return out;
}

/* peergroups(fd) -> [gid, ...] or null */
static napi_value peergroups(napi_env env, napi_callback_info info)
{
	napi_value out, v;
	int32_t fd = -1;
	if (int32_args(env, info, 1, &fd, "peergroups(fd): fd must be a number") != 0)
		return NULL;
	gid_t g[1024];
	socklen_t l = sizeof g;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &l) != 0) {
		napi_get_null(env, &out);
		return out;
	}
	napi_create_array(env, &out);
	for (uint32_t i = 0; i < l / sizeof g[0]; i++) {
		napi_create_uint32(env, g[i], &v);
		napi_set_element(env, out, i, v);
	}
	return out;
}

/* credsOf(pid) -> { uid, gid, start } (effective ids now) or null if the process is gone */
static napi_value creds_of(napi_env env, napi_callback_info info)
{
	napi_value out, v;
	int32_t pid = 0;
	if (int32_args(env, info, 1, &pid, "credsOf(pid): pid must be a number") != 0)
		return NULL;
	char path[32], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	if (fd >= 0)
		close(fd);
	unsigned long ids[2][4];
	char *u = n > 0 ? (buf[n] = '\0', strstr(buf, "\nUid:")) : NULL;
	char *g = n > 0 ? strstr(buf, "\nGid:") : NULL;
	if (!u || !g || sscanf(u, "\nUid: %lu %lu %lu %lu", &ids[0][0], &ids[0][1], &ids[0][2], &ids[0][3]) != 4 ||
	    sscanf(g, "\nGid: %lu %lu %lu %lu", &ids[1][0], &ids[1][1], &ids[1][2], &ids[1][3]) != 4) {
		napi_get_null(env, &out);
		return out;
	}
	napi_create_object(env, &out);
	napi_create_uint32(env, (uint32_t)ids[0][1], &v);
	napi_set_named_property(env, out, "uid", v);
	napi_create_uint32(env, (uint32_t)ids[1][1], &v);
	napi_set_named_property(env, out, "gid", v);
	napi_create_double(env, (double)start_time(pid), &v);
	napi_set_named_property(env, out, "start", v);
	return out;
}

/* raiseNofile(n) -> the soft descriptor limit now */
static napi_value raise_nofile(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out;
	int64_t want = 0;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    napi_get_value_int64(env, argv[0], &want) != napi_ok) {
		napi_throw_type_error(env, NULL, "raiseNofile(n): n must be a number");
		return NULL;
	}
	struct rlimit r;
	getrlimit(RLIMIT_NOFILE, &r);
	if ((int64_t)r.rlim_cur < want) {
		struct rlimit up = {.rlim_cur = (rlim_t)want, .rlim_max = r.rlim_max > (rlim_t)want ? r.rlim_max : (rlim_t)want};
		if (setrlimit(RLIMIT_NOFILE, &up) != 0) { /* not privileged: as far as the hard limit */
			up.rlim_cur = r.rlim_max < (rlim_t)want ? r.rlim_max : (rlim_t)want;
			up.rlim_max = r.rlim_max;
			setrlimit(RLIMIT_NOFILE, &up);
		}
		getrlimit(RLIMIT_NOFILE, &r);
	}
	napi_create_double(env, (double)r.rlim_cur, &out);
	return out;
}

/* acceptPending(listenFd, max) -> [fd, fd, ...]: non-blocking, close-on-exec descriptors. */
static napi_value accept_pending(napi_env env, napi_callback_info info)
{
	napi_value out, v;
	int32_t a[2] = {-1, 0};
	if (int32_args(env, info, 2, a, "acceptPending(fd, max): numbers expected") != 0)
		return NULL;
	int32_t lfd = a[0], max = a[1];
	napi_create_array(env, &out);
	for (uint32_t n = 0; (int32_t)n < max;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break; /* EAGAIN: the queue is empty; anything else: libuv will see it too */
		}
		napi_create_int32(env, fd, &v);
		napi_set_element(env, out, n++, v);
	}
	return out;
}

/* niceThread(n) -> true if the calling thread's nice value is now n. */
static napi_value nice_thread(napi_env env, napi_callback_info info)
{
	napi_value out;
	int32_t n = 0;
	if (int32_args(env, info, 1, &n, "niceThread(n): n must be a number") != 0)
		return NULL;
	int ok = setpriority(PRIO_PROCESS, (id_t)gettid(), n) == 0;
	napi_get_boolean(env, ok, &out);
	return out;
}

/* ---- notification rings ---- */

struct ring_map {
	void *addr;
	size_t size;
	int released;
};

static void ring_finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)data;
	struct ring_map *m = hint;
	if (!m->released)
		munmap(m->addr, m->size);
	free(m);
}

/* ringCreate(bytes) -> [fd, ArrayBuffer] or null (errno in the log is the daemon's business:
 * without a ring the agent sends lines, as before). The fd is close-on-exec; the caller closes
 * it once sent. */
static napi_value ring_create(napi_env env, napi_callback_info info)
{
	napi_value out, v, ab;
	int32_t bytes = 0;
	if (int32_args(env, info, 1, &bytes, "ringCreate(bytes): bytes must be a number") != 0)
		return NULL;
	napi_get_null(env, &out);
	if (bytes <= 0)
		return out;
	int fd = memfd_create("qosd-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return out;
	struct ring_map *m = calloc(1, sizeof *m);
	void *addr = MAP_FAILED;
	if (!m || ftruncate(fd, bytes) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0 ||
	    (addr = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		free(m);
		close(fd);
		return out;
	}
	m->addr = addr;
	m->size = (size_t)bytes;
	if (napi_create_external_arraybuffer(env, addr, m->size, ring_finalize, m, &ab) != napi_ok ||
	    napi_wrap(env, ab, m, NULL, NULL, NULL) != napi_ok) {
		munmap(addr, m->size);
		free(m);
		close(fd);
		return out;
	}
	napi_create_array_with_length(env, 2, &out);
	napi_create_int32(env, fd, &v);
	napi_set_element(env, out, 0, v);
	napi_set_element(env, out, 1, ab);
	return out;
}

/* ringRelease(buffer): detaches the buffer (its views read nothing from now on) and unmaps it. */
static napi_value ring_release(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	bool is_ab = false;
	void *data = NULL;
	size_t len = 0;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab) {
		napi_throw_type_error(env, NULL, "ringRelease(buffer): an ArrayBuffer from ringCreate expected");
		return NULL;
	}
	napi_get_arraybuffer_info(env, argv[0], &data, &len);
	/* the mapping's record, wrapped onto the buffer by ringCreate */
	struct ring_map *m = NULL;
	if (!data || !len || napi_remove_wrap(env, argv[0], (void **)&m) != napi_ok || !m || m->addr != data)
		return NULL; /* released already, or not a ring */
	/* Unmapped before the buffer is detached, both within this call (no JavaScript runs in
	 * between); detaching may run the finalizer, which then frees m without unmapping. */
	munmap(m->addr, m->size);
	m->released = 1;
	napi_detach_arraybuffer(env, argv[0]);
	return NULL;
}

/* sendText(sock, text[, fd]) -> bytes of text left unsent (0: all went), or -errno if none went
 * (-E2BIG: longer than this function takes; send it the usual way). Written at once, without
 * waiting: replies to an agent's lines when Node has nothing queued on sock (Node's own write of
 * a few bytes cost a fifth of a decision in its stream machinery), and the reply to Ring with
 * the ring's descriptor fd attached to its first byte (SCM_RIGHTS, which Node's sockets do not
 * send). */
static napi_value send_text(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3], out;
	int32_t sock = -1, fd = -1;
	char text[16384];
	size_t len = 0;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
	    napi_get_value_int32(env, argv[0], &sock) != napi_ok ||
	    napi_get_value_string_utf8(env, argv[1], text, sizeof text, &len) != napi_ok ||
	    (argc >= 3 && napi_get_value_int32(env, argv[2], &fd) != napi_ok)) {
		napi_throw_type_error(env, NULL, "sendText(sock, text[, fd]): a number, a string and a number expected");
		return NULL;
	}
	struct iovec iov = {.iov_base = text, .iov_len = len};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		memset(&u, 0, sizeof u);
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof u.buf;
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	ssize_t w = -1;
	if (len >= sizeof text - 1)
		errno = E2BIG; /* (maybe cut short: the caller sends it) */
	else
		do
			w = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (w < 0 && errno == EINTR);
	napi_create_int32(env, w < 0 ? -errno : (int32_t)(len - (size_t)w), &out);
	return out;
}

NAPI_MODULE_INIT()
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{"peercred", peercred},       {"acceptPending", accept_pending}, {"niceThread", nice_thread},
		{"peergroups", peergroups},   {"credsOf", creds_of},             {"raiseNofile", raise_nofile},
		{"ringCreate", ring_create},  {"ringRelease", ring_release},     {"sendText", send_text},
	};
	for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
		napi_value fn;
		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn);
		napi_set_named_property(env, exports, fns[i].name, fn);
	}
	return exports;
}
