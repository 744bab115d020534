// AF_NETLINK sockets for JavaScript: openNetlinkSocket(options) resolves to a handle whose fd is
// polled on the libuv loop (uv_poll, no thread per socket). Everything readable in one wake-up is
// delivered in one call: onData(batch, count), with the datagram boundaries in the shared `ends`
// array (see netlink_receiver.h); ENOBUFS goes to onOverflow(), other receive errors to
// onError(err). The typed facade is tun-native/netlink-socket.ts.
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <memory>
#include <string>

#include "addon_data.h"
#include "errors.h"
#include "netlink_open.h"
#include "netlink_receiver.h"

namespace tunkeeper {

namespace {

class NetlinkSocket;

// The poll handle outlives the JS object when needed: libuv frees nothing before uv_close's
// callback, which may run after the wrapper was finalized.
struct PollHandle {
  uv_poll_t poll;
  NetlinkSocket* owner = nullptr;
  // Registered for every handle, started or not: a worker's loop cannot be closed while any
  // handle is open, so environment teardown must close them all.
  napi_async_cleanup_hook_handle cleanupHook = nullptr;
};

class NetlinkSocket : public Napi::ObjectWrap<NetlinkSocket> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NetlinkSocket(const Napi::CallbackInfo& info);
  ~NetlinkSocket() override;

 private:
  static void OnPollEvent(uv_poll_t* handle, int status, int events);
  static void OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg);

  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value AddMembership(const Napi::CallbackInfo& info);
  Napi::Value DropMembership(const Napi::CallbackInfo& info);
  Napi::Value Memberships(const Napi::CallbackInfo& info);
  Napi::Value RefHandle(const Napi::CallbackInfo& info);
  Napi::Value UnrefHandle(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Closed(const Napi::CallbackInfo& info);

  void OnReadable(int status);
  void Drain(Napi::Object self, int status);
  bool DeliverData(Napi::Object self);
  bool DeliverSocketError(Napi::Object self, int err, size_t size);
  void Call(const Napi::FunctionReference& fn, Napi::Object self, std::initializer_list<napi_value> args);
  bool Active() const { return polling_ && fd_ >= 0; }
  void StopPolling();
  // Closes the fd and hands the poll handle to uv_close. No JavaScript is touched, so this is
  // safe from the finalizer and from environment teardown.
  void CloseFd(bool fromCleanupHook);
  void CheckOpen(const char* syscall, const char* action);
  uint32_t GroupArg(const Napi::CallbackInfo& info);
  std::string Describe() const { return "netlink socket (port " + std::to_string(portId_) + ")"; }

  int fd_ = -1;
  uint32_t portId_ = 0;
  PollHandle* poll_ = nullptr;
  bool polling_ = false;
  bool selfRef_ = false;
  Napi::FunctionReference onData_;
  Napi::FunctionReference onOverflow_;
  Napi::FunctionReference onError_;
  Napi::Reference<Napi::Uint32Array> ends_;
  std::unique_ptr<NetlinkReceiver> receiver_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
};

Napi::Function NetlinkSocket::Define(Napi::Env env) {
  return DefineClass(env, "NetlinkSocketHandle",
                     {
                         InstanceMethod<&NetlinkSocket::Send>("send"),
                         InstanceMethod<&NetlinkSocket::Start>("start"),
                         InstanceMethod<&NetlinkSocket::Stop>("stop"),
                         InstanceMethod<&NetlinkSocket::AddMembership>("addMembership"),
                         InstanceMethod<&NetlinkSocket::DropMembership>("dropMembership"),
                         InstanceMethod<&NetlinkSocket::Memberships>("memberships"),
                         InstanceMethod<&NetlinkSocket::RefHandle>("ref"),
                         InstanceMethod<&NetlinkSocket::UnrefHandle>("unref"),
                         InstanceMethod<&NetlinkSocket::Close>("close"),
                         InstanceAccessor<&NetlinkSocket::Closed>("closed"),
                     });
}

// Constructed only by openNetlinkSocket, with the opened socket passed as an External.
NetlinkSocket::NetlinkSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetlinkSocket>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal()) {
    ThrowInvalidArg(env, "NetlinkSocketHandle is created by openNetlinkSocket(), not directly");
  }
  NetlinkOpened* opened = info[0].As<Napi::External<NetlinkOpened>>().Data();

  // Everything that can throw comes before the wrapper takes the fd: a constructor that throws
  // gets no destructor call, and the fd then stays with the opener, which closes it.
  Napi::Uint32Array ends = Napi::Uint32Array::New(env, NetlinkReceiver::kMaxDatagrams);
  Napi::Object features = Napi::Object::New(env);
  features.Set("extAck", opened->features.extAck);
  features.Set("strictCheck", opened->features.strictCheck);
  features.Set("capAck", opened->features.capAck);
  features.Freeze();
  Napi::Object self = info.This().As<Napi::Object>();
  self.DefineProperties({
      Napi::PropertyDescriptor::Value("portId", Napi::Number::New(env, opened->portId), napi_enumerable),
      Napi::PropertyDescriptor::Value("rcvbuf", Napi::Number::New(env, opened->rcvbuf), napi_enumerable),
      Napi::PropertyDescriptor::Value("sndbuf", Napi::Number::New(env, opened->sndbuf), napi_enumerable),
      Napi::PropertyDescriptor::Value("features", features, napi_enumerable),
      Napi::PropertyDescriptor::Value("ends", ends),
  });
  auto asyncContext = std::make_unique<Napi::AsyncContext>(env, "tunkeeper:NetlinkSocket");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, "tunkeeper: no libuv loop for this environment");
  }
  auto poll = std::make_unique<PollHandle>();
  int r = uv_poll_init(loop, &poll->poll, opened->fd);
  if (r < 0) ThrowErrno(env, -r, "uv_poll_init", "watch a netlink socket on the event loop");

  // From here on the wrapper owns the fd; nothing below throws.
  fd_ = opened->fd;
  opened->fd = -1;
  portId_ = opened->portId;
  poll_ = poll.release();
  poll_->poll.data = poll_;
  poll_->owner = this;
  if (napi_add_async_cleanup_hook(env, OnEnvCleanup, poll_, &poll_->cleanupHook) != napi_ok) {
    poll_->cleanupHook = nullptr;
  }
  ends_ = Napi::Persistent(ends);
  receiver_ = std::make_unique<NetlinkReceiver>(ends.Data(), opened->kernelOnly);
  asyncContext_ = std::move(asyncContext);
}

NetlinkSocket::~NetlinkSocket() { CloseFd(false); }

void NetlinkSocket::CloseFd(bool fromCleanupHook) {
  polling_ = false;
  if (poll_) {
    PollHandle* ph = poll_;
    poll_ = nullptr;
    ph->owner = nullptr;
    if (fromCleanupHook) {
      // Teardown waits for the hook to be removed: remove it once libuv has let go of the handle.
      uv_close(reinterpret_cast<uv_handle_t*>(&ph->poll), [](uv_handle_t* h) {
        auto* done = static_cast<PollHandle*>(h->data);
        napi_remove_async_cleanup_hook(done->cleanupHook);
        delete done;
      });
    } else {
      if (ph->cleanupHook) napi_remove_async_cleanup_hook(ph->cleanupHook);
      ph->cleanupHook = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(&ph->poll), [](uv_handle_t* h) { delete static_cast<PollHandle*>(h->data); });
    }
  }
  // uv_close has already removed the fd from epoll, so closing it now is safe.
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  receiver_.reset();
}

void NetlinkSocket::OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg) {
  auto* ph = static_cast<PollHandle*>(arg);
  if (ph->owner) {
    ph->owner->CloseFd(true);
  } else {
    // The wrapper is gone but its uv_close is pending: nothing to close, only the hook to finish.
    napi_remove_async_cleanup_hook(hook);
  }
}

void NetlinkSocket::CheckOpen(const char* syscall, const char* action) {
  if (fd_ < 0) ThrowErrno(Env(), EBADF, syscall, std::string(action) + " on a closed netlink socket");
}

// One datagram, one sendmsg: the kernel runs every message in it, in order, before sendmsg
// returns (rtnetlink handles requests synchronously in the sender's context), and answers each
// through the receive queue. See the facade's send() for the limits that follow from that.
Napi::Value NetlinkSocket::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen("sendmsg", "send");
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowInvalidArg(env, "send expects a Buffer or Uint8Array");
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  iovec iov{data.Data(), data.ByteLength()};
  msghdr msg{};
  msg.msg_name = &kernel;
  msg.msg_namelen = sizeof kernel;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t n;
  do {
    n = sendmsg(fd_, &msg, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ThrowErrno(env, errno, "sendmsg", "send " + std::to_string(data.ByteLength()) + " bytes on " + Describe());
  }
  return env.Undefined();
}

Napi::Value NetlinkSocket::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen("uv_poll_start", "start receiving");
  if (info.Length() < 3 || !info[0].IsFunction() || !info[1].IsFunction() || !info[2].IsFunction()) {
    ThrowInvalidArg(env, "start expects (onData, onOverflow, onError) functions");
  }
  onData_ = Napi::Persistent(info[0].As<Napi::Function>());
  onOverflow_ = Napi::Persistent(info[1].As<Napi::Function>());
  onError_ = Napi::Persistent(info[2].As<Napi::Function>());
  if (!polling_) {
    int r = uv_poll_start(&poll_->poll, UV_READABLE, OnPollEvent);
    if (r < 0) ThrowErrno(env, -r, "uv_poll_start", "start receiving on " + Describe());
    polling_ = true;
  }
  // A started socket delivers to its handlers even when nothing else references it.
  if (!selfRef_) {
    Ref();
    selfRef_ = true;
  }
  return env.Undefined();
}

void NetlinkSocket::StopPolling() {
  if (polling_ && poll_) uv_poll_stop(&poll_->poll);
  polling_ = false;
  onData_.Reset();
  onOverflow_.Reset();
  onError_.Reset();
  if (selfRef_) {
    selfRef_ = false;
    Unref();
  }
}

Napi::Value NetlinkSocket::Stop(const Napi::CallbackInfo& info) {
  StopPolling();
  return info.Env().Undefined();
}

uint32_t NetlinkSocket::GroupArg(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowInvalidArg(info.Env(), "a multicast group number is required");
  double g = info[0].As<Napi::Number>().DoubleValue();
  if (!(g >= 1 && g <= 4294967295.0) || g != static_cast<double>(static_cast<uint32_t>(g))) {
    ThrowInvalidArg(info.Env(), "multicast group must be an integer from 1 to 2^32-1");
  }
  return static_cast<uint32_t>(g);
}

Napi::Value NetlinkSocket::AddMembership(const Napi::CallbackInfo& info) {
  CheckOpen("setsockopt(NETLINK_ADD_MEMBERSHIP)", "join a multicast group");
  uint32_t group = GroupArg(info);
  if (int err = SetNetlinkMembership(fd_, group, true)) {
    ThrowErrno(info.Env(), err, "setsockopt(NETLINK_ADD_MEMBERSHIP)", "join netlink multicast group " + std::to_string(group) + " on " + Describe());
  }
  return info.Env().Undefined();
}

Napi::Value NetlinkSocket::DropMembership(const Napi::CallbackInfo& info) {
  CheckOpen("setsockopt(NETLINK_DROP_MEMBERSHIP)", "leave a multicast group");
  uint32_t group = GroupArg(info);
  if (int err = SetNetlinkMembership(fd_, group, false)) {
    ThrowErrno(info.Env(), err, "setsockopt(NETLINK_DROP_MEMBERSHIP)", "leave netlink multicast group " + std::to_string(group) + " on " + Describe());
  }
  return info.Env().Undefined();
}

Napi::Value NetlinkSocket::Memberships(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen("getsockopt(NETLINK_LIST_MEMBERSHIPS)", "list multicast groups");
  std::vector<uint32_t> groups;
  if (int err = ListNetlinkMemberships(fd_, &groups)) {
    ThrowErrno(env, err, "getsockopt(NETLINK_LIST_MEMBERSHIPS)", "list the multicast groups of " + Describe());
  }
  Napi::Array out = Napi::Array::New(env, groups.size());
  for (size_t i = 0; i < groups.size(); i++) out.Set(static_cast<uint32_t>(i), groups[i]);
  return out;
}

Napi::Value NetlinkSocket::RefHandle(const Napi::CallbackInfo& info) {
  if (poll_) uv_ref(reinterpret_cast<uv_handle_t*>(&poll_->poll));
  return info.Env().Undefined();
}

Napi::Value NetlinkSocket::UnrefHandle(const Napi::CallbackInfo& info) {
  if (poll_) uv_unref(reinterpret_cast<uv_handle_t*>(&poll_->poll));
  return info.Env().Undefined();
}

Napi::Value NetlinkSocket::Close(const Napi::CallbackInfo& info) {
  StopPolling();
  CloseFd(false);
  return info.Env().Undefined();
}

Napi::Value NetlinkSocket::Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), fd_ < 0); }

void NetlinkSocket::OnPollEvent(uv_poll_t* handle, int status, int) {
  auto* ph = static_cast<PollHandle*>(handle->data);
  if (ph->owner) ph->owner->OnReadable(status);
}

void NetlinkSocket::OnReadable(int status) {
  if (!Active()) return;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  // A local handle keeps the wrapper alive while handlers run, even if one of them closes it and
  // drops the last reference.
  Napi::Object self = Value();
  try {
    Drain(self, status);
  } catch (const Napi::Error& e) {
    // Nothing may escape a libuv callback. A failing N-API call lands here: most often because
    // the environment is being torn down (node runs the loop once more with JavaScript
    // disallowed, before the cleanup hooks close this socket). Stop receiving; if JavaScript
    // can still run, the error becomes an uncaught exception (a no-op during teardown).
    if (poll_) uv_poll_stop(&poll_->poll);
    polling_ = false;
    if (!e.Value().IsEmpty()) napi_fatal_exception(env, e.Value());
  }
}

void NetlinkSocket::Drain(Napi::Object self, int status) {
  Napi::Env env = Env();
  if (status < 0) {
    // libuv stops a poll handle that reports POLLERR. On a netlink socket that is a pending socket
    // error, normally ENOBUFS after the kernel dropped messages: collect it (reading SO_ERROR also
    // clears it, so POLLERR does not repeat) and resume polling.
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
    int r = uv_poll_start(&poll_->poll, UV_READABLE, OnPollEvent);
    if (r < 0) {
      Napi::FunctionReference onError = Napi::Persistent(onError_.Value());
      StopPolling();
      Call(onError, self, {MakeErrnoError(env, -r, "uv_poll_start", "resume receiving on " + Describe()).Value()});
      return;
    }
    if (soerr != 0 && !DeliverSocketError(self, soerr, 0)) return;
  }

  for (;;) {
    NetlinkReceiver::Result result = receiver_->Fill(fd_);
    if (receiver_->count() > 0 && !DeliverData(self)) return;
    // A full batch returns to the loop: the fd is still readable, so the poll fires again after
    // timers and other I/O had their turn.
    if (result.stop != NetlinkReceiver::Stop::kError) return;
    if (!DeliverSocketError(self, result.err, result.size)) return;
    // ENOBUFS and an oversized datagram are one-off conditions: read on. Anything else ends this
    // wake-up rather than spinning on a failing socket.
    if (result.err != ENOBUFS && result.err != EMSGSIZE) return;
  }
}

bool NetlinkSocket::DeliverData(Napi::Object self) {
  Napi::Env env = Env();
  NetlinkReceiver::Batch batch = receiver_->Take();
  Napi::Buffer<uint8_t> buffer =
      batch.owned ? Napi::Buffer<uint8_t>::NewOrCopy(env, batch.data, batch.size, [](Napi::Env, uint8_t* p) { free(p); })
                  : Napi::Buffer<uint8_t>::Copy(env, batch.data, batch.size);
  Call(onData_, self, {buffer, Napi::Number::New(env, batch.count)});
  return Active();
}

bool NetlinkSocket::DeliverSocketError(Napi::Object self, int err, size_t size) {
  Napi::Env env = Env();
  if (err == ENOBUFS) {
    Call(onOverflow_, self, {});
  } else {
    Napi::Error e = MakeErrnoError(env, err, "recvmsg", "receive on " + Describe());
    if (err == EMSGSIZE) {
      e.Set("message", Napi::String::New(env, "receive on " + Describe() + ": EMSGSIZE: a datagram of " + std::to_string(size) +
                                                  " bytes, too large to receive whole, was dropped"));
    }
    Call(onError_, self, {e.Value()});
  }
  return Active();
}

// Handlers run as top-level callbacks (MakeCallback: async context, microtasks drained after).
// A handler that throws is an uncaught exception of the process, as for any event callback.
void NetlinkSocket::Call(const Napi::FunctionReference& fn, Napi::Object self, std::initializer_list<napi_value> args) {
  if (fn.IsEmpty()) return;
  napi_env env = Env();
  napi_value result;
  napi_status status = napi_make_callback(env, *asyncContext_, self, fn.Value(), args.size(), args.begin(), &result);
  if (status == napi_ok) return;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
    return;
  }
  // No exception: JavaScript cannot run any more (environment teardown).
  throw Napi::Error();
}

// openNetlinkSocket(options) → Promise<NetlinkSocketHandle>. The socket is made on a worker
// thread: entering a namespace takes a thread of its own (see netns.h), and the JS thread never
// waits for it.
class OpenWorker : public Napi::AsyncWorker {
 public:
  OpenWorker(Napi::Env env, NetlinkOpenOptions opts)
      : Napi::AsyncWorker(env, "tunkeeper:openNetlinkSocket"), deferred_(Napi::Promise::Deferred::New(env)), opts_(std::move(opts)) {}
  ~OpenWorker() override {
    if (opened_.fd >= 0) ::close(opened_.fd);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override { err_ = OpenNetlinkSocket(opts_, &opened_, &failure_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      deferred_.Reject(MakeErrnoError(env, failure_.err, failure_.syscall, failure_.what).Value());
      return;
    }
    try {
      Napi::Object handle = GetAddonData(env)->netlinkSocketClass.New({Napi::External<NetlinkOpened>::New(env, &opened_)});
      deferred_.Resolve(handle);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  NetlinkOpenOptions opts_;
  NetlinkOpened opened_;
  NetlinkOpenFailure failure_;
  int err_ = 0;
};

double NumberOption(Napi::Object o, const char* key, double fallback, double min, double max) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) ThrowInvalidArg(o.Env(), std::string("netlink socket option ") + key + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max) || d != static_cast<double>(static_cast<int64_t>(d))) {
    ThrowInvalidArg(o.Env(), std::string("netlink socket option ") + key + " must be an integer from " +
                                 std::to_string(static_cast<int64_t>(min)) + " to " + std::to_string(static_cast<int64_t>(max)));
  }
  return d;
}

bool BoolOption(Napi::Object o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) ThrowInvalidArg(o.Env(), std::string("netlink socket option ") + key + " must be a boolean");
  return v.As<Napi::Boolean>();
}

Napi::Value OpenNetlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
  NetlinkOpenOptions opts;
  opts.protocol = static_cast<int>(NumberOption(o, "protocol", 0, 0, 31));
  opts.rcvbuf = static_cast<int>(NumberOption(o, "rcvbuf", opts.rcvbuf, 0, 0x7fffffff));
  opts.sndbuf = static_cast<int>(NumberOption(o, "sndbuf", 0, 0, 0x7fffffff));
  opts.extAck = BoolOption(o, "extAck", true);
  opts.strictCheck = BoolOption(o, "strictCheck", true);
  opts.capAck = BoolOption(o, "capAck", true);
  opts.kernelOnly = BoolOption(o, "kernelOnly", true);
  Napi::Value groups = o.Get("groups");
  if (!groups.IsUndefined()) {
    if (!groups.IsArray()) ThrowInvalidArg(env, "netlink socket option groups must be an array of group numbers");
    Napi::Array list = groups.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Value g = list.Get(i);
      double d = g.IsNumber() ? g.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 1 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d))) {
        ThrowInvalidArg(env, "netlink multicast groups must be integers from 1 to 2^32-1");
      }
      opts.groups.push_back(static_cast<uint32_t>(d));
    }
  }
  Napi::Value netns = o.Get("netns");
  if (!netns.IsUndefined()) {
    if (!netns.IsString()) ThrowInvalidArg(env, "netlink socket option netns must be a path");
    opts.netnsPath = netns.As<Napi::String>();
  }
  auto* worker = new OpenWorker(env, std::move(opts));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void InitNetlinkSocket(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NetlinkSocket::Define(env);
  GetAddonData(env)->netlinkSocketClass = Napi::Persistent(ctor);
  exports.Set("NetlinkSocketHandle", ctor);
  exports.Set("openNetlinkSocket", Napi::Function::New(env, OpenNetlink, "openNetlinkSocket"));
}

}  // namespace tunkeeper
