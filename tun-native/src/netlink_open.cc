#include "netlink_open.h"

#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "netns.h"

namespace tunkeeper {

namespace {

// Without CAP_NET_ADMIN (e.g. root of a user namespace) the *FORCE options answer EPERM; the
// plain option still works, capped by net.core.{r,w}mem_max, which is what an unprivileged
// caller can get anyway.
int SetBufferSize(int fd, bool receive, int bytes, const char** syscall) {
  const int force = receive ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
  const int plain = receive ? SO_RCVBUF : SO_SNDBUF;
  if (setsockopt(fd, SOL_SOCKET, force, &bytes, sizeof bytes) == 0) return 0;
  if (errno != EPERM) {
    *syscall = receive ? "setsockopt(SO_RCVBUFFORCE)" : "setsockopt(SO_SNDBUFFORCE)";
    return errno;
  }
  if (setsockopt(fd, SOL_SOCKET, plain, &bytes, sizeof bytes) == 0) return 0;
  *syscall = receive ? "setsockopt(SO_RCVBUF)" : "setsockopt(SO_SNDBUF)";
  return errno;
}

// A flag the kernel may not know (ENOPROTOOPT before it was added) is simply not in effect; the
// caller learns that from `took`.
int EnableNetlinkFlag(int fd, int option, bool* took) {
  int one = 1;
  if (setsockopt(fd, SOL_NETLINK, option, &one, sizeof one) == 0) {
    *took = true;
    return 0;
  }
  return errno == ENOPROTOOPT ? 0 : errno;
}

int GetIntOption(int fd, int option, int* value) {
  socklen_t len = sizeof *value;
  return getsockopt(fd, SOL_SOCKET, option, value, &len) == 0 ? 0 : errno;
}

int Configure(int fd, const NetlinkOpenOptions& opts, NetlinkOpened* out, NetlinkOpenFailure* fail) {
  int err;
  if (opts.rcvbuf > 0 && (err = SetBufferSize(fd, true, opts.rcvbuf, &fail->syscall))) {
    fail->what = "set the receive buffer of a netlink socket to " + std::to_string(opts.rcvbuf) + " bytes";
    return err;
  }
  if (opts.sndbuf > 0 && (err = SetBufferSize(fd, false, opts.sndbuf, &fail->syscall))) {
    fail->what = "set the send buffer of a netlink socket to " + std::to_string(opts.sndbuf) + " bytes";
    return err;
  }
  struct Flag {
    bool wanted;
    int option;
    bool* took;
    const char* syscall;
  } flags[] = {
      {opts.extAck, NETLINK_EXT_ACK, &out->features.extAck, "setsockopt(NETLINK_EXT_ACK)"},
      {opts.strictCheck, NETLINK_GET_STRICT_CHK, &out->features.strictCheck, "setsockopt(NETLINK_GET_STRICT_CHK)"},
      {opts.capAck, NETLINK_CAP_ACK, &out->features.capAck, "setsockopt(NETLINK_CAP_ACK)"},
  };
  for (const Flag& f : flags) {
    if (!f.wanted) continue;
    if ((err = EnableNetlinkFlag(fd, f.option, f.took))) {
      fail->syscall = f.syscall;
      fail->what = "configure a netlink socket";
      return err;
    }
  }

  // nl_pid 0: the kernel picks a free port id. Groups are joined afterwards with
  // NETLINK_ADD_MEMBERSHIP, which (unlike nl_groups at bind) reaches groups above 32.
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) < 0) {
    fail->syscall = "bind";
    fail->what = "bind a netlink socket";
    return errno;
  }
  for (uint32_t group : opts.groups) {
    if ((err = SetNetlinkMembership(fd, group, true))) {
      fail->syscall = "setsockopt(NETLINK_ADD_MEMBERSHIP)";
      fail->what = "join netlink multicast group " + std::to_string(group);
      return err;
    }
  }

  socklen_t len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) < 0) {
    fail->syscall = "getsockname";
    fail->what = "read the port id of a netlink socket";
    return errno;
  }
  out->portId = local.nl_pid;
  if ((err = GetIntOption(fd, SO_RCVBUF, &out->rcvbuf)) || (err = GetIntOption(fd, SO_SNDBUF, &out->sndbuf))) {
    fail->syscall = "getsockopt";
    fail->what = "read the buffer sizes of a netlink socket";
    return err;
  }
  return 0;
}

}  // namespace

int OpenNetlinkSocket(const NetlinkOpenOptions& opts, NetlinkOpened* out, NetlinkOpenFailure* fail) {
  *out = NetlinkOpened{};
  out->kernelOnly = opts.kernelOnly;
  const std::string where = opts.netnsPath.empty() ? "" : " in network namespace " + opts.netnsPath;

  // A socket belongs to the namespace it was created in, for its whole life: only socket() has to
  // run inside the target namespace; the rest works from any thread.
  int fd = -1;
  const char* nsSyscall = nullptr;  // set by RunInNetns only when entering the namespace failed
  int err = RunInNetns(
      opts.netnsPath,
      [&]() {
        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, opts.protocol);
        return fd < 0 ? errno : 0;
      },
      &nsSyscall);
  if (err) {
    fail->err = err;
    fail->syscall = nsSyscall ? nsSyscall : "socket(AF_NETLINK)";
    fail->what = nsSyscall ? "enter network namespace " + opts.netnsPath + " to open a netlink socket"
                           : "open a netlink socket (protocol " + std::to_string(opts.protocol) + ")" + where;
    return err;
  }

  if ((err = Configure(fd, opts, out, fail))) {
    fail->err = err;
    fail->what += where;
    close(fd);
    return err;
  }
  out->fd = fd;
  return 0;
}

int SetNetlinkMembership(int fd, uint32_t group, bool join) {
  unsigned int g = group;
  int option = join ? NETLINK_ADD_MEMBERSHIP : NETLINK_DROP_MEMBERSHIP;
  return setsockopt(fd, SOL_NETLINK, option, &g, sizeof g) == 0 ? 0 : errno;
}

int ListNetlinkMemberships(int fd, std::vector<uint32_t>* groups) {
  // The kernel answers with a bitmap of 32-bit words and sets len to the size it needs; one retry
  // with that size covers families with more groups than the first guess.
  std::vector<uint32_t> words(8);
  for (int attempt = 0; attempt < 2; attempt++) {
    socklen_t len = words.size() * sizeof(uint32_t);
    if (getsockopt(fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, words.data(), &len) < 0) return errno;
    size_t needed = (len + sizeof(uint32_t) - 1) / sizeof(uint32_t);
    if (needed <= words.size()) {
      groups->clear();
      for (size_t w = 0; w < needed; w++) {
        for (uint32_t bit = 0; bit < 32; bit++) {
          if (words[w] & (1u << bit)) groups->push_back(static_cast<uint32_t>(w * 32 + bit + 1));
        }
      }
      return 0;
    }
    words.assign(needed, 0);
  }
  return EOVERFLOW;
}

}  // namespace tunkeeper
