// Creating and configuring an AF_NETLINK socket: plain syscalls, no JavaScript, so that the work
// can run off the JS thread (and, for another namespace, on the thread RunInNetns makes).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tunkeeper {

struct NetlinkOpenOptions {
  int protocol = 0;                // NETLINK_ROUTE
  std::vector<uint32_t> groups;    // multicast groups to join (any number, via NETLINK_ADD_MEMBERSHIP)
  int rcvbuf = 4 << 20;            // bytes asked for; 0 leaves the kernel default
  int sndbuf = 0;                  // bytes asked for; 0 leaves the kernel default
  bool extAck = true;              // NETLINK_EXT_ACK
  bool strictCheck = true;         // NETLINK_GET_STRICT_CHK
  bool capAck = true;              // NETLINK_CAP_ACK
  bool kernelOnly = true;          // receive side: drop datagrams not sent by the kernel
  std::string netnsPath;           // empty: the caller's namespace
};

// Which of the optional socket flags the kernel accepted (old kernels answer ENOPROTOOPT).
struct NetlinkFeatures {
  bool extAck = false;
  bool strictCheck = false;
  bool capAck = false;
};

struct NetlinkOpened {
  int fd = -1;
  uint32_t portId = 0;   // nl_pid the kernel assigned at bind
  int rcvbuf = 0;        // effective SO_RCVBUF (the kernel doubles what was asked)
  int sndbuf = 0;        // effective SO_SNDBUF; one send() may carry at most this minus 32 bytes
  bool kernelOnly = true;
  NetlinkFeatures features;
};

struct NetlinkOpenFailure {
  int err = 0;
  const char* syscall = "";
  std::string what;
};

// Opens, configures and binds the socket (non-blocking, close-on-exec). Returns 0 and fills *out,
// or an errno and fills *fail (the socket is closed then).
int OpenNetlinkSocket(const NetlinkOpenOptions& opts, NetlinkOpened* out, NetlinkOpenFailure* fail);

// NETLINK_ADD_MEMBERSHIP / NETLINK_DROP_MEMBERSHIP. Returns 0 or an errno.
int SetNetlinkMembership(int fd, uint32_t group, bool join);

// NETLINK_LIST_MEMBERSHIPS: the groups the socket is a member of, ascending. Returns 0 or an errno.
int ListNetlinkMemberships(int fd, std::vector<uint32_t>* groups);

}  // namespace tunkeeper
