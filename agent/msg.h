/* qosd protocol agent: the C side of the protocol (docs/protocol.md), its one message module:
 * builds every request line, Tcl-quoted (paper 4.1.2), and parses the daemon's reply lines into
 * decisions. Pure text: no I/O but reading the command line (agent/test/codec.c runs it alone). */
#ifndef QOS_MSG_H
#define QOS_MSG_H

#include <stddef.h>
#include <sys/socket.h>

#include "fdtable.h"

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

/* Request lines. Each builder writes whole lines, each ending in '\n', into buf (capacity cap)
 * and returns their length, or 0 if they do not fit. A call on a socket whose Socket is still
 * pending (F_PENDING) is preceded by that Socket line, and *nreq counts the lines that get a
 * reply; with cached_gen != 0 the call goes as Cached notifications (none gets a reply). */

/* "Startup pid uid cmd version": the process's first request on a connection. */
size_t qos_msg_startup(char *buf, size_t cap);
/* "Ring pid uid {} layout": asks for the connection's notification ring (ring.h); sent first
 * on a new connection. Its command line is left empty: the line stays short (it goes in the
 * same send as Startup, which carries it), and the daemon reads /proc anyway. */
size_t qos_msg_ring(char *buf, size_t cap);
/* "Socket pid uid cmd family type protocol fd", asked at socket(). */
size_t qos_msg_socket(char *buf, size_t cap, int fd, const struct fdst *s);
/* A call with an address: "Connect ... fd address {} {}", "Bind ... fd address" or
 * "SendTo ... fd address" (type). */
size_t qos_msg_addr(char *buf, size_t cap, const char *type, int fd, const struct fdst *s,
		    const struct sockaddr *sa, socklen_t salen, int *nreq, unsigned long long cached_gen);
/* A call with integer arguments: "Listen ... fd backlog", "SetSockOpt ... fd level optname value". */
size_t qos_msg_ints(char *buf, size_t cap, const char *type, int fd, const struct fdst *s, int n,
		    const int *v, int *nreq);
/* "Accept ... lfd address nfd" about the listening socket lfd; peer NULL: address {}. */
size_t qos_msg_accept(char *buf, size_t cap, int lfd, const struct fdst *ls, const struct sockaddr *peer,
		      socklen_t peerlen, int nfd, int *nreq);
/* A notification about fd, "Shutdown ... fd how" or "Close ... fd" (type, then n integers),
 * after the Cached Socket line of untold (a socket decided at socket() from the cache that the
 * daemon has not heard of), if any. */
size_t qos_msg_notice(char *buf, size_t cap, const char *type, int fd, int n, const int *v,
		      const struct fdst *untold);
/* "Cleanup pid uid cmd": the process is exiting. */
size_t qos_msg_cleanup(char *buf, size_t cap);

/* Reply lines. */

/* Parses a reply line of directives into d (NO_DECISION if any of it is not understood). */
void qos_parse_reply(char *line, struct decision *d);
/* The version in a "VERSION n" reply to Startup, or -1. */
int qos_parse_version(const char *line);
/* The slots in a "RING n" reply to Ring (0: no ring), or -1 (not such a reply: an older daemon
 * answers ERROR). */
long qos_parse_ring(const char *line);

void qos_msg_atfork_prepare(void);
void qos_msg_atfork_parent(void);
void qos_msg_atfork_child(void);

#endif
