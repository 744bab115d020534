/** Address messages (struct ifaddrmsg + IFA_* attributes; linux/if_addr.h). */

/** Size of struct ifaddrmsg: u8 family, u8 prefixlen, u8 flags, u8 scope, u32 index. */
export const IFADDRMSG_LEN = 8;

export const IFA_UNSPEC = 0;
/** The prefix address; on a point-to-point link, the peer's address. */
export const IFA_ADDRESS = 1;
/** The local address. */
export const IFA_LOCAL = 2;
export const IFA_LABEL = 3;
export const IFA_BROADCAST = 4;
export const IFA_ANYCAST = 5;
export const IFA_CACHEINFO = 6;
export const IFA_MULTICAST = 7;
/** u32 flags that extend the 8-bit ifa_flags. */
export const IFA_FLAGS = 8;
/** u32 metric of the prefix route the address implies. */
export const IFA_RT_PRIORITY = 9;
export const IFA_TARGET_NETNSID = 10;
/** u8 protocol that installed the address (IFAPROT_*). */
export const IFA_PROTO = 11;

// Address flags (ifa_flags / IFA_FLAGS).
export const IFA_F_SECONDARY = 0x01;
export const IFA_F_TEMPORARY = IFA_F_SECONDARY;
export const IFA_F_NODAD = 0x02;
export const IFA_F_OPTIMISTIC = 0x04;
export const IFA_F_DADFAILED = 0x08;
export const IFA_F_HOMEADDRESS = 0x10;
export const IFA_F_DEPRECATED = 0x20;
export const IFA_F_TENTATIVE = 0x40;
export const IFA_F_PERMANENT = 0x80;
export const IFA_F_MANAGETEMPADDR = 0x100;
export const IFA_F_NOPREFIXROUTE = 0x200;
export const IFA_F_MCAUTOJOIN = 0x400;
export const IFA_F_STABLE_PRIVACY = 0x800;

// IFA_PROTO values.
export const IFAPROT_UNSPEC = 0;
export const IFAPROT_KERNEL_LO = 1;
export const IFAPROT_KERNEL_RA = 2;
export const IFAPROT_KERNEL_LL = 3;

/** Lifetime value meaning "forever" in IFA_CACHEINFO. */
export const INFINITY_LIFE_TIME = 0xffffffff;
