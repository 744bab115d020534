#include "ping_open.h"

#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "netns.h"

namespace tunkeeper {

namespace {

// /proc/sys/net is resolved against the reading thread's network namespace, so this must run on
// the thread that entered it: the value quoted to the operator is the one the kernel checked.
std::string ReadPingGroupRange() {
  int fd = open("/proc/sys/net/ipv4/ping_group_range", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return "";
  std::string s(buf, static_cast<size_t>(n));
  // The kernel prints "low\thigh\n"; quote it the way sysctl -w takes it.
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& c : s) {
    if (c == '\t') c = ' ';
  }
  return s;
}

}  // namespace

int OpenPingSocket(const PingOpenOptions& opts, PingOpened* out, PingOpenFailure* fail) {
  *out = PingOpened{};
  const std::string where = opts.netnsPath.empty() ? "" : " in network namespace " + opts.netnsPath;
  const bool v6 = opts.family == 6;
  const char* kind = v6 ? "an ICMPv6 ping socket" : "an ICMP ping socket";

  int fd = -1;
  const char* nsSyscall = nullptr;
  int err = RunInNetns(
      opts.netnsPath,
      [&]() {
        const int domain = v6 ? AF_INET6 : AF_INET;
        const int protocol = v6 ? static_cast<int>(IPPROTO_ICMPV6) : static_cast<int>(IPPROTO_ICMP);
        fd = socket(domain, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
        if (fd >= 0) return 0;
        int e = errno;
        if (e == EACCES) {
          fail->groupRange = true;
          fail->pingGroupRange = ReadPingGroupRange();
          fail->gid = static_cast<unsigned>(getegid());
        }
        return e;
      },
      &nsSyscall);
  if (err) {
    fail->err = err;
    fail->syscall = nsSyscall ? nsSyscall : (v6 ? "socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)" : "socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)");
    fail->what = nsSyscall ? "enter network namespace " + opts.netnsPath + " to open " + kind : std::string("open ") + kind + where;
    return err;
  }

  // The device is looked up in the socket's own namespace, whichever thread asks. Unprivileged
  // since Linux 5.7 (the socket is not yet bound to another device).
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, opts.ifname.c_str(), static_cast<socklen_t>(opts.ifname.size())) < 0) {
    fail->err = errno;
    fail->syscall = "setsockopt(SO_BINDTODEVICE)";
    fail->what = std::string("bind ") + kind + " to device " + opts.ifname + where;
    close(fd);
    return fail->err;
  }
  int ifindex = 0;
  socklen_t len = sizeof ifindex;
  if (getsockopt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &ifindex, &len) < 0) ifindex = 0;
  out->fd = fd;
  out->ifindex = ifindex;
  return 0;
}

}  // namespace tunkeeper
