#include "tun_open.h"

#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tun_flags.h"

namespace tunkeeper {

namespace {

// Closes the fd unless released: every early return leaves nothing open.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  ~FdGuard() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

int Fail(TunOpenResult* result, int err, const char* syscall, std::string what) {
  result->syscall = syscall;
  result->what = std::move(what);
  return err;
}

std::string Quoted(const std::string& name) { return "'" + name + "'"; }

}  // namespace

int OpenTunHere(const TunOpenRequest& req, TunOpenResult* result) {
  // O_NONBLOCK: the reader thread polls and reads until EAGAIN; writes never wait.
  FdGuard fd(open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) return Fail(result, errno, "open", "open /dev/net/tun");

  std::string kind = DescribeFlags(req.flags);
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::strncpy(ifr.ifr_name, req.name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = static_cast<short>(req.flags);
  if (ioctl(fd.get(), TUNSETIFF, &ifr) < 0) {
    int err = errno;
    if (req.name.empty() || req.name.find('%') != std::string::npos)
      return Fail(result, err, "ioctl(TUNSETIFF)", "create a " + kind + " device" + (req.name.empty() ? "" : " named " + Quoted(req.name)));
    std::string what = "create or attach to " + kind + " device " + Quoted(req.name);
    // Attaching is where the confusing errors come from; say which case this is.
    if (if_nametoindex(req.name.c_str()) != 0) {
      if (err == EINVAL)
        what += " (a device of that name exists, but is a tun/tap device of the other mode or queue setting, or no tun/tap device at all)";
      else if (err == EPERM)
        what += " (the device exists: attaching needs CAP_NET_ADMIN, or the device's owner uid / group gid)";
    }
    return Fail(result, err, "ioctl(TUNSETIFF)", what);
  }

  std::memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd.get(), TUNGETIFF, &ifr) < 0) return Fail(result, errno, "ioctl(TUNGETIFF)", "read back the device's name");
  result->name.assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  // TUNGETIFF ORs in IFF_NOFILTER (no socket filter attached), which has the value of IFF_NO_PI,
  // and IFF_DETACH_QUEUE: neither says anything about the device. Whether packets carry packet
  // info is what this attach asked for (the kernel applies an attacher's NO_PI/VNET_HDR choice
  // to the device), so that bit comes from the request.
  result->flags = (static_cast<unsigned short>(ifr.ifr_flags) & ~(IFF_NO_PI | IFF_DETACH_QUEUE)) | (req.flags & IFF_NO_PI);
  const std::string dev = Quoted(result->name);

  if (req.owner >= 0 && ioctl(fd.get(), TUNSETOWNER, static_cast<unsigned long>(req.owner)) < 0)
    return Fail(result, errno, "ioctl(TUNSETOWNER)", "set owner uid " + std::to_string(req.owner) + " on " + dev);
  if (req.group >= 0 && ioctl(fd.get(), TUNSETGROUP, static_cast<unsigned long>(req.group)) < 0)
    return Fail(result, errno, "ioctl(TUNSETGROUP)", "set group gid " + std::to_string(req.group) + " on " + dev);
  if (req.offload >= 0) {
    unsigned long bits = static_cast<unsigned long>(req.offload);
    int rc = ioctl(fd.get(), TUNSETOFFLOAD, bits);
    // An older kernel refuses bits it does not know with EINVAL: probe, and fall back.
    if (rc < 0 && errno == EINVAL && (bits & static_cast<unsigned long>(req.offloadOptional))) {
      bits &= ~static_cast<unsigned long>(req.offloadOptional);
      rc = ioctl(fd.get(), TUNSETOFFLOAD, bits);
    }
    if (rc < 0) return Fail(result, errno, "ioctl(TUNSETOFFLOAD)", "set offloads on " + dev);
    result->offload = static_cast<int64_t>(bits);
  }

  // Interface ioctls go through a socket, which belongs to this thread's namespace: the device's.
  // AF_UNIX as a fallback for namespaces (or kernels) without IPv4: any socket can carry them.
  int sockFd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sockFd < 0) sockFd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  FdGuard sock(sockFd);
  if (sock.get() < 0) return Fail(result, errno, "socket", "open a socket to configure " + dev);
  if (req.mtu > 0) {
    std::memset(&ifr, 0, sizeof ifr);
    std::strncpy(ifr.ifr_name, result->name.c_str(), IFNAMSIZ - 1);
    ifr.ifr_mtu = req.mtu;
    if (ioctl(sock.get(), SIOCSIFMTU, &ifr) < 0)
      return Fail(result, errno, "ioctl(SIOCSIFMTU)", "set MTU " + std::to_string(req.mtu) + " on " + dev);
  }
  std::memset(&ifr, 0, sizeof ifr);
  std::strncpy(ifr.ifr_name, result->name.c_str(), IFNAMSIZ - 1);
  if (ioctl(sock.get(), SIOCGIFINDEX, &ifr) < 0) return Fail(result, errno, "ioctl(SIOCGIFINDEX)", "look up the index of " + dev);
  result->ifindex = ifr.ifr_ifindex;

  // Persist last: if anything above failed, closing the fd removed a device this call created.
  if (req.persist >= 0) {
    if (ioctl(fd.get(), TUNSETPERSIST, static_cast<unsigned long>(req.persist)) < 0)
      return Fail(result, errno, "ioctl(TUNSETPERSIST)", std::string(req.persist ? "make " : "unmake ") + dev + " persistent");
    result->flags = req.persist ? (result->flags | IFF_PERSIST) : (result->flags & ~IFF_PERSIST);
  }
  result->fd = fd.release();
  return 0;
}

}  // namespace tunkeeper
