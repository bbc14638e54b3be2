/* Marking by executable in the kernel (docs/ebpf.md): cgroup programs that run at every connect
 * and every unconnected send of an inet socket in their cgroup, find the calling process's
 * executable file (its device and inode, through the task's mm), and look it up in `qosd_exe`.
 * An entry holds the policy's rules that can match that file, in the policy's order, as slots;
 * the first slot whose conditions hold decides: it sets IP_TOS (IPV6_TCLASS for IPv6) and
 * SO_PRIORITY with bpf_setsockopt before the first packet, or refuses the call with its errno.
 *
 * Precedence: a process the agent serves (its pid and start time in `qosd_agent`, written by
 * the daemon when the agent connects) keeps the agent's marks; a refusal applies to every
 * process (the agent cannot grant what the kernel refuses). A socket whose TOS the application
 * set itself keeps it unless the slot says override, as the agent does.
 *
 * Atomic reload: a key carries the policy's generation, and `qosd_gen` holds the live one. The
 * daemon writes every entry of the next generation, then the generation (one 32-bit store),
 * and deletes a generation's entries only at the switch after: a call reads the generation
 * once and sees one policy whole.
 *
 * Every decided socket is recorded in `qosd_sockets` by its cookie, where `qos flows` reads it
 * when asked (the daemon does nothing per connect), until its release (cgroup/sock_release)
 * deletes it; `qosd_counts` counts sockets decided and calls refused.
 *
 * Kernel structures are declared here with only the fields read, preserve_access_index: libbpf
 * relocates each field to where this kernel's BTF has it (CO-RE), so no vmlinux.h is needed. */

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#define SOL_SOCKET 1
#define SO_PRIORITY 12
#define SOL_IP 0
#define IP_TOS 1
#define SOL_IPV6 41
#define IPV6_TCLASS 67
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

/* /proc/PID/stat's start time is in USER_HZ (100) ticks: nanoseconds / 10^7 */
#define NS_PER_TICK 10000000ULL

struct super_block { __u32 s_dev; } __attribute__((preserve_access_index));
struct inode { unsigned long i_ino; struct super_block *i_sb; } __attribute__((preserve_access_index));
struct qstr { const unsigned char *name; } __attribute__((preserve_access_index));
struct dentry { struct qstr d_name; struct dentry *d_parent; } __attribute__((preserve_access_index));
struct path { struct dentry *dentry; } __attribute__((preserve_access_index));
struct file { struct inode *f_inode; struct path f_path; } __attribute__((preserve_access_index));
struct mm_struct { struct file *exe_file; } __attribute__((preserve_access_index));
struct task_struct {
	struct mm_struct *mm;
	struct task_struct *group_leader;
	__u64 start_boottime;
} __attribute__((preserve_access_index));

/* An executable of one generation of the policy: s_dev as the kernel encodes it (major << 20 |
 * minor), not as stat(2) gives it. */
struct exe_key {
	__u32 gen;
	__u32 dev;
	__u64 ino;
};

#define MAX_SLOTS 8

#define F_UID 1
#define F_GID 2
#define F_NET 4
#define F_TOS 8
#define F_PRIO 16
#define F_OVERRIDE 32
#define F_DENY 64
#define F_LIMIT 128

/* One rule as the kernel checks it (64 bytes; src/ebpf/encode.ts writes the same layout).
 * With F_LIMIT, `limit` is the per-application limit the socket is put under (qosd_limits).
 * events: 1 connect, 2 sendto; families: 1 inet, 2 inet6; types: 1 stream, 2 dgram; protos:
 * 1 tcp, 2 udp (0: any). The remote port is in [port_lo, port_hi]; with F_NET the remote
 * address masked by mask is net (both in network order, of the one family in families). */
struct slot {
	__u8 events, families, types, protos, flags, tos, prio, pad0;
	__u16 port_lo, port_hi, rule, limit;
	__u32 uid, gid, errno_, pad2;
	__u32 net[4], mask[4];
};

struct entry {
	__u32 n;
	__u32 pad;
	__u64 hits;
	struct slot s[MAX_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct exe_key);
	__type(value, struct entry);
} qosd_exe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} qosd_gen SEC(".maps");

/* processes the agent serves: tgid -> start time in ticks (tells a reused pid) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} qosd_agent SEC(".maps");

#define R_TOS 1      /* the slot's TOS was set */
#define R_PRIO 2     /* its priority was set */
#define R_APP_TOS 4  /* the application's own TOS was kept */
#define R_LIMIT 8    /* the socket was put under the slot's limit */

/* A decided socket (64 bytes; src/ebpf/encode.ts reads the same layout). */
struct sockrec {
	__u64 ino;
	__u32 tgid, uid, gid, dev;
	__u16 rule;
	__u8 family, type, proto, hook, tos, prio;
	__u16 port, result;
	__u32 addr[4];
	__u32 pad[3];
};

/* sockets decided and not yet released: cookie -> what was decided (the least recently
 * written go past the bound: `qos flows` may miss them, decisions never do) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sockrec);
} qosd_sockets SEC(".maps");

#define C_DECIDED 0
#define C_REFUSED 1
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} qosd_counts SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&qosd_counts, &which);
	if (c)
		*c += 1;
}

/* ---- Per-application statistics and limits (docs/apps.md) ----
 *
 * Every inet socket created in the cgroup is tagged at creation (cgroup/sock_create, in the
 * creating process) with what made it: the executable (device, inode), the uid and the cgroup.
 * The tag lives in the socket's own storage and is copied to the sockets a listener accepts.
 * cgroup_skb programs count each packet the socket sends and receives into qosd_stats under
 * that tag, the direction and the packet's DSCP: the daemon reads the counters when asked or
 * every few seconds, never per packet. A packet the segmentation offload will split counts as
 * its segments, with their headers, as the wire carries them.
 *
 * A socket the policy puts under a `limit` carries the limit's id in its tag (written at its
 * connect by the programs above, or by the daemon for a socket the agent decided). Two tc
 * programs on every interface hand its packets to the limit's HTB class on the daemon's IFB
 * device: on egress the packet's own socket, on ingress the socket the packet is for (looked up
 * by its addresses and ports). They return -1 (a match: the filter's mirred action redirects the
 * packet to the IFB device) with skb->priority set to the class, or 0 (no match: the packet goes
 * on untouched). */

struct app_tag {
	__u64 ino;
	__u64 cgid;
	__u32 dev, uid;
	__u16 limit, pad0;
	__u32 tgid;
	/* what the socket sent [0] and received [1] since its counts last went to qosd_stats, the
	 * DSCP they were of, and when (ms, coarse) they last went */
	__u64 acc_bytes[2];
	__u32 acc_pkts[2];
	__u32 acc_at[2];
	__u8 acc_dscp[2], pad1[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct app_tag);
} qosd_tags SEC(".maps");

/* 32 bytes; src/ebpf/apps.ts reads the same layout. dir: 0 sent, 1 received. A socket older
 * than the programs has no tag: its uid and cgroup come from the packet's socket, dev and ino
 * are 0. */
struct stat_key {
	__u64 ino;
	__u64 cgid;
	__u32 dev, uid;
	__u8 dir, dscp, pad[6];
};

struct stat_val {
	__u64 packets, bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct stat_key);
	__type(value, struct stat_val);
} qosd_stats SEC(".maps");

/* an executable's path within its filesystem (its last PATH_PARTS components, the file's name
 * first, each cut at PART_LEN - 1 bytes) and a process that ran it: the daemon names a program
 * whose processes are gone from these and the mount table */
#define PATH_PARTS 8
#define PART_LEN 40
struct exe_id {
	__u32 dev, pad;
	__u64 ino;
};
struct exe_name {
	char parts[PATH_PARTS][PART_LEN];
	__u32 tgid, depth; /* depth: the components read; PATH_PARTS + 1 if there were more */
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct exe_id);
	__type(value, struct exe_name);
} qosd_exe_names SEC(".maps");

/* scratch for a new name (too big for the stack) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exe_name);
} qosd_name_scratch SEC(".maps");

/* a limit's HTB classes on the IFB device (0: no limit that way) */
struct limit_classes {
	__u32 egress, ingress;
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct limit_classes);
} qosd_limits SEC(".maps");

/* The socket's tag, made now (in the process that creates or connects it) if it has none. */
static __always_inline struct app_tag *tag_of(struct bpf_sock *sk)
{
	struct app_tag *t = bpf_sk_storage_get(&qosd_tags, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!t || t->tgid)
		return t;
	__u64 ug = bpf_get_current_uid_gid();
	t->uid = (__u32)ug;
	t->cgid = bpf_get_current_cgroup_id();
	t->tgid = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *task = bpf_get_current_task_btf();
	struct mm_struct *mm = task->mm;
	if (!mm)
		return t;
	struct file *exe = mm->exe_file;
	if (!exe)
		return t;
	struct inode *inode = exe->f_inode;
	t->dev = inode->i_sb->s_dev;
	t->ino = inode->i_ino;
	struct exe_id id = { .dev = t->dev, .ino = t->ino };
	struct exe_name *known = bpf_map_lookup_elem(&qosd_exe_names, &id);
	if (known) {
		known->tgid = t->tgid;
		return t;
	}
	__u32 zero = 0;
	struct exe_name *n = bpf_map_lookup_elem(&qosd_name_scratch, &zero);
	if (!n)
		return t;
	n->tgid = t->tgid;
	n->depth = PATH_PARTS + 1;
	struct dentry *d = exe->f_path.dentry;
	for (int i = 0; i < PATH_PARTS; i++) {
		struct dentry *up = d->d_parent;
		if (!up || up == d) { /* the filesystem's root */
			n->depth = i;
			break;
		}
		bpf_probe_read_kernel_str(n->parts[i], PART_LEN, d->d_name.name);
		d = up;
	}
	bpf_map_update_elem(&qosd_exe_names, &id, n, BPF_NOEXIST);
	return t;
}

SEC("cgroup/sock_create")
int qosd_sock_create(struct bpf_sock *sk)
{
	tag_of(sk);
	return 1;
}

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* The packet's DSCP, and the length of its IP and transport headers (each segment of an
 * offloaded packet carries them): 0 when it is not IPv4 or IPv6. A cgroup_skb program's packet
 * starts at its IP header; the headers are read in place (no helper call), or with
 * bpf_skb_load_bytes where they are not in the linear part. */
static __always_inline __u32 ip_headers(struct __sk_buff *skb, __u8 *dscp)
{
	__u8 *d = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u8 b[40];
	__u32 hdr, proto;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (d + 20 <= end)
			__builtin_memcpy(b, d, 20);
		else if (bpf_skb_load_bytes(skb, 0, b, 20))
			return 0;
		*dscp = b[1] >> 2;
		hdr = (b[0] & 15) * 4;
		proto = b[9];
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (d + 8 <= end)
			__builtin_memcpy(b, d, 8);
		else if (bpf_skb_load_bytes(skb, 0, b, 8))
			return 0;
		*dscp = ((b[0] & 15) << 2) | (b[1] >> 6);
		hdr = 40;
		proto = b[6];
	} else {
		return 0;
	}
	if (proto == IPPROTO_UDP)
		return hdr + 8;
	if (proto == IPPROTO_TCP) {
		__u32 at = (hdr & 63) + 12;
		__u8 off;
		if (d + at + 1 <= end)
			off = d[at];
		else if (bpf_skb_load_bytes(skb, at, &off, 1))
			return hdr + 20;
		return hdr + (off >> 4) * 4;
	}
	return hdr;
}

static __always_inline void add_stats(struct stat_key *k, __u64 packets, __u64 bytes)
{
	struct stat_val *v = bpf_map_lookup_elem(&qosd_stats, k);
	if (!v) {
		struct stat_val z = { .packets = packets, .bytes = bytes };
		if (!bpf_map_update_elem(&qosd_stats, k, &z, BPF_NOEXIST))
			return;
		v = bpf_map_lookup_elem(&qosd_stats, k);
		if (!v)
			return;
	}
	v->packets += packets;
	v->bytes += bytes;
}

/* A socket's counts since the last time go to qosd_stats under its tag. */
static __always_inline void flush(struct app_tag *t, __u8 dir)
{
	dir &= 1;
	/* what is there now moves, less what another CPU adds meanwhile (it stays for next time) */
	__u64 bytes = t->acc_bytes[dir];
	__u32 packets = t->acc_pkts[dir];
	if (!bytes && !packets)
		return;
	__sync_fetch_and_add(&t->acc_bytes[dir], -bytes);
	__sync_fetch_and_add(&t->acc_pkts[dir], -packets);
	struct stat_key k = { .ino = t->ino, .cgid = t->cgid, .dev = t->dev, .uid = t->uid, .dir = dir, .dscp = t->acc_dscp[dir] };
	add_stats(&k, packets, bytes);
}

/* A socket's packets add to its own counts (its storage: no lookup), which go to qosd_stats
 * every FLUSH_PACKETS packets, after FLUSH_MS, when the DSCP changes, and at its release: a
 * stream of ACKs costs one hash update per 32 of them, not one each. */
#define FLUSH_PACKETS 32
#define FLUSH_MS 1000

static __always_inline int account(struct __sk_buff *skb, __u8 dir)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	__u8 dscp = 0;
	__u32 hdr = ip_headers(skb, &dscp);
	__u32 segs = skb->gso_segs;
	if (segs < 1)
		segs = 1;
	__u64 bytes = skb->len + (__u64)(segs - 1) * hdr;
	struct app_tag *t = bpf_sk_storage_get(&qosd_tags, sk, 0, 0);
	if (!t) {
		/* a socket older than the programs: counted at once, by its uid and cgroup */
		struct stat_key k = { .uid = bpf_get_socket_uid(skb), .cgid = bpf_skb_cgroup_id(skb), .dir = dir, .dscp = dscp };
		add_stats(&k, segs, bytes);
		return 1;
	}
	if (t->acc_dscp[dir] != dscp) {
		flush(t, dir);
		t->acc_dscp[dir] = dscp;
	}
	__sync_fetch_and_add(&t->acc_bytes[dir], bytes);
	__sync_fetch_and_add(&t->acc_pkts[dir], segs);
	__u32 now = bpf_ktime_get_coarse_ns() >> 20;
	if (t->acc_pkts[dir] >= FLUSH_PACKETS || now - t->acc_at[dir] >= FLUSH_MS) {
		t->acc_at[dir] = now;
		flush(t, dir);
	}
	return 1;
}

SEC("cgroup_skb/egress")
int qosd_count_egress(struct __sk_buff *skb) { return account(skb, 0); }

SEC("cgroup_skb/ingress")
int qosd_count_ingress(struct __sk_buff *skb) { return account(skb, 1); }

/* -1: into the limit's class (priority set), 0: not limited this way. */
static __always_inline int limit_class(struct app_tag *t, int ingress, struct __sk_buff *skb)
{
	if (!t || !t->limit)
		return 0;
	__u32 id = t->limit;
	struct limit_classes *c = bpf_map_lookup_elem(&qosd_limits, &id);
	if (!c)
		return 0;
	__u32 cls = ingress ? c->ingress : c->egress;
	if (!cls)
		return 0;
	skb->priority = cls;
	return -1;
}

SEC("tc")
int qosd_limit_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return 0;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 0;
	return limit_class(bpf_sk_storage_get(&qosd_tags, sk, 0, 0), 0, skb);
}

SEC("tc")
int qosd_limit_ingress(struct __sk_buff *skb)
{
	struct bpf_sock_tuple tup = {};
	__u8 b[40];
	__u32 len, hdr, proto;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes_relative(skb, 0, b, 20, BPF_HDR_START_NET))
			return 0;
		if (b[6] & 0x3f || b[7]) /* a fragment: its ports are in the first one only */
			return 0;
		hdr = (b[0] & 15) * 4;
		proto = b[9];
		__builtin_memcpy(&tup.ipv4.saddr, b + 12, 4);
		__builtin_memcpy(&tup.ipv4.daddr, b + 16, 4);
		len = sizeof(tup.ipv4);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes_relative(skb, 0, b, 40, BPF_HDR_START_NET))
			return 0;
		hdr = 40;
		proto = b[6]; /* extension headers are not followed */
		__builtin_memcpy(tup.ipv6.saddr, b + 8, 16);
		__builtin_memcpy(tup.ipv6.daddr, b + 24, 16);
		len = sizeof(tup.ipv6);
	} else {
		return 0;
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	__u16 ports[2];
	if (bpf_skb_load_bytes_relative(skb, hdr & 63, ports, 4, BPF_HDR_START_NET))
		return 0;
	if (len == sizeof(tup.ipv4)) {
		tup.ipv4.sport = ports[0];
		tup.ipv4.dport = ports[1];
	} else {
		tup.ipv6.sport = ports[0];
		tup.ipv6.dport = ports[1];
	}
	struct bpf_sock *sk = proto == IPPROTO_TCP ? bpf_sk_lookup_tcp(skb, &tup, len, BPF_F_CURRENT_NETNS, 0)
						   : bpf_sk_lookup_udp(skb, &tup, len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	int r = limit_class(bpf_sk_storage_get(&qosd_tags, sk, 0, 0), 1, skb);
	bpf_sk_release(sk);
	return r;
}

static __always_inline int match(const struct slot *s, struct bpf_sock_addr *ctx, const int v6,
				 const int ev, __u32 uid, __u32 gid, __u16 port)
{
	if (!(s->events & ev))
		return 0;
	if (s->families && !(s->families & (v6 ? 2 : 1)))
		return 0;
	__u32 type = ctx->type, proto = ctx->protocol;
	if (s->types && !(s->types & (type == SOCK_STREAM ? 1 : type == SOCK_DGRAM ? 2 : 0)))
		return 0;
	if (s->protos && !(s->protos & (proto == IPPROTO_TCP ? 1 : proto == IPPROTO_UDP ? 2 : 0)))
		return 0;
	if ((s->flags & F_UID) && s->uid != uid)
		return 0;
	if ((s->flags & F_GID) && s->gid != gid)
		return 0;
	if (port < s->port_lo || port > s->port_hi)
		return 0;
	if (s->flags & F_NET) {
		if (v6) {
			if ((ctx->user_ip6[0] & s->mask[0]) != s->net[0] || (ctx->user_ip6[1] & s->mask[1]) != s->net[1] ||
			    (ctx->user_ip6[2] & s->mask[2]) != s->net[2] || (ctx->user_ip6[3] & s->mask[3]) != s->net[3])
				return 0;
		} else if ((ctx->user_ip4 & s->mask[0]) != s->net[0]) {
			return 0;
		}
	}
	return 1;
}

/* Records a decided socket (a datagram socket at its first send only). */
static __always_inline void record(struct bpf_sock_addr *ctx, const int v6, const int ev, struct exe_key *k,
				   const struct slot *s, __u32 uid, __u32 gid, __u16 port, __u16 result)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct sockrec r = {
		.ino = k->ino, .tgid = bpf_get_current_pid_tgid() >> 32, .uid = uid, .gid = gid, .dev = k->dev,
		.rule = s->rule, .family = v6 ? AF_INET6 : AF_INET, .type = ctx->type, .proto = ctx->protocol,
		.hook = ev, .tos = s->tos, .prio = s->prio, .port = port, .result = result,
	};
	if (v6) {
		r.addr[0] = ctx->user_ip6[0];
		r.addr[1] = ctx->user_ip6[1];
		r.addr[2] = ctx->user_ip6[2];
		r.addr[3] = ctx->user_ip6[3];
	} else {
		r.addr[0] = ctx->user_ip4;
	}
	/* a connect records (again: a datagram socket may connect anew); a send only the first */
	if (!bpf_map_update_elem(&qosd_sockets, &cookie, &r, ev == 1 ? BPF_ANY : BPF_NOEXIST))
		count(C_DECIDED);
}

/* 1: let the call go on; 0: refuse it (with the errno set by bpf_set_retval). */
static __always_inline int decide(struct bpf_sock_addr *ctx, const int v6, const int ev)
{
	__u32 zero = 0;
	__u32 *gen = bpf_map_lookup_elem(&qosd_gen, &zero);
	if (!gen)
		return 1;
	/* a BTF pointer: its fields are read by plain loads the verifier guards, not helper calls */
	struct task_struct *task = bpf_get_current_task_btf();
	struct mm_struct *mm = task->mm;
	if (!mm)
		return 1; /* a kernel thread */
	struct file *exe = mm->exe_file;
	if (!exe)
		return 1;
	struct inode *inode = exe->f_inode;
	struct exe_key k = { .gen = *gen, .dev = inode->i_sb->s_dev, .ino = inode->i_ino };
	struct entry *v = bpf_map_lookup_elem(&qosd_exe, &k);
	if (!v)
		return 1;
	__u64 ug = bpf_get_current_uid_gid();
	__u32 uid = (__u32)ug, gid = ug >> 32;
	__u16 port = bpf_ntohs(ctx->user_port);
	const struct slot *s = 0;
	for (int i = 0; i < MAX_SLOTS; i++) {
		if (i >= v->n)
			break;
		if (match(&v->s[i], ctx, v6, ev, uid, gid, port)) {
			s = &v->s[i];
			break;
		}
	}
	if (!s)
		return 1;
	__sync_fetch_and_add(&v->hits, 1);
	if (s->flags & F_DENY) {
		count(C_REFUSED);
		bpf_set_retval(-(int)s->errno_);
		return 0;
	}
	if (!(s->flags & (F_TOS | F_PRIO | F_LIMIT)))
		return 1; /* the rule leaves the socket alone (none) */
	/* a process the agent serves keeps the agent's decision */
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 *agent = bpf_map_lookup_elem(&qosd_agent, &tgid);
	if (agent && *agent == task->group_leader->start_boottime / NS_PER_TICK)
		return 1;
	__u16 result = 0;
	if (s->flags & F_LIMIT) {
		struct bpf_sock *sk = ctx->sk;
		struct app_tag *t = sk ? tag_of(sk) : 0;
		if (t) {
			t->limit = s->limit;
			result |= R_LIMIT;
		}
	}
	if (s->flags & F_TOS) {
		int tos = 0;
		if (v6)
			bpf_getsockopt(ctx, SOL_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
		else
			bpf_getsockopt(ctx, SOL_IP, IP_TOS, &tos, sizeof(tos));
		if ((tos & 0xfc) && !(s->flags & F_OVERRIDE)) {
			result |= R_APP_TOS;
		} else {
			tos = s->tos;
			if (v6)
				bpf_setsockopt(ctx, SOL_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
			else
				bpf_setsockopt(ctx, SOL_IP, IP_TOS, &tos, sizeof(tos));
			result |= R_TOS;
		}
	}
	if (s->flags & F_PRIO) {
		int prio = s->prio;
		bpf_setsockopt(ctx, SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio));
		result |= R_PRIO;
	}
	record(ctx, v6, ev, &k, s, uid, gid, port, result);
	return 1;
}

SEC("cgroup/connect4")
int qosd_connect4(struct bpf_sock_addr *ctx) { return decide(ctx, 0, 1); }

SEC("cgroup/connect6")
int qosd_connect6(struct bpf_sock_addr *ctx) { return decide(ctx, 1, 1); }

SEC("cgroup/sendmsg4")
int qosd_sendmsg4(struct bpf_sock_addr *ctx) { return decide(ctx, 0, 2); }

SEC("cgroup/sendmsg6")
int qosd_sendmsg6(struct bpf_sock_addr *ctx) { return decide(ctx, 1, 2); }

/* A socket's release: its record goes, and its last counts go to qosd_stats. */
SEC("cgroup/sock_release")
int qosd_release(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	bpf_map_delete_elem(&qosd_sockets, &cookie);
	/* and what it counted since its counts last went to qosd_stats goes now */
	struct app_tag *t = bpf_sk_storage_get(&qosd_tags, sk, 0, 0);
	if (t) {
		flush(t, 0);
		flush(t, 1);
	}
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
