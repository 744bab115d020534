// Errors that cross into JavaScript: a NativeError (the TS facade's class) with the errno's
// symbolic name as `code`, the number as `errno`, the failing call as `syscall`, and a message a
// person understands (what was being done, and for the common errnos, what usually causes them).
#pragma once
#include <napi.h>
#include <string>

namespace tunkeeper {

// "EPERM", "ENOBUFS", ... ; "E<number>" for errnos without a known name.
const char* ErrnoName(int err);

// Builds the JS error object. `what` says what was being attempted ("create TUN device tk0").
Napi::Error MakeErrnoError(Napi::Env env, int err, const char* syscall, const std::string& what);

// The same with the caller's own explanation in place of the generic hint for the errno: for a
// call whose errno means something specific (EACCES from a ping socket is ping_group_range).
Napi::Error MakeErrnoErrorWithHint(Napi::Env env, int err, const char* syscall, const std::string& what, const std::string& hint);

// Throws it as a C++ exception (NAPI_CPP_EXCEPTIONS); use from within N-API callbacks.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& what);

// For argument validation: a TypeError / RangeError with code ERR_INVALID_ARG.
[[noreturn]] void ThrowInvalidArg(Napi::Env env, const std::string& message);

}  // namespace tunkeeper
