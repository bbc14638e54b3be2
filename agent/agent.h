/* qosd protocol agent: declarations shared by its modules: configuration and start (init.c),
 * the real libc functions, the daemon connection (wire.c) and the process's credentials
 * (creds.c). The descriptor table, the messages, the decision cache, asking, marks and
 * datagram destinations have their own headers. */
#ifndef QOS_AGENT_H
#define QOS_AGENT_H

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

/* The library is built with -fvisibility=hidden: only what QOS_EXPORT marks (the interposed
 * libc functions) is visible to the host process; the agent's internals stay its own. */
#define QOS_EXPORT __attribute__((visibility("default")))

#define QOS_PROTOCOL_VERSION 1
#define QOS_MAX_CMD 4000        /* command line bytes sent; the daemon reads /proc itself */
#define QOS_MAX_MSG 20000       /* one request line, worst case after quoting */
#define QOS_MAX_REPLY 512       /* one reply line; anything longer is garbage */
#define QOS_BACKOFF_MIN_MS 100
#define QOS_BACKOFF_MAX_MS 5000
#define QOS_DEFAULT_SOCKET "/run/qosd/agent.sock"
#define QOS_DEFAULT_TIMEOUT_MS 50

struct qos_cfg {
	char socket_path[108];
	int timeout_ms;
	int timeout_given; /* QOSD_TIMEOUT_MS set (never in secure mode): it wins over the daemon's */
	int debug;
	int disabled;
	int cache; /* reuse decisions the daemon allows to (QOSD_CACHE=0 turns it off) */
	int ring;  /* notifications through the shared ring (QOSD_RING=0: as lines) */
	int secure; /* AT_SECURE: setuid/setgid or file capabilities; only root is trusted */
};
extern struct qos_cfg qos_cfg;

struct qos_real {
	int (*socket)(int, int, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*close)(int);
	int (*shutdown)(int, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*close_range)(unsigned int, unsigned int, int);
	void (*closefrom)(int);
};
extern struct qos_real qos_real;

/* Calls the real function name, or, if it could not be resolved, fails with ENOSYS as a
 * missing libc function would: the agent never calls through a null pointer. (close_range
 * and closefrom, younger than the rest, fall back to the system call instead.) */
#define QOS_REAL(name, ...) (qos_real.name ? qos_real.name(__VA_ARGS__) : (errno = ENOSYS, -1))

/* Set while the agent itself runs: its own calls of interposed functions pass straight through. */
extern __thread int qos_in_agent __attribute__((visibility("hidden")));
/* The agent is initialised once (init.c), at load or at the first interposed call. */
extern pthread_once_t qos_init_once;
void qos_init(void);
static inline void qos_ensure_init(void) { pthread_once(&qos_init_once, qos_init); }

static inline int qos_is_inet(const struct sockaddr *sa)
{
	return sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
}

/* The port (network order) and address (4 or 16 bytes into addr) of an inet sockaddr of
 * length len; -1 if it is not one, or too short. The decision cache and the datagram
 * destinations key on these. */
static inline int qos_inet_addr(const struct sockaddr *sa, socklen_t len, uint16_t *port, uint8_t addr[16])
{
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		*port = in->sin_port;
		memcpy(addr, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		*port = in6->sin6_port;
		memcpy(addr, &in6->sin6_addr, 16);
		return 0;
	}
	return -1;
}

long long qos_now_ns(void);
void qos_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int qos_ask(const char *req, size_t len, int nreq, char replies[][QOS_MAX_REPLY]);
int qos_tell(const char *msg, size_t len);
struct qos_note;
int qos_wire_note(const struct qos_note *n);
unsigned long long qos_wire_generation(void);
void qos_wire_saw_generation(unsigned long long gen);
#define QOS_GEN_ASK_AT_SOCKET 1ULL /* flags word: ask at socket() (src/daemon/generation.ts) */
int qos_wire_asks_at_socket(void);
unsigned qos_wire_fork_gen(void);
int qos_wire_maybe_up(void);
void qos_wire_init(void);
void qos_wire_fd_gone(int fd);
int qos_wire_is_ours(int fd);
void qos_wire_range_gone(unsigned first, unsigned last);
int qos_wire_started(void);
void qos_wire_atfork_prepare(void);
void qos_wire_atfork_parent(void);
void qos_wire_atfork_child(void);

struct qos_ids {
	uid_t ruid, euid;
	gid_t rgid, egid;
};
int qos_creds_secure(void);
void qos_creds_init(void);
unsigned qos_creds_epoch(void);
void qos_creds_now(struct qos_ids *ids);
int qos_creds_moved(const struct qos_ids *was);
int qos_creds_trusted(uid_t owner);
/* This process's pid and real uid for the lines it sends, read once (again in a forked child,
 * and the uid after a change of credentials): the daemon takes both from the kernel anyway. */
pid_t qos_self_pid(void);
uid_t qos_self_uid(void);
void qos_creds_atfork_child(void);

#endif
