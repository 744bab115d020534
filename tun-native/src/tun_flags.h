// The TUN/TAP flag and offload bits tunkeeper uses, and a human description of a request, so
// error messages name the device and flags that were asked for.
#pragma once
#include <linux/if_tun.h>

#include <cstddef>
#include <string>

// Older uapi headers lack the UDP segmentation offload bits (added in Linux 6.2).
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

namespace tunkeeper {

// The largest frame a TUN/TAP fd can hand over or take: a 64 KiB IP packet (GSO packets with
// IFF_VNET_HDR are never larger) plus packet-info, virtio-net header and Ethernet/VLAN header.
// Reads use buffers this large so nothing is ever truncated; writes above it get EMSGSIZE.
constexpr std::size_t kMaxFrame = 65536 + 64;

constexpr unsigned kTunOffloadMask =
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO | TUN_F_USO4 | TUN_F_USO6;

inline bool IsTap(unsigned flags) { return (flags & IFF_TAP) != 0; }

// "tun", "tap"; plus the optional features that were requested, for messages.
inline std::string DescribeFlags(unsigned flags) {
  std::string s = IsTap(flags) ? "tap" : "tun";
  if (flags & IFF_MULTI_QUEUE) s += ", multi-queue";
  if (flags & IFF_VNET_HDR) s += ", vnet header";
  if (!(flags & IFF_NO_PI)) s += ", packet info";
  return s;
}

}  // namespace tunkeeper
