/* qosd protocol agent: the C side of the protocol (docs/protocol.md): builds request lines,
 * Tcl-quoted (paper 4.1.2), and parses the daemon's reply lines into decisions. */
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

/* Appends one Tcl list element to out (capacity cap); returns the new length, or cap. */
size_t qos_tcl_append(char *out, size_t len, size_t cap, const char *s, size_t n);
/* The process's command line, Tcl-quoted, built once per process (again after fork). */
const char *qos_cmd(void);
/* Builds "Type pid uid cmd" into buf, or "Cached pid uid cmd gen Type" with cached_gen != 0. */
size_t qos_msg_begin(char *buf, size_t cap, const char *type, unsigned long long cached_gen);
/* Parses a reply line of directives into d (NO_DECISION if any of it is not understood). */
void qos_parse_reply(char *line, struct decision *d);
/* Appends " {family address port}" for sa; returns the new length, or cap on overflow. */
size_t qos_fmt_addr(char *out, size_t len, size_t cap, const struct sockaddr *sa, socklen_t salen);
/* Appends " v0 v1 ..."; returns the new length, or cap on overflow. */
size_t qos_fmt_ints(char *out, size_t len, size_t cap, int n, const int *v);
/* "Socket pid uid cmd family type protocol fd", or its Cached form with gen != 0. */
size_t qos_socket_msg(char *buf, size_t cap, int fd, const struct fdst *s, unsigned long long gen);
/* Begins a request about fd: its deferred Socket line if any, then "Type pid uid cmd". */
size_t qos_msg_request(char *buf, size_t cap, int fd, struct fdst *s, const char *type, int *nreq,
		       unsigned long long cached_gen);
void qos_msg_atfork_prepare(void);
void qos_msg_atfork_parent(void);
void qos_msg_atfork_child(void);

#endif
