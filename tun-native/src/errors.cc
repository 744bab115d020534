#include "errors.h"

#include <cerrno>
#include <cstring>

#include "addon_data.h"

namespace tunkeeper {

const char* ErrnoName(int err) {
  switch (err) {
#define X(e) case e: return #e;
    X(EPERM) X(ENOENT) X(ESRCH) X(EINTR) X(EIO) X(ENXIO) X(E2BIG) X(EBADF) X(EAGAIN) X(ENOMEM)
    X(EACCES) X(EFAULT) X(EBUSY) X(EEXIST) X(ENODEV) X(ENOTDIR) X(EISDIR) X(EINVAL) X(ENFILE)
    X(EMFILE) X(ENOTTY) X(ENOSPC) X(EPIPE) X(ERANGE) X(ENAMETOOLONG) X(ENOSYS) X(ENOTEMPTY)
    X(ENODATA) X(EPROTO) X(EBADMSG) X(EOVERFLOW) X(ENOTSOCK) X(EDESTADDRREQ) X(EMSGSIZE)
    X(EPROTOTYPE) X(ENOPROTOOPT) X(EPROTONOSUPPORT) X(EOPNOTSUPP) X(EAFNOSUPPORT) X(EADDRINUSE)
    X(EADDRNOTAVAIL) X(ENETDOWN) X(ENETUNREACH) X(ECONNREFUSED) X(EHOSTUNREACH) X(ENOBUFS)
    X(ETIMEDOUT) X(EALREADY) X(EINPROGRESS) X(ECONNRESET) X(ENOTCONN) X(ENOLINK) X(ERFKILL)
#undef X
    default: return nullptr;
  }
}

// The hint says what the errno usually means for the calls this addon makes; the kernel's own
// text (strerror) is always included too.
static const char* Hint(int err) {
  switch (err) {
    case EPERM: return "the process needs CAP_NET_ADMIN in the device's network namespace";
    case EACCES: return "permission denied (is /dev/net/tun accessible, and is this the device's owner/group?)";
    case EBUSY: return "the device is held by another process, or a queue with these flags is already attached";
    case EINVAL: return "the kernel rejected the request (bad flag combination, or flags that differ from the existing device's)";
    case EMSGSIZE: return "the packet is larger than the device's MTU allows";
    case ENOENT: return "no such file (missing /dev/net/tun, or no such network namespace)";
    case ENODEV: return "no such device";
    case ENOBUFS: return "the receive buffer overflowed and messages were lost";
    case EBADF: return "the handle is closed";
    default: return nullptr;
  }
}

static Napi::Error Build(Napi::Env env, int err, const char* syscall, const std::string& what, const char* hint) {
  const char* name = ErrnoName(err);
  std::string code = name ? name : ("E" + std::to_string(err));
  std::string message = what + ": " + code + " (" + std::strerror(err) + ")";
  if (hint) message += ": " + std::string(hint);

  AddonData* data = GetAddonData(env);
  Napi::Object obj;
  if (data && !data->errorClass.IsEmpty()) {
    obj = data->errorClass.New({Napi::String::New(env, message)});
  } else {
    obj = Napi::Error::New(env, message).Value();
  }
  obj.Set("code", code);
  obj.Set("errno", Napi::Number::New(env, err));
  obj.Set("syscall", syscall);
  return Napi::Error(env, obj);
}

Napi::Error MakeErrnoError(Napi::Env env, int err, const char* syscall, const std::string& what) {
  return Build(env, err, syscall, what, Hint(err));
}

Napi::Error MakeErrnoErrorWithHint(Napi::Env env, int err, const char* syscall, const std::string& what, const std::string& hint) {
  return Build(env, err, syscall, what, hint.c_str());
}

void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& what) {
  throw MakeErrnoError(env, err, syscall, what);
}

void ThrowInvalidArg(Napi::Env env, const std::string& message) {
  Napi::Error e = Napi::TypeError::New(env, message);
  e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG"));
  throw e;
}

static void SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) ThrowInvalidArg(info.Env(), "setErrorClass expects a constructor");
  GetAddonData(info.Env())->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
}

void InitErrors(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
}

}  // namespace tunkeeper
