#include "netns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "addon_data.h"
#include "errors.h"

namespace tunkeeper {

int RunInNetns(const std::string& path, const std::function<int()>& fn, const char** syscall) {
  if (path.empty()) return fn();
  int result = 0;
  // A fresh thread, not a libuv pool thread: a pool thread left in another namespace would run
  // unrelated work there later. The thread is joined before returning, so `fn` may capture by
  // reference.
  std::thread worker([&]() {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      result = errno;
      if (syscall) *syscall = "open";
      return;
    }
    if (setns(fd, CLONE_NEWNET) < 0) {
      result = errno;
      if (syscall) *syscall = "setns";
      close(fd);
      return;
    }
    close(fd);
    result = fn();
  });
  worker.join();
  return result;
}

// checkNetns(path): throws a NativeError when the namespace cannot be entered; lets the CLI fail
// early with "no such network namespace" instead of deep inside the first operation.
static void CheckNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) ThrowInvalidArg(env, "checkNetns expects a path");
  std::string path = info[0].As<Napi::String>();
  const char* syscall = "setns";
  int err = RunInNetns(path, [] { return 0; }, &syscall);
  if (err) ThrowErrno(env, err, syscall, "enter network namespace " + path);
}

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("checkNetns", Napi::Function::New(env, CheckNetns, "checkNetns"));
}

}  // namespace tunkeeper
