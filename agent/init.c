/* qosd protocol agent: its start: configuration from the environment, the real libc functions
 * resolved once (dlsym RTLD_NEXT), the fork handlers of every module, and the Cleanup line at
 * exit. Nothing here talks to the daemon before the program's first inet socket. */
#define _GNU_SOURCE
#include "agent.h"
#include "fdtable.h"
#include "msg.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct qos_cfg qos_cfg;
struct qos_real qos_real;

__thread int qos_in_agent;
pthread_once_t qos_init_once = PTHREAD_ONCE_INIT;

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
	qos_creds_atfork_child();
	qos_fd_atfork_child();
	qos_msg_atfork_child();
	qos_wire_atfork_child();
}

void qos_init(void)
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
	long ms = t ? strtol(t, NULL, 10) : 0;
	qos_cfg.timeout_given = ms > 0 && ms <= 60000;
	qos_cfg.timeout_ms = qos_cfg.timeout_given ? (int)ms : QOS_DEFAULT_TIMEOUT_MS;
	const char *d = secure_getenv("QOSD_DEBUG");
	qos_cfg.debug = d && *d && strcmp(d, "0") != 0;
	const char *c = secure_getenv("QOSD_CACHE");
	qos_cfg.cache = !(c && strcmp(c, "0") == 0);
	const char *rg = secure_getenv("QOSD_RING");
	qos_cfg.ring = !(rg && strcmp(rg, "0") == 0);
	const char *off = secure_getenv("QOSD_DISABLE");
	qos_cfg.disabled = (off && *off && strcmp(off, "0") != 0) || !qos_real.socket ||
			   !qos_real.connect || !qos_real.close || !qos_real.setsockopt;
	qos_wire_init();
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

__attribute__((constructor)) static void agent_startup(void) { qos_ensure_init(); }

/* Cleanup: the process is exiting (paper figure 3); only if it ever talked to the daemon. */
__attribute__((destructor)) static void agent_cleanup(void)
{
	if (qos_cfg.disabled || qos_in_agent)
		return;
	char buf[QOS_MAX_MSG];
	size_t len = qos_msg_cleanup(buf, sizeof buf);
	if (len && qos_wire_started())
		qos_tell(buf, len);
}
