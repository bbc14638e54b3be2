/* qosd protocol agent: request lines out and reply lines in, as text (msg.h); the daemon
 * connection that carries them is wire.c. */
#define _GNU_SOURCE
#include "msg.h"

#include "agent.h"
#include "ring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t cmd_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *_Atomic cmd_quoted; /* Tcl-quoted command line, built lazily */

/* fork: the command line's lock is held across it; the child builds its own anew. */
void qos_msg_atfork_prepare(void) { pthread_mutex_lock(&cmd_lock); }
void qos_msg_atfork_parent(void) { pthread_mutex_unlock(&cmd_lock); }
void qos_msg_atfork_child(void)
{
	cmd_quoted = NULL;
	pthread_mutex_init(&cmd_lock, NULL);
}

/* ---- Tcl list quoting (the paper marshals arguments by Tcl's lexical rules, 4.1.2) ---- */

static int tcl_special(unsigned char c)
{
	return c <= ' ' || c == '{' || c == '}' || c == '[' || c == ']' || c == '$' || c == ';' ||
	       c == '"' || c == '\\' || c == 127;
}

/* Append one list element to out (capacity cap); returns new length, or cap on overflow. */
static size_t tcl_append(char *out, size_t len, size_t cap, const char *s, size_t n)
{
	if (len >= cap)
		return cap;
	if (len > 0 && len < cap)
		out[len++] = ' ';
	if (n == 0) {
		if (len + 2 > cap)
			return cap;
		out[len++] = '{';
		out[len++] = '}';
		return len;
	}
	int plain = s[0] != '#';
	for (size_t i = 0; i < n && plain; i++)
		plain = !tcl_special((unsigned char)s[i]);
	if (plain) {
		if (len + n > cap)
			return cap;
		memcpy(out + len, s, n);
		return len + n;
	}
	/* Backslash form: always valid, keeps the request on one line. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[5];
		size_t e = 0;
		if (c == '\n') { esc[e++] = '\\'; esc[e++] = 'n'; }
		else if (c == '\r') { esc[e++] = '\\'; esc[e++] = 'r'; }
		else if (c == '\t') { esc[e++] = '\\'; esc[e++] = 't'; }
		else if (c < ' ' || c == 127) {
			static const char hex[] = "0123456789abcdef";
			esc[e++] = '\\'; esc[e++] = 'x'; esc[e++] = hex[c >> 4]; esc[e++] = hex[c & 15];
		} else if (tcl_special(c) || (i == 0 && c == '#')) { esc[e++] = '\\'; esc[e++] = (char)c; }
		else esc[e++] = (char)c;
		if (len + e > cap)
			return cap;
		memcpy(out + len, esc, e);
		len += e;
	}
	return len;
}

/* The command line, /proc/self/cmdline with NULs as single spaces, quoted once per process. */
static const char *qos_cmd(void)
{
	const char *q = cmd_quoted;
	if (q)
		return q;
	pthread_mutex_lock(&cmd_lock);
	if (!cmd_quoted) {
		char raw[QOS_MAX_CMD + 1];
		size_t n = 0;
		int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t r;
			while (n < QOS_MAX_CMD && (r = read(fd, raw + n, QOS_MAX_CMD - n)) > 0)
				n += (size_t)r;
			close(fd);
		}
		while (n > 0 && raw[n - 1] == '\0')
			n--;
		for (size_t i = 0; i < n; i++)
			if (raw[i] == '\0')
				raw[i] = ' ';
		static char quoted[4 * QOS_MAX_CMD + 8];
		size_t len = tcl_append(quoted, 0, sizeof quoted - 1, raw, n);
		if (len >= sizeof quoted - 1)
			len = tcl_append(quoted, 0, sizeof quoted - 1, "", 0);
		quoted[len] = '\0';
		cmd_quoted = quoted;
	}
	pthread_mutex_unlock(&cmd_lock);
	return cmd_quoted;
}

/* Builds "Type pid uid cmd" into buf, or "Cached pid uid cmd gen Type" for a call decided
 * from the cache (cached_gen != 0); the caller appends the call's arguments. Returns cap if
 * it does not fit. */
static size_t begin(char *buf, size_t cap, const char *type, unsigned long long cached_gen)
{
	int n = snprintf(buf, cap, "%s %d %u ", cached_gen ? "Cached" : type, (int)qos_self_pid(), (unsigned)qos_self_uid());
	if (n < 0 || (size_t)n >= cap)
		return cap;
	size_t len = (size_t)n;
	const char *cmd = qos_cmd();
	size_t cl = strlen(cmd);
	if (len + cl >= cap)
		return cap;
	memcpy(buf + len, cmd, cl);
	len += cl;
	if (cached_gen) {
		n = snprintf(buf + len, cap - len, " %llu %s", cached_gen, type);
		if (n < 0 || (size_t)n >= cap - len)
			return cap;
		len += (size_t)n;
	}
	return len;
}

/* ---- replies ---- */

static const struct { const char *name; int value; } errnames[] = {
	{"EPERM", EPERM}, {"EACCES", EACCES}, {"ECONNREFUSED", ECONNREFUSED},
	{"ENETUNREACH", ENETUNREACH}, {"EHOSTUNREACH", EHOSTUNREACH}, {"ETIMEDOUT", ETIMEDOUT},
	{"ECONNRESET", ECONNRESET}, {"ECONNABORTED", ECONNABORTED}, {"EADDRINUSE", EADDRINUSE},
	{"EADDRNOTAVAIL", EADDRNOTAVAIL}, {"ENOBUFS", ENOBUFS}, {"EAGAIN", EAGAIN},
	{"ENETDOWN", ENETDOWN}, {"EHOSTDOWN", EHOSTDOWN}, {"EAFNOSUPPORT", EAFNOSUPPORT},
	{"EPROTONOSUPPORT", EPROTONOSUPPORT}, {"EINVAL", EINVAL}, {"EMFILE", EMFILE},
	{"ENFILE", ENFILE}, {"ENOMEM", ENOMEM}, {"EINTR", EINTR}, {"EIO", EIO},
	{"EOPNOTSUPP", EOPNOTSUPP}, {"EDQUOT", EDQUOT}, {"ECANCELED", ECANCELED},
};

/* A decimal number of 1 to width digits in [lo, hi], or -1: the same grammar as decodeReply
 * (src/protocol/replies.ts), no sign, no spaces. */
static long long number(const char *s, size_t width, long long lo, long long hi)
{
	long long v = 0;
	size_t n = 0;
	for (; s[n] >= '0' && s[n] <= '9'; n++) {
		if (n == width)
			return -1;
		v = v * 10 + (s[n] - '0');
	}
	return n && !s[n] && v >= lo && v <= hi ? v : -1;
}

#define QOS_MAX_GEN 9007199254740991LL /* 2^53 - 1: the daemon's generations are JavaScript numbers */

/* Parses a reply line of directives. Anything not understood voids the whole reply: the
 * call then proceeds as without the agent. A later mark replaces an earlier one. */
void qos_parse_reply(char *line, struct decision *d)
{
	struct decision r = NO_DECISION;
	char *save = NULL;
	for (char *tok = strtok_r(line, " \t\r", &save); tok; tok = strtok_r(NULL, " \t\r", &save)) {
		if (!strcmp(tok, "OVERRIDE")) {
			r.override = 1;
			continue;
		}
		char *arg = strtok_r(NULL, " \t\r", &save);
		long long v = -1;
		if (!arg)
			goto garbage;
		if (!strcmp(tok, "TOS")) {
			if ((v = number(arg, 3, 0, 255)) < 0) goto garbage;
			r.tos = (int)v;
		} else if (!strcmp(tok, "DSCP")) {
			if ((v = number(arg, 3, 0, 63)) < 0) goto garbage;
			r.tos = (int)v << 2;
		} else if (!strcmp(tok, "PRIORITY")) {
			if ((v = number(arg, 3, 0, 7)) < 0) goto garbage;
			r.prio = (int)v;
		} else if (!strcmp(tok, "CACHE")) {
			if ((v = number(arg, 16, 1, QOS_MAX_GEN)) < 0) goto garbage;
			r.cache_gen = (unsigned long long)v;
		} else if (!strcmp(tok, "DENY")) {
			r.deny = 0;
			for (size_t i = 0; i < sizeof errnames / sizeof *errnames; i++)
				if (!strcmp(arg, errnames[i].name))
					r.deny = errnames[i].value;
			if (!r.deny) goto garbage;
		} else {
			goto garbage;
		}
	}
	*d = r;
	return;
garbage:
	qos_debug("ignoring reply directive '%s'", line);
	*d = NO_DECISION;
}

int qos_parse_version(const char *line)
{
	return strncmp(line, "VERSION ", 8) ? -1 : (int)number(line + 8, 9, 0, 999999999);
}

long qos_parse_ring(const char *line)
{
	return strncmp(line, "RING ", 5) ? -1 : (long)number(line + 5, 6, 0, 999999);
}


/* ---- requests ---- */

/* Appends " {family address port}" for sa ({} and port 0 for none); returns the new length,
 * or cap on overflow. */
static size_t fmt_addr(char *out, size_t len, size_t cap, const struct sockaddr *sa, socklen_t salen)
{
	char host[INET6_ADDRSTRLEN] = "";
	int port = 0, fam = sa ? sa->sa_family : 0;
	if (fam == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
	} else if (fam == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
	}
	char el[INET6_ADDRSTRLEN + 24];
	int n = host[0] ? snprintf(el, sizeof el, "%d %s %d", fam, host, port) : snprintf(el, sizeof el, "%d {} 0", fam);
	if (len >= cap || len + (size_t)n + 3 > cap)
		return cap;
	out[len++] = ' ';
	out[len++] = '{';
	memcpy(out + len, el, (size_t)n);
	len += (size_t)n;
	out[len++] = '}';
	return len;
}

/* Appends " v0 v1 ..."; returns the new length, or cap on overflow. */
static size_t fmt_ints(char *out, size_t len, size_t cap, int n, const int *v)
{
	for (int i = 0; i < n && len < cap; i++) {
		int w = snprintf(out + len, cap - len, " %d", v[i]);
		len = w < 0 || (size_t)w >= cap - len ? cap : len + (size_t)w;
	}
	return len;
}

/* Ends the line at len: its length with the newline, or 0 if it does not fit. */
static size_t end_line(char *buf, size_t len, size_t cap)
{
	if (len + 1 >= cap)
		return 0;
	buf[len] = '\n';
	return len + 1;
}

/* "Socket pid uid cmd family type protocol fd" (its Cached form with gen != 0), with newline. */
static size_t socket_line(char *buf, size_t cap, int fd, const struct fdst *s, unsigned long long gen)
{
	int v[4] = {s->family, s->type, s->proto, fd};
	return end_line(buf, fmt_ints(buf, begin(buf, cap, "Socket", gen), cap, 4, v), cap);
}

size_t qos_msg_socket(char *buf, size_t cap, int fd, const struct fdst *s) { return socket_line(buf, cap, fd, s, 0); }

/* Begins a call about fd: the deferred Socket line for it, if any, then "Type pid uid cmd fd"
 * (as Cached notifications when cached_gen != 0). *nreq counts the lines that get replies: a
 * Socket decided at socket() from the cache goes as a Cached notification. Returns cap if it
 * does not fit. */
static size_t call(char *buf, size_t cap, const char *type, int fd, const struct fdst *s, int *nreq,
		   unsigned long long cached_gen)
{
	size_t len = 0;
	*nreq = 0;
	if (s->flags & F_PENDING) {
		int decided = (s->flags & F_DECIDED) != 0;
		len = socket_line(buf, cap, fd, s, decided ? s->sock_gen : cached_gen);
		if (!len)
			return cap;
		if (!decided && !cached_gen)
			(*nreq)++;
	}
	size_t l2 = begin(buf + len, cap - len, type, cached_gen);
	if (l2 >= cap - len)
		return cap;
	if (!cached_gen)
		(*nreq)++;
	return fmt_ints(buf, len + l2, cap, 1, &fd);
}

size_t qos_msg_addr(char *buf, size_t cap, const char *type, int fd, const struct fdst *s,
		    const struct sockaddr *sa, socklen_t salen, int *nreq, unsigned long long cached_gen)
{
	size_t len = fmt_addr(buf, call(buf, cap, type, fd, s, nreq, cached_gen), cap, sa, salen);
	/* Connect's sqos and gqos, always empty: Linux has no GQoS (paper 4.1.3) */
	if (!strcmp(type, "Connect"))
		len = len + 6 < cap ? (memcpy(buf + len, " {} {}", 6), len + 6) : cap;
	return end_line(buf, len, cap);
}

size_t qos_msg_ints(char *buf, size_t cap, const char *type, int fd, const struct fdst *s, int n,
		    const int *v, int *nreq)
{
	return end_line(buf, fmt_ints(buf, call(buf, cap, type, fd, s, nreq, 0), cap, n, v), cap);
}

size_t qos_msg_accept(char *buf, size_t cap, int lfd, const struct fdst *ls, const struct sockaddr *peer,
		      socklen_t peerlen, int nfd, int *nreq)
{
	size_t len = fmt_addr(buf, call(buf, cap, "Accept", lfd, ls, nreq, 0), cap, peer, peerlen);
	return end_line(buf, fmt_ints(buf, len, cap, 1, &nfd), cap);
}

size_t qos_msg_notice(char *buf, size_t cap, const char *type, int fd, int n, const int *v,
		      const struct fdst *untold)
{
	size_t len = untold ? socket_line(buf, cap, fd, untold, untold->sock_gen) : 0;
	if (untold && !len)
		return 0;
	size_t l2 = begin(buf + len, cap - len, type, 0);
	if (l2 >= cap - len)
		return 0;
	len = fmt_ints(buf, len + l2, cap, 1, &fd);
	return end_line(buf, fmt_ints(buf, len, cap, n, v), cap);
}

size_t qos_msg_cleanup(char *buf, size_t cap) { return end_line(buf, begin(buf, cap, "Cleanup", 0), cap); }

size_t qos_msg_ring(char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "Ring %d %u {} %d\n", (int)qos_self_pid(), (unsigned)qos_self_uid(), QOS_RING_LAYOUT);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t qos_msg_startup(char *buf, size_t cap)
{
	int v = QOS_PROTOCOL_VERSION;
	return end_line(buf, fmt_ints(buf, begin(buf, cap, "Startup", 0), cap, 1, &v), cap);
}
