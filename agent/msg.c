/* qosd protocol agent: request lines out and reply lines in, as text (msg.h); the daemon
 * connection that carries them is wire.c. */
#define _GNU_SOURCE
#include "msg.h"

#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t cmd_lock = PTHREAD_MUTEX_INITIALIZER;
static char *cmd_quoted;    /* Tcl-quoted command line, built lazily */
static unsigned cmd_gen = ~0u;

/* fork: the command line's lock is held across it (the child's own is built anew). */
void qos_msg_atfork_prepare(void) { pthread_mutex_lock(&cmd_lock); }
void qos_msg_atfork_parent(void) { pthread_mutex_unlock(&cmd_lock); }
void qos_msg_atfork_child(void) { pthread_mutex_init(&cmd_lock, NULL); }

/* ---- Tcl list quoting (the paper marshals arguments by Tcl's lexical rules, 4.1.2) ---- */

static int tcl_special(unsigned char c)
{
	return c <= ' ' || c == '{' || c == '}' || c == '[' || c == ']' || c == '$' || c == ';' ||
	       c == '"' || c == '\\' || c == 127;
}

/* Append one list element to out (capacity cap); returns new length, or cap on overflow. */
size_t qos_tcl_append(char *out, size_t len, size_t cap, const char *s, size_t n)
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
const char *qos_cmd(void)
{
	unsigned g = qos_wire_fork_gen();
	if (cmd_gen == g && cmd_quoted)
		return cmd_quoted;
	pthread_mutex_lock(&cmd_lock);
	if (cmd_gen != g || !cmd_quoted) {
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
		size_t q = qos_tcl_append(quoted, 0, sizeof quoted - 1, raw, n);
		if (q >= sizeof quoted - 1)
			q = qos_tcl_append(quoted, 0, sizeof quoted - 1, "", 0);
		quoted[q] = '\0';
		cmd_quoted = quoted;
		cmd_gen = g;
	}
	pthread_mutex_unlock(&cmd_lock);
	return cmd_quoted;
}

/* Builds "Type pid uid cmd" into buf, or "Cached pid uid cmd gen Type" for a call decided
 * from the cache (cached_gen != 0); the caller appends the call's arguments. */
size_t qos_msg_begin(char *buf, size_t cap, const char *type, unsigned long long cached_gen)
{
	int n = snprintf(buf, cap, "%s %d %u ", cached_gen ? "Cached" : type, (int)getpid(), (unsigned)getuid());
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

static int dscp_value(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s && !*end)
		return v >= 0 && v <= 63 ? (int)v : -1;
	if (!strcmp(s, "EF")) return 46;
	if (!strcmp(s, "LE")) return 1;
	if (!strcmp(s, "VA")) return 44;
	if (!strcmp(s, "DF") || !strcmp(s, "BE")) return 0;
	if (s[0] == 'C' && s[1] == 'S' && s[2] >= '0' && s[2] <= '7' && !s[3]) return (s[2] - '0') * 8;
	if (s[0] == 'A' && s[1] == 'F' && s[2] >= '1' && s[2] <= '4' && s[3] >= '1' && s[3] <= '3' && !s[4])
		return (s[2] - '0') * 8 + (s[3] - '0') * 2;
	return -1;
}

static int int_in(const char *s, int lo, int hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *s && !*end && v >= lo && v <= hi ? (int)v : -1;
}

/* Parses a reply line of directives. Anything not understood voids the whole reply: the
 * call then proceeds as without the agent. */
void qos_parse_reply(char *line, struct decision *d)
{
	struct decision r = NO_DECISION;
	char *save = NULL;
	for (char *tok = strtok_r(line, " \t\r", &save); tok; tok = strtok_r(NULL, " \t\r", &save)) {
		char *arg = NULL;
		if (!strcmp(tok, "OVERRIDE")) {
			r.override = 1;
			continue;
		}
		if (strcmp(tok, "TOS") && strcmp(tok, "DSCP") && strcmp(tok, "PRIORITY") && strcmp(tok, "DENY") &&
		    strcmp(tok, "CACHE"))
			goto garbage;
		arg = strtok_r(NULL, " \t\r", &save);
		if (!arg)
			goto garbage;
		if (!strcmp(tok, "TOS")) {
			if ((r.tos = int_in(arg, 0, 255)) < 0) goto garbage;
		} else if (!strcmp(tok, "DSCP")) {
			int v = dscp_value(arg);
			if (v < 0) goto garbage;
			r.tos = v << 2;
		} else if (!strcmp(tok, "PRIORITY")) {
			if ((r.prio = int_in(arg, 0, 7)) < 0) goto garbage;
		} else if (!strcmp(tok, "CACHE")) {
			char *end;
			r.cache_gen = strtoull(arg, &end, 10);
			if (*end || !r.cache_gen) goto garbage;
			qos_wire_saw_generation(r.cache_gen);
		} else {
			for (size_t i = 0; i < sizeof errnames / sizeof *errnames; i++)
				if (!strcmp(arg, errnames[i].name))
					r.deny = errnames[i].value;
			if (!r.deny) goto garbage;
		}
	}
	*d = r;
	return;
garbage:
	qos_debug("ignoring reply directive '%s'", line);
	*d = NO_DECISION;
}


/* ---- requests ---- */

size_t qos_fmt_addr(char *out, size_t len, size_t cap, const struct sockaddr *sa, socklen_t salen)
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
	int n = snprintf(el, sizeof el, "%d %s %d", fam, host[0] ? host : "{}", port);
	if (!host[0])
		n = snprintf(el, sizeof el, "%d {} 0", fam);
	if (len >= cap || len + (size_t)n + 3 > cap)
		return cap;
	out[len++] = ' ';
	out[len++] = '{';
	memcpy(out + len, el, (size_t)n);
	len += (size_t)n;
	out[len++] = '}';
	return len;
}

size_t qos_fmt_ints(char *out, size_t len, size_t cap, int n, const int *v)
{
	for (int i = 0; i < n && len < cap; i++) {
		int w = snprintf(out + len, cap - len, " %d", v[i]);
		len = w < 0 || (size_t)w >= cap - len ? cap : len + (size_t)w;
	}
	return len;
}

/* "Socket pid uid cmd family type protocol fd" for fd, or the Cached form with gen != 0;
 * without the newline. */
size_t qos_socket_msg(char *buf, size_t cap, int fd, const struct fdst *s, unsigned long long gen)
{
	size_t len = qos_msg_begin(buf, cap, "Socket", gen);
	int v[4] = {s->family, s->type, s->proto, fd};
	return qos_fmt_ints(buf, len, cap, 4, v);
}

/* Begins a request in buf: the deferred Socket line for fd, if any, then "Type pid uid cmd"
 * (as Cached notifications when cached_gen != 0). *nreq counts the lines that get replies: a
 * Socket decided at socket() from the cache goes as a Cached notification. */
size_t qos_msg_request(char *buf, size_t cap, int fd, struct fdst *s, const char *type, int *nreq,
		       unsigned long long cached_gen)
{
	size_t len = 0;
	*nreq = 0;
	if (s->flags & F_PENDING) {
		int decided = (s->flags & F_DECIDED) != 0;
		len = qos_socket_msg(buf, cap, fd, s, decided ? s->sock_gen : cached_gen);
		if (len + 1 >= cap)
			return cap;
		buf[len++] = '\n';
		if (!decided)
			(*nreq)++;
	}
	size_t l2 = qos_msg_begin(buf + len, cap - len, type, cached_gen);
	if (l2 >= cap - len)
		return cap;
	(*nreq)++;
	return len + l2;
}

