/* 802.1p for host traffic control (docs/traffic-control.md, "802.1p"): at an interface's
 * egress (tc clsact, before its root qdisc), a packet whose priority (skb->priority, the HTB
 * class nftables chose for its flow) has an entry in `pcp` leaves with an 802.1Q priority tag:
 * VLAN id 0, the entry's PCP. A receiver without VLANs takes a VID 0 frame as untagged (IEEE
 * 802.1Q priority tagging). The daemon loads one copy per interface with `tc` and fills its
 * map with `bpftool`. */

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);   /* skb->priority: the class id, major << 16 | minor */
	__type(value, __u32); /* the PCP, 0-7 */
} qosd_pcp SEC(".maps");

SEC("tc")
int qosd_dot1p(struct __sk_buff *skb)
{
	__u32 key = skb->priority;
	__u32 *pcp = bpf_map_lookup_elem(&qosd_pcp, &key);

	/* a frame already tagged (a VLAN device's) keeps its tag */
	if (!pcp || skb->vlan_present)
		return TC_ACT_OK;
	bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), (__u16)((*pcp & 7) << 13));
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
