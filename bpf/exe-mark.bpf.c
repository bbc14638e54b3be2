/* Marking by executable in the kernel (issue 24; docs/ebpf-design.md): cgroup programs that
 * run at every connect and every unconnected send of an inet socket in their cgroup, find the
 * calling process's executable file (its device and inode, through the task's mm), and look
 * it up in `qosd_exe`. A hit sets IP_TOS (IPV6_TCLASS for IPv6) and SO_PRIORITY with
 * bpf_setsockopt before the first packet, or refuses the call with the errno it holds.
 *
 * Atomic reload: a key carries the policy's generation, and `qosd_gen` holds the live one. The
 * loader writes every entry of the next generation, then the generation (one 32-bit store),
 * then deletes the old entries: a call reads the generation once and sees one policy whole.
 *
 * Kernel structures are declared here with only the fields read, preserve_access_index: libbpf
 * relocates each field to where this kernel's BTF has it (CO-RE), so no vmlinux.h is needed. */

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define SOL_SOCKET 1
#define SO_PRIORITY 12
#define SOL_IP 0
#define IP_TOS 1
#define SOL_IPV6 41
#define IPV6_TCLASS 67
#define AF_INET 2
#define AF_INET6 10

struct super_block { __u32 s_dev; } __attribute__((preserve_access_index));
struct inode { unsigned long i_ino; struct super_block *i_sb; } __attribute__((preserve_access_index));
struct file { struct inode *f_inode; } __attribute__((preserve_access_index));
struct mm_struct { struct file *exe_file; } __attribute__((preserve_access_index));
struct task_struct { struct mm_struct *mm; } __attribute__((preserve_access_index));

/* An executable of one generation of the policy: s_dev as the kernel encodes it (major << 20 |
 * minor), not as stat(2) gives it. */
struct exe_key {
	__u32 gen;
	__u32 dev;
	__u64 ino;
};

/* What a hit does: tos (the whole byte: DSCP << 2) if mark_tos, priority if mark_prio;
 * errno: refuse with it (0: do not refuse). hits: how many calls it decided. */
struct verdict {
	__u8 mark_tos;
	__u8 tos;
	__u8 mark_prio;
	__u8 pad;
	__u32 prio;
	__u32 errno_;
	__u32 pad2;
	__u64 hits;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct exe_key);
	__type(value, struct verdict);
} qosd_exe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} qosd_gen SEC(".maps");

/* 1: let the call go on; 0: refuse it (with the errno set by bpf_set_retval). */
static __always_inline int decide(struct bpf_sock_addr *ctx)
{
	__u32 zero = 0;
	__u32 *gen = bpf_map_lookup_elem(&qosd_gen, &zero);
	if (!gen)
		return 1;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	if (!exe)
		return 1; /* a kernel thread */
	struct exe_key k = { .gen = *gen };
	k.dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	k.ino = BPF_CORE_READ(exe, f_inode, i_ino);
	struct verdict *v = bpf_map_lookup_elem(&qosd_exe, &k);
	if (!v)
		return 1;
	__sync_fetch_and_add(&v->hits, 1);
	if (v->errno_) {
		bpf_set_retval(-(int)v->errno_);
		return 0;
	}
	if (v->mark_tos) {
		int tos = v->tos;
		if (ctx->family == AF_INET6)
			bpf_setsockopt(ctx, SOL_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
		else
			bpf_setsockopt(ctx, SOL_IP, IP_TOS, &tos, sizeof(tos));
	}
	if (v->mark_prio) {
		int prio = v->prio;
		bpf_setsockopt(ctx, SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio));
	}
	return 1;
}

SEC("cgroup/connect4")
int qosd_connect4(struct bpf_sock_addr *ctx) { return decide(ctx); }

SEC("cgroup/connect6")
int qosd_connect6(struct bpf_sock_addr *ctx) { return decide(ctx); }

SEC("cgroup/sendmsg4")
int qosd_sendmsg4(struct bpf_sock_addr *ctx) { return decide(ctx); }

SEC("cgroup/sendmsg6")
int qosd_sendmsg6(struct bpf_sock_addr *ctx) { return decide(ctx); }

char LICENSE[] SEC("license") = "GPL";
