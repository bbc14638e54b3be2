/* qosbpf.node: the daemon's eBPF loader (docs/ebpf.md), a thin N-API layer over libbpf.
 * - open(object, cgroup[, skip]): loads a BPF object (CO-RE relocated against this kernel's BTF) and
 *   attaches every cgroup program in it, but those skip names (comma-separated), to the cgroup
 *   v2 directory by bpf_link. Nothing is pinned:
 *   the programs stay attached and the maps alive only while this process holds the
 *   descriptors, so a daemon that dies, even by SIGKILL, leaves nothing behind. Returns a
 *   handle; the error names the step, the errno and the end of libbpf's log (the verifier's).
 * - describe(h): the programs (name, id, attach type), links and maps (name, fd, id, sizes).
 * - update(fd, keys, values, flags): one bpf_map_update_elem per key (keys and values each
 *   one buffer of equal-sized records); delete(fd, keys) likewise (a missing key is no error);
 *   keys(fd): every key, one buffer; lookup(fd, key): the value or null; dump(fd): every
 *   entry, each key followed by its value, one buffer. A per-CPU map's value is one per
 *   possible CPU, each rounded up to 8 bytes, as the kernel gives it.
 * - close(h): links destroyed (the programs detach), then the object (maps freed).
 * Programs of the tc type (SEC("tc")) are not attached to the cgroup at open():
 * - tcAttach(h, program, ifindex, egress, ifb, prio): puts the program on the interface's
 *   clsact hook (made if missing) as a classic cls_bpf filter (not direct-action) at that
 *   priority, handle 1, with a mirred action that redirects a packet it matches (returns -1) to
 *   the IFB device `ifb`: mirred, unlike bpf_redirect, records where an egress packet came from,
 *   which IFB needs to send it on. Replaces a filter of ours already there.
 * - tcDetach(ifindex, egress, prio): removes it (no error if it is gone).
 * - tagSocket(map, pid, fd, offset, bytes): the socket descriptor fd of process pid,
 *   duplicated with pidfd_getfd (the process's own descriptor is untouched), has bytes written
 *   at offset into its value in the socket-storage map (the rest kept; a socket without one gets
 *   zeros around them). Returns whether fd was a socket.
 * - socketStorage(map, pid, fd): that socket's value in the socket-storage map, or null (none, or
 *   the descriptor is not a socket). */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#define MAX_HANDLES 8
#define MAX_PROG_LINKS 16
#define LOG_MAX 4096

struct handle {
	struct bpf_object *obj;
	struct bpf_link *links[MAX_PROG_LINKS];
	int nlinks;
};

static struct handle *handles[MAX_HANDLES];

/* libbpf's messages during open(): the end is kept for the error */
static char logbuf[LOG_MAX];
static size_t loglen;

static int log_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	char line[1024];
	int n = vsnprintf(line, sizeof line, fmt, ap);
	if (n <= 0)
		return 0;
	if ((size_t)n >= sizeof line)
		n = sizeof line - 1;
	if (loglen + n >= LOG_MAX) { /* keep the newest half */
		memmove(logbuf, logbuf + LOG_MAX / 2, loglen - LOG_MAX / 2);
		loglen -= LOG_MAX / 2;
	}
	memcpy(logbuf + loglen, line, n);
	loglen += n;
	logbuf[loglen] = '\0';
	return 0;
}

static napi_value fail(napi_env env, const char *step, int err)
{
	char msg[LOG_MAX + 256];
	const char *tail = loglen > 1500 ? logbuf + loglen - 1500 : logbuf;
	snprintf(msg, sizeof msg, "%s: %s%s%s", step, strerror(err < 0 ? -err : err), loglen ? "\n" : "", loglen ? tail : "");
	napi_value code, m, e;
	char c[16];
	snprintf(c, sizeof c, "%d", err < 0 ? -err : err);
	napi_create_string_utf8(env, c, NAPI_AUTO_LENGTH, &code);
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
	napi_create_error(env, code, m, &e);
	napi_throw(env, e);
	return NULL;
}

static int arg_int(napi_env env, napi_value v, int *out)
{
	return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

/* The call's first argument as an open handle (its number in *h), or NULL with an exception. */
static struct handle *arg_handle(napi_env env, napi_callback_info info, int *h)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 1 || arg_int(env, argv[0], h) || *h < 0 || *h >= MAX_HANDLES || !handles[*h]) {
		napi_throw_type_error(env, NULL, "not an open eBPF handle");
		return NULL;
	}
	return handles[*h];
}

static void destroy(struct handle *hd)
{
	for (int i = hd->nlinks - 1; i >= 0; i--)
		bpf_link__destroy(hd->links[i]);
	bpf_object__close(hd->obj);
	free(hd);
}

/* Whether name is one of the comma-separated names of list. */
static int in_list(const char *list, const char *name)
{
	size_t len = strlen(name);
	for (const char *p = list; *p;) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		if (l == len && !strncmp(p, name, len))
			return 1;
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

static napi_value Open(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	char path[4096], cg[4096], skip[1024] = "";
	size_t n;
	if (argc < 2 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &n) != napi_ok ||
	    napi_get_value_string_utf8(env, argv[1], cg, sizeof cg, &n) != napi_ok ||
	    (argc > 2 && napi_get_value_string_utf8(env, argv[2], skip, sizeof skip, &n) != napi_ok)) {
		napi_throw_type_error(env, NULL, "open(object, cgroup[, skip])");
		return NULL;
	}
	int slot = -1;
	for (int i = 0; i < MAX_HANDLES; i++)
		if (!handles[i]) { slot = i; break; }
	if (slot < 0)
		return fail(env, "too many open eBPF objects", EMFILE);
	loglen = 0;
	logbuf[0] = '\0';
	libbpf_print_fn_t before = libbpf_set_print(log_print);
	struct handle *hd = calloc(1, sizeof *hd);
	int err = 0;
	const char *step = "";
	int cgfd = -1;
	if (!hd) { err = ENOMEM; step = "memory"; goto out; }
	hd->obj = bpf_object__open_file(path, NULL);
	if (!hd->obj) { err = errno; step = "cannot open the BPF object"; free(hd); hd = NULL; goto out; }
	if ((err = bpf_object__load(hd->obj))) { step = "the kernel refused the BPF programs"; goto out; }
	cgfd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) { err = errno; step = "cannot open the cgroup"; goto out; }
	struct bpf_program *p;
	bpf_object__for_each_program(p, hd->obj) {
		if (hd->nlinks == MAX_PROG_LINKS) { err = E2BIG; step = "too many programs"; goto out; }
		if (bpf_program__type(p) == BPF_PROG_TYPE_SCHED_CLS)
			continue; /* put on interfaces by tcAttach */
		if (in_list(skip, bpf_program__name(p)))
			continue; /* loaded (its maps are shared) but not attached */
		struct bpf_link *l = bpf_program__attach_cgroup(p, cgfd);
		if (!l) { err = errno; step = "cannot attach a program to the cgroup"; goto out; }
		hd->links[hd->nlinks++] = l;
	}
out:
	if (cgfd >= 0)
		close(cgfd);
	libbpf_set_print(before);
	if (err) {
		if (hd)
			destroy(hd);
		return fail(env, step, err);
	}
	handles[slot] = hd;
	napi_value r;
	napi_create_int32(env, slot, &r);
	return r;
}

static void set_int(napi_env env, napi_value o, const char *k, long long v)
{
	napi_value x;
	napi_create_int64(env, v, &x);
	napi_set_named_property(env, o, k, x);
}

static void set_str(napi_env env, napi_value o, const char *k, const char *v)
{
	napi_value x;
	napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &x);
	napi_set_named_property(env, o, k, x);
}

static napi_value Describe(napi_env env, napi_callback_info info)
{
	int h;
	struct handle *hd = arg_handle(env, info, &h);
	if (!hd)
		return NULL;
	napi_value r, progs, maps, links;
	napi_create_object(env, &r);
	napi_create_array(env, &progs);
	napi_create_array(env, &maps);
	napi_create_array(env, &links);
	uint32_t i = 0;
	struct bpf_program *p;
	bpf_object__for_each_program(p, hd->obj) {
		struct bpf_prog_info pi = { 0 };
		__u32 len = sizeof pi;
		napi_value o;
		napi_create_object(env, &o);
		set_str(env, o, "name", bpf_program__name(p));
		set_str(env, o, "section", bpf_program__section_name(p));
		if (!bpf_obj_get_info_by_fd(bpf_program__fd(p), &pi, &len))
			set_int(env, o, "id", pi.id);
		napi_set_element(env, progs, i++, o);
	}
	i = 0;
	struct bpf_map *m;
	bpf_object__for_each_map(m, hd->obj) {
		struct bpf_map_info mi = { 0 };
		__u32 len = sizeof mi;
		napi_value o;
		napi_create_object(env, &o);
		set_str(env, o, "name", bpf_map__name(m));
		set_int(env, o, "fd", bpf_map__fd(m));
		set_int(env, o, "key_size", bpf_map__key_size(m));
		set_int(env, o, "value_size", bpf_map__value_size(m));
		set_int(env, o, "max_entries", bpf_map__max_entries(m));
		if (!bpf_obj_get_info_by_fd(bpf_map__fd(m), &mi, &len))
			set_int(env, o, "id", mi.id);
		napi_set_element(env, maps, i++, o);
	}
	for (int j = 0; j < hd->nlinks; j++) {
		struct bpf_link_info li = { 0 };
		__u32 len = sizeof li;
		napi_value x;
		napi_create_int64(env, bpf_obj_get_info_by_fd(bpf_link__fd(hd->links[j]), &li, &len) ? -1 : (long long)li.id, &x);
		napi_set_element(env, links, j, x);
	}
	napi_set_named_property(env, r, "programs", progs);
	napi_set_named_property(env, r, "maps", maps);
	napi_set_named_property(env, r, "links", links);
	return r;
}

/* A map descriptor and its key and value sizes, from the kernel. */
static int map_sizes(int fd, __u32 *ks, __u32 *vs)
{
	struct bpf_map_info mi = { 0 };
	__u32 len = sizeof mi;
	if (bpf_obj_get_info_by_fd(fd, &mi, &len))
		return -errno;
	*ks = mi.key_size;
	*vs = mi.value_size;
	if (mi.type == BPF_MAP_TYPE_PERCPU_HASH || mi.type == BPF_MAP_TYPE_PERCPU_ARRAY || mi.type == BPF_MAP_TYPE_LRU_PERCPU_HASH) {
		int cpus = libbpf_num_possible_cpus();
		if (cpus < 0)
			return cpus;
		*vs = ((*vs + 7) & ~7u) * cpus;
	}
	return 0;
}

static int arg_buffer(napi_env env, napi_value v, char **data, size_t *len)
{
	bool is;
	if (napi_is_buffer(env, v, &is) != napi_ok || !is)
		return -1;
	return napi_get_buffer_info(env, v, (void **)data, len) == napi_ok ? 0 : -1;
}

/* A map call's arguments: the map's descriptor, nbuf buffers, optional flags; the map's key and
 * value sizes from the kernel. */
struct margs {
	int fd, flags;
	__u32 ks, vs;
	char *buf[2];
	size_t len[2];
};

/* 0, or -1 with an exception thrown. */
static int map_args(napi_env env, napi_callback_info info, const char *usage, int nbuf, struct margs *a)
{
	size_t argc = 4;
	napi_value argv[4];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	a->flags = BPF_ANY;
	int bad = argc < (size_t)(1 + nbuf) || arg_int(env, argv[0], &a->fd);
	for (int i = 0; !bad && i < nbuf; i++)
		bad = arg_buffer(env, argv[1 + i], &a->buf[i], &a->len[i]);
	if (!bad && argc > (size_t)(1 + nbuf))
		bad = arg_int(env, argv[1 + nbuf], &a->flags);
	if (bad) {
		napi_throw_type_error(env, NULL, usage);
		return -1;
	}
	int err = map_sizes(a->fd, &a->ks, &a->vs);
	if (err) {
		fail(env, "not a map", err);
		return -1;
	}
	if (!a->ks || (nbuf && a->len[0] % a->ks)) {
		napi_throw_range_error(env, NULL, "keys do not make whole records of the map's key size");
		return -1;
	}
	return 0;
}

static napi_value Update(napi_env env, napi_callback_info info)
{
	struct margs a = { 0 };
	if (map_args(env, info, "update(fd, keys, values[, flags])", 2, &a))
		return NULL;
	size_t n = a.len[0] / a.ks;
	if (a.len[1] != n * a.vs) {
		napi_throw_range_error(env, NULL, "values do not make one record of the map's value size per key");
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (bpf_map_update_elem(a.fd, a.buf[0] + i * a.ks, a.buf[1] + i * a.vs, a.flags))
			return fail(env, "map update", errno);
	return NULL;
}

static napi_value Delete(napi_env env, napi_callback_info info)
{
	struct margs a = { 0 };
	if (map_args(env, info, "delete(fd, keys)", 1, &a))
		return NULL;
	for (size_t i = 0; i < a.len[0] / a.ks; i++)
		if (bpf_map_delete_elem(a.fd, a.buf[0] + i * a.ks) && errno != ENOENT)
			return fail(env, "map delete", errno);
	return NULL;
}

/* Every key (with_values: each followed by its value) of a map, one buffer. */
static napi_value entries(napi_env env, struct margs *a, int with_values)
{
	size_t rec = a->ks + (with_values ? a->vs : 0), cap = 64 * rec, len = 0;
	char *out = malloc(cap), key[512], last[512];
	int have = 0;
	if (!out || a->ks > sizeof key) {
		free(out);
		return fail(env, "keys", ENOMEM);
	}
	while (!bpf_map_get_next_key(a->fd, have ? last : NULL, key)) {
		memcpy(last, key, a->ks);
		have = 1;
		if (len + rec > cap) {
			char *n = realloc(out, cap *= 2);
			if (!n) {
				free(out);
				return fail(env, "keys", ENOMEM);
			}
			out = n;
		}
		memcpy(out + len, key, a->ks);
		if (with_values && bpf_map_lookup_elem(a->fd, key, out + len + a->ks))
			continue; /* deleted since: the next key follows it all the same */
		len += rec;
	}
	napi_value r;
	napi_create_buffer_copy(env, len, out, NULL, &r);
	free(out);
	return r;
}

static napi_value Keys(napi_env env, napi_callback_info info)
{
	struct margs a = { 0 };
	if (map_args(env, info, "keys(fd)", 0, &a))
		return NULL;
	return entries(env, &a, 0);
}

static napi_value Dump(napi_env env, napi_callback_info info)
{
	struct margs a = { 0 };
	if (map_args(env, info, "dump(fd)", 0, &a))
		return NULL;
	return entries(env, &a, 1);
}

static napi_value Lookup(napi_env env, napi_callback_info info)
{
	struct margs a = { 0 };
	if (map_args(env, info, "lookup(fd, key)", 1, &a))
		return NULL;
	if (a.len[0] != a.ks) {
		napi_throw_range_error(env, NULL, "the key is not of the map's key size");
		return NULL;
	}
	char *val = malloc(a.vs);
	if (!val)
		return fail(env, "lookup", ENOMEM);
	napi_value r;
	if (bpf_map_lookup_elem(a.fd, a.buf[0], val)) {
		free(val);
		if (errno != ENOENT)
			return fail(env, "map lookup", errno);
		napi_get_null(env, &r);
		return r;
	}
	napi_create_buffer_copy(env, a.vs, val, NULL, &r);
	free(val);
	return r;
}

/* ---- tc filters with a mirred action, over rtnetlink ---- */

struct nlreq {
	char buf[1024];
	size_t len;
};

static struct rtattr *attr(struct nlreq *r, int type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)(r->buf + NLMSG_ALIGN(r->len));
	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->len = NLMSG_ALIGN(r->len) + RTA_ALIGN(a->rta_len);
	return a;
}

static void nest_end(struct nlreq *r, struct rtattr *a)
{
	a->rta_len = (r->buf + r->len) - (char *)a;
}

/* Sends the request and reads the kernel's answer: 0 or -errno. */
static int nl_talk(struct nlreq *r)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	struct nlmsghdr *h = (struct nlmsghdr *)r->buf;
	h->nlmsg_len = r->len;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int err = 0;
	if (sendto(fd, r->buf, r->len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
		err = -errno;
		goto out;
	}
	char ans[4096];
	ssize_t n = recv(fd, ans, sizeof ans, 0);
	if (n < 0) {
		err = -errno;
		goto out;
	}
	for (struct nlmsghdr *m = (struct nlmsghdr *)ans; NLMSG_OK(m, (size_t)n); m = NLMSG_NEXT(m, n))
		if (m->nlmsg_type == NLMSG_ERROR) {
			err = ((struct nlmsgerr *)NLMSG_DATA(m))->error;
			break;
		}
out:
	close(fd);
	return err;
}

static void tc_header(struct nlreq *r, int type, int flags, int ifindex, int egress, int prio)
{
	memset(r, 0, sizeof *r);
	struct nlmsghdr *h = (struct nlmsghdr *)r->buf;
	h->nlmsg_type = type;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	struct tcmsg *t = NLMSG_DATA(h);
	t->tcm_family = AF_UNSPEC;
	t->tcm_ifindex = ifindex;
	t->tcm_handle = 1;
	t->tcm_parent = TC_H_MAKE(TC_H_CLSACT, egress ? TC_H_MIN_EGRESS : TC_H_MIN_INGRESS);
	t->tcm_info = TC_H_MAKE((__u32)prio << 16, htons(ETH_P_ALL));
	r->len = NLMSG_LENGTH(sizeof *t);
	attr(r, TCA_KIND, "bpf", 4);
}

static napi_value TcAttach(napi_env env, napi_callback_info info)
{
	size_t argc = 6;
	napi_value argv[6];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	int h, ifindex, ifb, prio;
	bool egress;
	char name[128];
	size_t n;
	if (argc < 6 || arg_int(env, argv[0], &h) || h < 0 || h >= MAX_HANDLES || !handles[h] ||
	    napi_get_value_string_utf8(env, argv[1], name, sizeof name, &n) != napi_ok || arg_int(env, argv[2], &ifindex) ||
	    napi_get_value_bool(env, argv[3], &egress) != napi_ok || arg_int(env, argv[4], &ifb) || arg_int(env, argv[5], &prio) ||
	    prio < 1 || prio > 0xffff) {
		napi_throw_type_error(env, NULL, "tcAttach(handle, program, ifindex, egress, ifb, prio)");
		return NULL;
	}
	struct bpf_program *p = bpf_object__find_program_by_name(handles[h]->obj, name);
	if (!p)
		return fail(env, "no such program in the object", ENOENT);
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	/* the clsact qdisc, for both directions (libbpf's message when it is there already is kept
	 * out of the daemon's stderr) */
	loglen = 0;
	libbpf_print_fn_t before = libbpf_set_print(log_print);
	int err = bpf_tc_hook_create(&hook);
	libbpf_set_print(before);
	if (err && err != -EEXIST)
		return fail(env, "cannot make the clsact qdisc", err);
	struct nlreq r;
	tc_header(&r, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_REPLACE, ifindex, egress, prio);
	struct rtattr *opts = attr(&r, TCA_OPTIONS, NULL, 0);
	int fd = bpf_program__fd(p);
	__u32 flags = 0;
	attr(&r, TCA_BPF_FD, &fd, 4);
	attr(&r, TCA_BPF_NAME, name, strlen(name) + 1);
	attr(&r, TCA_BPF_FLAGS, &flags, 4);
	struct rtattr *acts = attr(&r, TCA_BPF_ACT, NULL, 0);
	struct rtattr *act = attr(&r, 1, NULL, 0);
	attr(&r, TCA_ACT_KIND, "mirred", 7);
	struct rtattr *aopts = attr(&r, TCA_ACT_OPTIONS, NULL, 0);
	struct tc_mirred m = { .action = TC_ACT_STOLEN, .eaction = TCA_EGRESS_REDIR, .ifindex = ifb };
	attr(&r, TCA_MIRRED_PARMS, &m, sizeof m);
	nest_end(&r, aopts);
	nest_end(&r, act);
	nest_end(&r, acts);
	nest_end(&r, opts);
	if ((err = nl_talk(&r)))
		return fail(env, "cannot add the tc filter", err);
	return NULL;
}

static napi_value TcDetach(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	int ifindex, prio;
	bool egress;
	if (argc < 3 || arg_int(env, argv[0], &ifindex) || napi_get_value_bool(env, argv[1], &egress) != napi_ok ||
	    arg_int(env, argv[2], &prio) || prio < 1 || prio > 0xffff) {
		napi_throw_type_error(env, NULL, "tcDetach(ifindex, egress, prio)");
		return NULL;
	}
	struct nlreq r;
	tc_header(&r, RTM_DELTFILTER, 0, ifindex, egress, prio);
	int err = nl_talk(&r);
	if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
		return fail(env, "cannot remove the tc filter", err);
	return NULL;
}

/* ---- a socket of another process tagged ---- */

/* Another process's descriptor fd, duplicated (pidfd_getfd; its own is untouched): >= 0, or
 * -errno. */
static int their_fd(int pid, int fd)
{
	int pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	int sfd = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	int err = sfd < 0 ? -errno : sfd;
	close(pidfd);
	return err;
}

/* Process pid's descriptor fd in a socket-storage map (values of at most 256 bytes): its copy
 * in t->sfd (the caller closes it), whether it is a socket, whether it has a value (then in
 * t->val, else zeros). 0, or -1 with an exception thrown and nothing left open. */
struct their_socket {
	int sfd;
	bool sock, found;
	__u32 vs;
	char val[256];
};

static int their_socket(napi_env env, int map, int pid, int fd, struct their_socket *t)
{
	__u32 ks;
	int err = map_sizes(map, &ks, &t->vs);
	if (err) {
		fail(env, "not a map", err);
		return -1;
	}
	if (t->vs > sizeof t->val) {
		fail(env, "socket storage", E2BIG);
		return -1;
	}
	t->sfd = their_fd(pid, fd);
	if (t->sfd < 0) {
		fail(env, "pidfd_getfd", t->sfd);
		return -1;
	}
	struct stat st;
	memset(t->val, 0, sizeof t->val);
	t->sock = !fstat(t->sfd, &st) && S_ISSOCK(st.st_mode);
	t->found = t->sock && !bpf_map_lookup_elem(map, &t->sfd, t->val);
	if (t->sock && !t->found && errno != ENOENT) {
		err = errno;
		close(t->sfd);
		fail(env, "socket storage", err);
		return -1;
	}
	return 0;
}

static napi_value SocketStorage(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	int map, pid, fd;
	if (argc < 3 || arg_int(env, argv[0], &map) || arg_int(env, argv[1], &pid) || arg_int(env, argv[2], &fd)) {
		napi_throw_type_error(env, NULL, "socketStorage(map, pid, fd)");
		return NULL;
	}
	struct their_socket t;
	if (their_socket(env, map, pid, fd, &t))
		return NULL;
	close(t.sfd);
	napi_value r;
	if (t.found)
		napi_create_buffer_copy(env, t.vs, t.val, NULL, &r);
	else
		napi_get_null(env, &r);
	return r;
}

static napi_value TagSocket(napi_env env, napi_callback_info info)
{
	size_t argc = 5;
	napi_value argv[5];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	int map, pid, fd, off;
	char *bytes;
	size_t blen;
	if (argc < 5 || arg_int(env, argv[0], &map) || arg_int(env, argv[1], &pid) || arg_int(env, argv[2], &fd) ||
	    arg_int(env, argv[3], &off) || arg_buffer(env, argv[4], &bytes, &blen)) {
		napi_throw_type_error(env, NULL, "tagSocket(map, pid, fd, offset, bytes)");
		return NULL;
	}
	struct their_socket t;
	if (their_socket(env, map, pid, fd, &t))
		return NULL;
	int err = 0;
	if (off < 0 || (size_t)off + blen > t.vs) {
		close(t.sfd);
		napi_throw_range_error(env, NULL, "the bytes do not fit in the map's value");
		return NULL;
	}
	if (t.sock) {
		memcpy(t.val + off, bytes, blen);
		if (bpf_map_update_elem(map, &t.sfd, t.val, BPF_ANY))
			err = errno;
	}
	close(t.sfd);
	if (err)
		return fail(env, "socket storage", err);
	napi_value r;
	napi_get_boolean(env, t.sock, &r);
	return r;
}

static napi_value Close(napi_env env, napi_callback_info info)
{
	int h;
	struct handle *hd = arg_handle(env, info, &h);
	if (!hd)
		return NULL;
	handles[h] = NULL;
	destroy(hd);
	return NULL;
}

NAPI_MODULE_INIT()
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{ "open", Open }, { "describe", Describe }, { "update", Update }, { "delete", Delete },
		{ "keys", Keys }, { "lookup", Lookup }, { "dump", Dump }, { "close", Close },
		{ "tcAttach", TcAttach }, { "tcDetach", TcDetach }, { "tagSocket", TagSocket }, { "socketStorage", SocketStorage },
	};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		napi_value fn;
		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn);
		napi_set_named_property(env, exports, fns[i].name, fn);
	}
	return exports;
}
