/* qosd protocol agent: who the process is, and so whose daemon it may ask. A privileged
 * program (AT_SECURE) trusts only root: its environment and real user are the caller's. */
#define _GNU_SOURCE
#include "agent.h"

#include <sys/auxv.h>
#include <unistd.h>

/* Whether the kernel runs this program in secure mode: setuid/setgid, or file capabilities. */
int qos_creds_secure(void)
{
	return getauxval(AT_SECURE) != 0;
}

/* Whose daemon (socket owner) or generation file we believe: root's; outside secure mode
 * also our own user's (a user may run qosd for their own programs). In a setuid or
 * file-capability program the caller is not who the program runs for, so theirs is not. */
int qos_creds_trusted(uid_t owner)
{
	return owner == 0 || (!qos_cfg.secure && owner == getuid());
}
