/* qosd protocol agent: asking the daemon about a call and following its answer (ask.c). Each
 * returns with errno as it found it unless it says otherwise. */
#ifndef QOS_ASK_H
#define QOS_ASK_H

#include <sys/socket.h>

#include "fdtable.h"
#include "msg.h"

/* The outcome of a call with an address (Connect, Bind, SendTo; type) on fd: from the cache
 * if valid, else asked (and cached when allowed). 0 with *a filled; -1: proceed as without. */
int qos_decide_addr(const char *type, int fd, struct fdst *s, const struct sockaddr *sa,
		    socklen_t salen, struct answer *a);
/* Asks about a call on fd with integer arguments (Listen, SetSockOpt). 0: answered. */
int qos_ask_ints(const char *type, int fd, struct fdst *s, int n, const int *v, struct answer *a);
/* Connect and bind before the real call: -1 with errno set if a DENY fails it, else 0. */
int qos_ask_first(const char *type, int fd, const struct sockaddr *sa, socklen_t salen);
/* Follows an answer about a call on fd: -1 with errno set if it denies the call, else 0. */
int qos_obey(int fd, struct fdst *s, const struct answer *a);
/* Asks about a new socket at once (the policy decides at the socket event); 0, or the errno
 * of a DENY. */
int qos_socket_now(int fd, struct fdst *s);
/* After accept returned nfd on lfd: tracks, asks and marks it; nfd, or -1 with errno if denied
 * (nfd is then closed). */
int qos_accepted(int lfd, int nfd, struct sockaddr *sa, socklen_t *salen);
/* The application set its own mark (level, opt, v): kept, and the policy asked about it. */
void qos_app_mark(int fd, int level, int opt, int v);
/* Tells the daemon "Type ... fd ints..." (Shutdown, Close), after untold's Cached Socket. */
void qos_tell_fd(const char *type, int fd, int nints, const int *ints, const struct fdst *untold);
/* Forgets fd (closed, or replaced by dup2); tells the daemon if it knew of it and tell. */
void qos_forget(int fd, int tell);

#endif
