/* qosbpf.node: the daemon's eBPF loader (docs/ebpf.md), a thin N-API layer over libbpf.
 * - open(object, cgroup): loads a BPF object (CO-RE relocated against this kernel's BTF) and
 *   attaches every program in it to the cgroup v2 directory by bpf_link. Nothing is pinned:
 *   the programs stay attached and the maps alive only while this process holds the
 *   descriptors, so a daemon that dies, even by SIGKILL, leaves nothing behind. Returns a
 *   handle; the error names the step, the errno and the end of libbpf's log (the verifier's).
 * - describe(h): the programs (name, id, attach type), links and maps (name, fd, id, sizes).
 * - update(fd, keys, values, flags): one bpf_map_update_elem per key (keys and values each
 *   one buffer of equal-sized records); delete(fd, keys) likewise (a missing key is no error);
 *   keys(fd): every key, one buffer; lookup(fd, key): the value or null; dump(fd): every
 *   entry, each key followed by its value, one buffer. A per-CPU map's value is one per
 *   possible CPU, each rounded up to 8 bytes, as the kernel gives it.
 * - close(h): links destroyed (the programs detach), then the object (maps freed). */
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

#define MAX_HANDLES 8
#define MAX_LINKS 16
#define LOG_MAX 4096

struct handle {
	struct bpf_object *obj;
	struct bpf_link *links[MAX_LINKS];
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

static napi_value Open(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	char path[4096], cg[4096];
	size_t n;
	if (argc < 2 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &n) != napi_ok ||
	    napi_get_value_string_utf8(env, argv[1], cg, sizeof cg, &n) != napi_ok) {
		napi_throw_type_error(env, NULL, "open(object, cgroup)");
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
		if (hd->nlinks == MAX_LINKS) { err = E2BIG; step = "too many programs"; goto out; }
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
	};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		napi_value fn;
		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn);
		napi_set_named_property(env, exports, fns[i].name, fn);
	}
	return exports;
}
