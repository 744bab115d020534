// AF_NETLINK sockets integrated with libuv (filled in by the netlink-socket work).
#include "addon_data.h"

namespace tunkeeper {
void InitNetlinkSocket(Napi::Env env, Napi::Object exports) {}
}  // namespace tunkeeper
