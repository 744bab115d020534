// Entry point of the tun-native addon: every syscall tunkeeper makes passes through this module.
#include "addon_data.h"

namespace tunkeeper {

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  InitErrors(env, exports);
  InitNetns(env, exports);
  InitTunDevice(env, exports);
  InitNetlinkSocket(env, exports);
  InitOffload(env, exports);
  InitPingSocket(env, exports);
  return exports;
}

}  // namespace tunkeeper

static Napi::Object Init(Napi::Env env, Napi::Object exports) { return tunkeeper::InitAddon(env, exports); }

NODE_API_MODULE(tunkeeper_native, Init)
