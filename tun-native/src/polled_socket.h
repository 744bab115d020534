// A socket handed to JavaScript whose fd is read on the JS thread whenever it is readable: a libuv
// poll on the environment's own loop watches it, so no thread and no pool slot sits waiting for
// data that may take seconds or never come. The netlink socket (netlink_socket.cc) and the ping
// socket (ping_socket.cc) are both this; what they read, and how they deliver it, is their own.
//
// What every such socket shares is kept here, once:
// - SocketPoll: the fd and the uv_poll_t that watches it, from adoption to close, by close(), the
//   finalizer or environment teardown, without freeing memory libuv still uses.
// - PolledSocket<T>: the JS object around it: start() keeps the object alive while it delivers,
//   stop()/ref()/unref()/close()/closed behave the same on every socket, a wake-up drains the fd
//   with nothing escaping the libuv callback, a pending socket error (POLLERR) is collected and
//   polling resumed, and handlers run as top-level callbacks.
//
// (The TUN reader's eventfd notifier in tun_device.cc is polled too, but is not a socket of
// JavaScript's: no JS object, never keeps the loop alive, closed with the reader. It stays there.)
#pragma once
#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"

namespace tunkeeper {

// The fd and its poll handle. No JavaScript runs here, so every part is safe from a finalizer and
// from environment teardown.
class SocketPoll {
 public:
  // What the poll reports to, on the JS thread; never after Close().
  class Owner {
   public:
    // The fd is readable, or (status < 0) the poll failed: libuv has stopped the handle then.
    virtual void OnPollEvent(int status) = 0;
    // The environment is being torn down: the owner must Close(true) now.
    virtual void OnEnvTeardown() = 0;

   protected:
    ~Owner() = default;
  };

  SocketPoll() = default;
  ~SocketPoll() { Close(false); }
  SocketPoll(const SocketPoll&) = delete;
  SocketPoll& operator=(const SocketPoll&) = delete;

  // Watches *fd on env's loop and takes it (*fd becomes -1). Throws when there is no loop or the
  // poll cannot be made, leaving *fd with the caller (who closes it). `what` says what was being
  // done, for that error ("watch a ping socket on the event loop").
  void Adopt(Napi::Env env, int* fd, Owner* owner, const std::string& what);

  int fd() const { return fd_; }
  bool polling() const { return polling_; }
  // (Re)starts watching for readability. Returns 0 or a libuv error (a negative errno).
  int Start();
  void Stop();
  // Whether the handle keeps the loop alive; no-ops once closed.
  void Ref();
  void Unref();
  // The socket's pending error (reading SO_ERROR also clears it), or getsockopt's own errno.
  int TakeSocketError() const;
  // Closes the fd and hands the poll handle to uv_close. fromCleanupHook: called from
  // Owner::OnEnvTeardown, whose hook may only be removed once libuv has let go of the handle.
  void Close(bool fromCleanupHook);

 private:
  struct Handle;
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg);

  int fd_ = -1;
  Handle* handle_ = nullptr;
  bool polling_ = false;
};

// Runs `fn` as a top-level callback (MakeCallback: async context, microtasks drained after). A
// handler that throws is an uncaught exception of the process, as for any event callback; throws
// an empty Napi::Error when JavaScript cannot run any more (environment teardown). An empty `fn`
// is not called.
void CallHandler(napi_env env, napi_async_context context, napi_value self, const Napi::FunctionReference& fn,
                 std::initializer_list<napi_value> args);

// The JS object of a polled socket. T derives from PolledSocket<T>, befriends it, and provides:
//   static constexpr const char* kKind;        // "ping socket", as in "send on a closed ping socket"
//   std::string Describe() const;              // this socket, for messages ("netlink socket (port 7)")
//   void Drain(Napi::Object self, int soerr);  // reads what is readable and delivers it; soerr is a
//                                              // pending socket error collected on POLLERR, or 0
//   void ResetHandlers();                      // drops the handlers its start() stored (not onError_)
//   void OnClosed();                           // optional: frees what only an open socket needs
// Its constructor does whatever can throw first and then calls Adopt(), and its start() checks and
// stores its own handlers and then calls StartPolling().
template <typename T>
class PolledSocket : public Napi::ObjectWrap<T>, private SocketPoll::Owner {
 protected:
  using Wrap = Napi::ObjectWrap<T>;
  using Property = typename Wrap::PropertyDescriptor;

  explicit PolledSocket(const Napi::CallbackInfo& info) : Wrap(info) {}

  // The class, with T's own methods followed by stop, ref, unref, close and closed. (These are
  // members of this base, so they go through node-addon-api's runtime overloads, which dispatch as
  // its templated ones do: unwrap `this`, then call.)
  static Napi::Function DefineSocketClass(Napi::Env env, const char* name, std::initializer_list<Property> own) {
    using Method = typename Wrap::InstanceMethodCallback;
    using Getter = typename Wrap::InstanceGetterCallback;
    std::vector<Property> properties(own);
    properties.push_back(Wrap::InstanceMethod("stop", static_cast<Method>(&PolledSocket::Stop)));
    properties.push_back(Wrap::InstanceMethod("ref", static_cast<Method>(&PolledSocket::RefHandle)));
    properties.push_back(Wrap::InstanceMethod("unref", static_cast<Method>(&PolledSocket::UnrefHandle)));
    properties.push_back(Wrap::InstanceMethod("close", static_cast<Method>(&PolledSocket::Close)));
    properties.push_back(Wrap::InstanceAccessor("closed", static_cast<Getter>(&PolledSocket::Closed), nullptr));
    return Wrap::DefineClass(env, name, properties);
  }

  // Takes the opened fd (*fd becomes -1). Call it after everything in T's constructor that can
  // throw: a constructor that throws gets no destructor call, and the fd then stays with the
  // opener, which closes it. Nothing after this may throw.
  void Adopt(Napi::Env env, int* fd, const char* resourceName) {
    auto asyncContext = std::make_unique<Napi::AsyncContext>(env, resourceName);
    poll_.Adopt(env, fd, this, std::string("watch a ") + T::kKind + " on the event loop");
    asyncContext_ = std::move(asyncContext);
  }

  int fd() const { return poll_.fd(); }
  // Started and open: handlers may be called. Checked after every call into JavaScript, which may
  // have stopped or closed the socket.
  bool Active() const { return poll_.polling() && poll_.fd() >= 0; }

  // EBADF for a call on a closed socket: "<action> on a closed <kind>".
  void CheckOpen(const char* syscall, const std::string& action) {
    if (poll_.fd() < 0) ThrowErrno(this->Env(), EBADF, syscall, action + " on a closed " + T::kKind);
  }

  // The rest of start(), once T has stored its own handlers.
  void StartPolling(Napi::Env env, Napi::Function onError) {
    onError_ = Napi::Persistent(onError);
    if (!poll_.polling()) {
      int r = poll_.Start();
      if (r < 0) ThrowErrno(env, -r, "uv_poll_start", "start receiving on " + Self().Describe());
    }
    // A started socket delivers to its handlers even when nothing else references it.
    if (!selfRef_) {
      this->Ref();
      selfRef_ = true;
    }
  }

  // A receive that failed with `err`, as onError gets it.
  Napi::Error ReceiveError(int err, const char* syscall) { return MakeErrnoError(this->Env(), err, syscall, "receive on " + Self().Describe()); }

  void Call(const Napi::FunctionReference& fn, Napi::Object self, std::initializer_list<napi_value> args) {
    CallHandler(this->Env(), *asyncContext_, self, fn, args);
  }

  void OnClosed() {}

  Napi::FunctionReference onError_;

 private:
  T& Self() { return *static_cast<T*>(this); }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopPolling();
    return info.Env().Undefined();
  }

  Napi::Value RefHandle(const Napi::CallbackInfo& info) {
    poll_.Ref();
    return info.Env().Undefined();
  }

  Napi::Value UnrefHandle(const Napi::CallbackInfo& info) {
    poll_.Unref();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    StopPolling();
    CloseFd(false);
    return info.Env().Undefined();
  }

  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), poll_.fd() < 0); }

  void StopPolling() {
    poll_.Stop();
    onError_.Reset();
    Self().ResetHandlers();
    if (selfRef_) {
      selfRef_ = false;
      this->Unref();
    }
  }

  // No JavaScript is touched, so this is safe from environment teardown (the finalizer's close is
  // poll_'s destructor).
  void CloseFd(bool fromCleanupHook) {
    poll_.Close(fromCleanupHook);
    Self().OnClosed();
  }

  void OnEnvTeardown() override { CloseFd(true); }

  void OnPollEvent(int status) override {
    if (!Active()) return;
    Napi::Env env = this->Env();
    Napi::HandleScope scope(env);
    // A local handle keeps the wrapper alive while handlers run, even if one of them closes it and
    // drops the last reference.
    Napi::Object self = this->Value();
    try {
      int soerr = 0;
      if (status < 0 && !ResumeAfterPollError(self, &soerr)) return;
      Self().Drain(self, soerr);
    } catch (const Napi::Error& e) {
      // Nothing may escape a libuv callback. A failing N-API call lands here: most often because
      // the environment is being torn down (node runs the loop once more with JavaScript
      // disallowed, before the cleanup hooks close this socket). Stop receiving; if JavaScript
      // can still run, the error becomes an uncaught exception (a no-op during teardown).
      poll_.Stop();
      if (!e.Value().IsEmpty()) napi_fatal_exception(env, e.Value());
    }
  }

  // libuv stops a poll handle that reports POLLERR, which on a socket is a pending socket error:
  // collect it into *soerr (reading SO_ERROR also clears it, so POLLERR does not repeat) and
  // resume polling. False when polling cannot resume: the socket is stopped and onError was told.
  bool ResumeAfterPollError(Napi::Object self, int* soerr) {
    *soerr = poll_.TakeSocketError();
    int r = poll_.Start();
    if (r < 0) {
      Napi::FunctionReference onError = Napi::Persistent(onError_.Value());
      StopPolling();
      Call(onError, self, {MakeErrnoError(this->Env(), -r, "uv_poll_start", "resume receiving on " + Self().Describe()).Value()});
      return false;
    }
    return true;
  }

  bool selfRef_ = false;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
  // Last, so that it is destroyed first: the finalizer closes the fd before anything else goes.
  SocketPoll poll_;
};

}  // namespace tunkeeper
