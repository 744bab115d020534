// TUN/TAP devices: see tun-native/README (filled in by the tun work).
#include "addon_data.h"

namespace tunkeeper {
void InitTunDevice(Napi::Env env, Napi::Object exports) {}
}  // namespace tunkeeper
