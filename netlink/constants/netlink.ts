/**
 * The netlink layer itself (linux/netlink.h): message header types and flags, attribute flag
 * bits, extended-ack attributes, socket options. Values are the kernel ABI; they never change.
 */

/** Size of struct nlmsghdr: u32 length, u16 type, u16 flags, u32 seq, u32 pid. */
export const NLMSG_HDRLEN = 16;
/** Messages and attributes start on 4-byte boundaries. */
export const NLMSG_ALIGNTO = 4;
export const NLA_ALIGNTO = 4;
/** Size of struct nlattr / struct rtattr: u16 length, u16 type. */
export const NLA_HDRLEN = 4;

// Control message types (< NLMSG_MIN_TYPE).
export const NLMSG_NOOP = 0x1;
export const NLMSG_ERROR = 0x2;
export const NLMSG_DONE = 0x3;
export const NLMSG_OVERRUN = 0x4;
export const NLMSG_MIN_TYPE = 0x10;

// nlmsg_flags, common to all requests and replies.
export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_ECHO = 0x08;
/** The dump was inconsistent: the table changed while it was being dumped. */
export const NLM_F_DUMP_INTR = 0x10;
/** The dump was filtered as the request asked (strict checking). */
export const NLM_F_DUMP_FILTERED = 0x20;

// Modifiers of GET requests.
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_ATOMIC = 0x400;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;

// Modifiers of NEW requests.
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;

// Modifiers of DELETE requests.
export const NLM_F_NONREC = 0x100;
export const NLM_F_BULK = 0x200;

// Flags of NLMSG_ERROR (acks) and NLMSG_DONE.
/** The error message carries only the request's header, not its payload. */
export const NLM_F_CAPPED = 0x100;
/** Extended-ack TLVs (NLMSGERR_ATTR_*) follow. */
export const NLM_F_ACK_TLVS = 0x200;

// Attribute type flag bits (the top two bits of nla_type).
export const NLA_F_NESTED = 1 << 15;
export const NLA_F_NET_BYTEORDER = 1 << 14;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

// Extended-ack attributes of NLMSG_ERROR / NLMSG_DONE (enum nlmsgerr_attrs).
export const NLMSGERR_ATTR_UNUSED = 0;
/** Error message text (string). */
export const NLMSGERR_ATTR_MSG = 1;
/** Offset of the offending attribute from the start of the original request (u32). */
export const NLMSGERR_ATTR_OFFS = 2;
/** Subsystem-specific cookie (binary). */
export const NLMSGERR_ATTR_COOKIE = 3;
/** The policy of the rejected attribute (nested, kept raw). */
export const NLMSGERR_ATTR_POLICY = 4;
/** Type of a missing required attribute (u32). */
export const NLMSGERR_ATTR_MISS_TYPE = 5;
/** Offset of the nest in which an attribute is missing (u32). */
export const NLMSGERR_ATTR_MISS_NEST = 6;

// Socket level and options (setsockopt(SOL_NETLINK, ...)).
export const SOL_NETLINK = 270;
export const NETLINK_ADD_MEMBERSHIP = 1;
export const NETLINK_DROP_MEMBERSHIP = 2;
export const NETLINK_PKTINFO = 3;
export const NETLINK_BROADCAST_ERROR = 4;
export const NETLINK_NO_ENOBUFS = 5;
export const NETLINK_LISTEN_ALL_NSID = 8;
export const NETLINK_LIST_MEMBERSHIPS = 9;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;
export const NETLINK_GET_STRICT_CHK = 12;

/** Protocol number of rtnetlink for socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE). */
export const NETLINK_ROUTE = 0;
