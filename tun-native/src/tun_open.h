// Opening a TUN/TAP device: /dev/net/tun, TUNSETIFF and the follow-up ioctls, run on whatever
// thread the caller picks (a libuv pool thread, or RunInNetns's thread inside a namespace). No
// N-API here: this is plain syscalls, so it can run off the JS thread.
#pragma once
#include <cstdint>
#include <string>

namespace tunkeeper {

struct TunOpenRequest {
  std::string name;            // empty: the kernel picks tun%d / tap%d
  unsigned flags = 0;          // IFF_TUN|IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE
  int persist = -1;            // -1: leave as it is (a new device is never persistent)
  int64_t owner = -1;          // -1: leave unset
  int64_t group = -1;
  int64_t offload = -1;        // TUN_F_* bits; -1: leave unset
  // Offered offloads the kernel may not know (USO4|USO6 before Linux 6.2): when TUNSETOFFLOAD
  // refuses `offload` with EINVAL, it is tried once more without these bits.
  int64_t offloadOptional = 0;
  int mtu = 0;                 // 0: leave the kernel's default
};

struct TunOpenResult {
  int fd = -1;                 // O_NONBLOCK | O_CLOEXEC
  std::string name;            // the kernel's actual name (TUNGETIFF)
  unsigned flags = 0;          // the device's actual flags (TUNGETIFF), IFF_PERSIST included
  int ifindex = 0;
  int64_t offload = -1;        // the TUN_F_* bits set, -1 when none were asked for
  // On failure: the errno is the return value; these say which call failed and what was being done.
  const char* syscall = nullptr;
  std::string what;
};

// Opens and configures the device in the calling thread's network namespace. Returns 0 (result
// filled, fd owned by the caller) or an errno (nothing left open; a device this call created and
// did not make persistent is gone again, because closing its only fd destroys it).
int OpenTunHere(const TunOpenRequest& req, TunOpenResult* result);

}  // namespace tunkeeper
