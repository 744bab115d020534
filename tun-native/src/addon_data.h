// Per-environment state of the addon. Node may load the addon into several contexts (jest runs
// each test file in its own VM context, worker threads have their own env), so nothing that holds
// a JS value may be static: everything lives in this instance data.
#pragma once
#include <napi.h>

namespace tunkeeper {

struct AddonData {
  // The TypeScript facade's NativeError class, registered once by setErrorClass(); used to throw
  // typed errors that carry code/errno/syscall.
  Napi::FunctionReference errorClass;
  Napi::FunctionReference tunDeviceClass;
  Napi::FunctionReference netlinkSocketClass;
  Napi::FunctionReference pingSocketClass;
};

inline AddonData* GetAddonData(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

// Module parts register themselves on the exports object.
void InitErrors(Napi::Env env, Napi::Object exports);
void InitNetns(Napi::Env env, Napi::Object exports);
void InitTunDevice(Napi::Env env, Napi::Object exports);
void InitNetlinkSocket(Napi::Env env, Napi::Object exports);
void InitOffload(Napi::Env env, Napi::Object exports);
void InitPingSocket(Napi::Env env, Napi::Object exports);

}  // namespace tunkeeper
