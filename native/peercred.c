/* qosd daemon native helper: what Node cannot do on the agent socket.
 * - peercred(fd): the peer credentials (SO_PEERCRED) of a connected Unix socket; the daemon
 *   needs them because a client's own claims are not trusted.
 * - acceptPending(fd, max): accepts every connection already queued on a listening socket.
 *   libuv accepts one Unix-socket connection per event-loop turn (measured: 64 queued
 *   connections take 64 turns), so a burst of new threads would wait behind everything
 *   else the loop does; the daemon drains the queue at the first one instead.
 * - niceThread(n): the calling thread's own nice value (Linux schedules threads, not
 *   processes): policy-script workers run below the event loop, so a script spinning to its
 *   deadline on both cores does not starve the daemon's answers. */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static napi_value peercred(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out, v;
	int32_t fd = -1;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
		napi_throw_type_error(env, NULL, "peercred(fd): fd must be a number");
		return NULL;
	}
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
	return out;
}

/* acceptPending(listenFd, max) -> [fd, fd, ...]: non-blocking, close-on-exec descriptors. */
static napi_value accept_pending(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], out, v;
	int32_t lfd = -1, max = 0;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
	    napi_get_value_int32(env, argv[0], &lfd) != napi_ok || napi_get_value_int32(env, argv[1], &max) != napi_ok) {
		napi_throw_type_error(env, NULL, "acceptPending(fd, max): numbers expected");
		return NULL;
	}
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
	size_t argc = 1;
	napi_value argv[1], out;
	int32_t n = 0;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    napi_get_value_int32(env, argv[0], &n) != napi_ok) {
		napi_throw_type_error(env, NULL, "niceThread(n): n must be a number");
		return NULL;
	}
	int ok = setpriority(PRIO_PROCESS, (id_t)gettid(), n) == 0;
	napi_get_boolean(env, ok, &out);
	return out;
}

NAPI_MODULE_INIT()
{
	napi_value fn;
	napi_create_function(env, "peercred", NAPI_AUTO_LENGTH, peercred, NULL, &fn);
	napi_set_named_property(env, exports, "peercred", fn);
	napi_create_function(env, "acceptPending", NAPI_AUTO_LENGTH, accept_pending, NULL, &fn);
	napi_set_named_property(env, exports, "acceptPending", fn);
	napi_create_function(env, "niceThread", NAPI_AUTO_LENGTH, nice_thread, NULL, &fn);
	napi_set_named_property(env, exports, "niceThread", fn);
	return exports;
}
