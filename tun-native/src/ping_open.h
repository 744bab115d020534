// Opening an unprivileged ICMP "ping socket" (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), or
// AF_INET6 + IPPROTO_ICMPV6) inside a network namespace and binding it to one device. Plain
// syscalls, no JavaScript: it runs off the JS thread (and, for another namespace, on the thread
// RunInNetns makes).
//
// Why a ping socket: it needs no CAP_NET_RAW, the kernel picks the echo identifier (the socket's
// "port") and hands the socket only the replies that carry it, and it computes the checksums.
// What it needs instead: the caller's group must be inside net.ipv4.ping_group_range of the
// socket's namespace (one setting for both families), which a fresh namespace sets to "1 0"
// (nobody); systemd sets "0 2147483647" on hosts.
#pragma once
#include <string>

namespace tunkeeper {

struct PingOpenOptions {
  int family = 4;          // 4 or 6
  std::string ifname;      // SO_BINDTODEVICE: requests leave through it, replies must arrive on it
  std::string netnsPath;   // empty: the caller's namespace
};

struct PingOpened {
  int fd = -1;
  int ifindex = 0;         // of ifname, in the socket's namespace
};

struct PingOpenFailure {
  int err = 0;
  const char* syscall = "";
  std::string what;
  // Set when socket() answered EACCES: the namespace's net.ipv4.ping_group_range as read from
  // /proc inside it ("" if it could not be read) and the caller's effective gid.
  bool groupRange = false;
  std::string pingGroupRange;
  unsigned gid = 0;
};

// Returns 0 and fills *out (a non-blocking, close-on-exec fd), or an errno and fills *fail.
int OpenPingSocket(const PingOpenOptions& opts, PingOpened* out, PingOpenFailure* fail);

}  // namespace tunkeeper
