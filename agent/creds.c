/* qosd protocol agent: who the process is, for whom it may ask and when that changes.
 * A privileged program (AT_SECURE) trusts only root; a process that changes its uids or gids
 * must reach the daemon anew, since the daemon knows it by its connection's SO_PEERCRED. */
#define _GNU_SOURCE
#include "agent.h"

#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <sys/auxv.h>
#include <unistd.h>

/* The credential epoch: bumped after every set*id call below. Each thread's connection and
 * decision cache remember the epoch they were made in and are dropped when it moved, so the
 * cached fast path pays a memory load, not a system call, to notice a changed user.
 * Interposing is exact for changes made through libc, which is how programs change users
 * (glibc then changes every thread's credentials, and the epoch is process-wide). A change
 * made with a raw system call is caught by qos_creds_moved() when the thread next asks. */
static _Atomic unsigned epoch;

/* Whether the kernel runs this program in secure mode: setuid/setgid, or file capabilities. */
int qos_creds_secure(void)
{
	return getauxval(AT_SECURE) != 0;
}

unsigned qos_creds_epoch(void)
{
	return __atomic_load_n(&epoch, __ATOMIC_ACQUIRE);
}

static void changed(void)
{
	__atomic_fetch_add(&epoch, 1, __ATOMIC_RELEASE);
}

void qos_creds_now(struct qos_ids *ids)
{
	uid_t su;
	gid_t sg;
	getresuid(&ids->ruid, &ids->euid, &su);
	getresgid(&ids->rgid, &ids->egid, &sg);
}

/* Whether the real or effective ids differ from those in was (a change made behind libc's
 * back); if so the epoch moves, for every thread's connection and cache. Two system calls:
 * only on the way to a question, which costs a round trip anyway. */
int qos_creds_moved(const struct qos_ids *was)
{
	struct qos_ids now;
	qos_creds_now(&now);
	if (now.ruid == was->ruid && now.euid == was->euid && now.rgid == was->rgid && now.egid == was->egid)
		return 0;
	changed();
	return 1;
}

static pid_t self_pid;
/* the uid, and 1 + the epoch it was read in (0: not read), in one word */
static _Atomic unsigned long long self_uid;

pid_t qos_self_pid(void)
{
	pid_t p = __atomic_load_n(&self_pid, __ATOMIC_RELAXED);
	if (!p)
		__atomic_store_n(&self_pid, p = getpid(), __ATOMIC_RELAXED);
	return p;
}

uid_t qos_self_uid(void)
{
	unsigned long long v = __atomic_load_n(&self_uid, __ATOMIC_RELAXED);
	unsigned long long e = (unsigned long long)qos_creds_epoch() + 1;
	if (v >> 32 != e) {
		v = e << 32 | getuid();
		__atomic_store_n(&self_uid, v, __ATOMIC_RELAXED);
	}
	return (uid_t)(v & 0xffffffffu);
}

/* In a forked child: another pid (the uid stays, and so does the epoch). */
void qos_creds_atfork_child(void) { self_pid = 0; }

/* Whose daemon (socket owner) or generation file we believe: root's; outside secure mode
 * also our own user's (a user may run qosd for their own programs). In a setuid or
 * file-capability program the caller is not who the program runs for, so theirs is not. */
int qos_creds_trusted(uid_t owner)
{
	return owner == 0 || (!qos_cfg.secure && owner == getuid());
}

/* ---- the interposed calls: the real one, then the epoch (after: a thread that sees the new
 * epoch reconnects with the new credentials) ---- */

static struct {
	int (*setuid)(uid_t);
	int (*seteuid)(uid_t);
	int (*setreuid)(uid_t, uid_t);
	int (*setresuid)(uid_t, uid_t, uid_t);
	int (*setgid)(gid_t);
	int (*setegid)(gid_t);
	int (*setregid)(gid_t, gid_t);
	int (*setresgid)(gid_t, gid_t, gid_t);
	int (*setgroups)(size_t, const gid_t *);
} real;

/* Called from the constructor; again by a call made before it ran (another library's). */
void qos_creds_init(void)
{
#define R(name) real.name = dlsym(RTLD_NEXT, #name)
	R(setuid); R(seteuid); R(setreuid); R(setresuid); R(setgid); R(setegid); R(setregid);
	R(setresgid); R(setgroups);
#undef R
}

#define SETID(name, params, args)                                                                   \
	QOS_EXPORT int name params                                                                 \
	{                                                                                          \
		if (!real.name)                                                                    \
			qos_creds_init();                                                          \
		if (!real.name) /* not reachable from a preloaded agent: libc comes after it */ \
			return errno = ENOSYS, -1;                                                 \
		int ret = real.name args;                                                          \
		changed();                                                                         \
		return ret;                                                                        \
	}

SETID(setuid, (uid_t u), (u))
SETID(seteuid, (uid_t e), (e))
SETID(setreuid, (uid_t r, uid_t e), (r, e))
SETID(setresuid, (uid_t r, uid_t e, uid_t s), (r, e, s))
SETID(setgid, (gid_t g), (g))
SETID(setegid, (gid_t e), (e))
SETID(setregid, (gid_t r, gid_t e), (r, e))
SETID(setresgid, (gid_t r, gid_t e, gid_t s), (r, e, s))
/* The daemon does not know supplementary groups today; a process changing them is changing
 * who it is, though, and one reconnect is cheap. */
SETID(setgroups, (size_t n, const gid_t *list), (n, list))
