// ICMP/ICMPv6 echo for JavaScript over a ping socket (ping_open.h): openPingSocket(options)
// resolves to a handle that sends echo requests (send(address, sequence, payload), one sendto on
// the JS thread: the socket is non-blocking and a datagram socket never waits to send) and
// reports each echo reply as onReply(sequence, fromAddress). Replies are read when the fd is
// readable, watched by a libuv poll on the JS thread's loop as the netlink socket is: no thread
// and no pool slot sits waiting for an answer that may take seconds or never come. Matching
// replies to requests, and timeouts, are the facade's (tun-native/ping-socket.ts).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "addon_data.h"
#include "errors.h"
#include "ping_open.h"

namespace tunkeeper {

namespace {

constexpr uint8_t kEchoRequest4 = 8;
constexpr uint8_t kEchoReply4 = 0;
constexpr uint8_t kEchoRequest6 = 128;
constexpr uint8_t kEchoReply6 = 129;
// Replies read per wake-up before the loop gets a turn (a flood cannot starve it).
constexpr int kMaxRepliesPerWakeup = 64;
constexpr size_t kMaxPayload = 1024;

class PingSocket;

// Outlives the wrapper until libuv's close callback, as in netlink_socket.cc.
struct PingPoll {
  uv_poll_t poll;
  PingSocket* owner = nullptr;
  napi_async_cleanup_hook_handle cleanupHook = nullptr;
};

class PingSocket : public Napi::ObjectWrap<PingSocket> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit PingSocket(const Napi::CallbackInfo& info);
  ~PingSocket() override { CloseFd(false); }

 private:
  static void OnPollEvent(uv_poll_t* handle, int status, int events);
  static void OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg);

  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value RefHandle(const Napi::CallbackInfo& info);
  Napi::Value UnrefHandle(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Closed(const Napi::CallbackInfo& info);

  void OnReadable(int status);
  void Drain(Napi::Object self, int status);
  void Call(const Napi::FunctionReference& fn, Napi::Object self, std::initializer_list<napi_value> args);
  bool Active() const { return polling_ && fd_ >= 0; }
  void StopPolling();
  void CloseFd(bool fromCleanupHook);
  std::string Describe() const { return std::string(family_ == 6 ? "ICMPv6" : "ICMP") + " ping socket on " + ifname_; }

  int fd_ = -1;
  int family_ = 4;
  std::string ifname_;
  PingPoll* poll_ = nullptr;
  bool polling_ = false;
  bool selfRef_ = false;
  Napi::FunctionReference onReply_;
  Napi::FunctionReference onError_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
};

struct PingOpenedExternal {
  PingOpened opened;
  int family;
  std::string ifname;
};

Napi::Function PingSocket::Define(Napi::Env env) {
  return DefineClass(env, "PingSocketHandle",
                     {
                         InstanceMethod<&PingSocket::Send>("send"),
                         InstanceMethod<&PingSocket::Start>("start"),
                         InstanceMethod<&PingSocket::Stop>("stop"),
                         InstanceMethod<&PingSocket::RefHandle>("ref"),
                         InstanceMethod<&PingSocket::UnrefHandle>("unref"),
                         InstanceMethod<&PingSocket::Close>("close"),
                         InstanceAccessor<&PingSocket::Closed>("closed"),
                     });
}

// Constructed only by openPingSocket, with the opened socket passed as an External.
PingSocket::PingSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PingSocket>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal()) ThrowInvalidArg(env, "PingSocketHandle is created by openPingSocket(), not directly");
  PingOpenedExternal* o = info[0].As<Napi::External<PingOpenedExternal>>().Data();

  // Everything that can throw comes before the wrapper takes the fd (the opener closes it then).
  Napi::Object self = info.This().As<Napi::Object>();
  self.DefineProperties({
      Napi::PropertyDescriptor::Value("ifindex", Napi::Number::New(env, o->opened.ifindex), napi_enumerable),
  });
  auto asyncContext = std::make_unique<Napi::AsyncContext>(env, "tunkeeper:PingSocket");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw Napi::Error::New(env, "tunkeeper: no libuv loop for this environment");
  auto poll = std::make_unique<PingPoll>();
  int r = uv_poll_init(loop, &poll->poll, o->opened.fd);
  if (r < 0) ThrowErrno(env, -r, "uv_poll_init", "watch a ping socket on the event loop");

  fd_ = o->opened.fd;
  o->opened.fd = -1;
  family_ = o->family;
  ifname_ = o->ifname;
  poll_ = poll.release();
  poll_->poll.data = poll_;
  poll_->owner = this;
  if (napi_add_async_cleanup_hook(env, OnEnvCleanup, poll_, &poll_->cleanupHook) != napi_ok) poll_->cleanupHook = nullptr;
  asyncContext_ = std::move(asyncContext);
}

void PingSocket::CloseFd(bool fromCleanupHook) {
  polling_ = false;
  if (poll_) {
    PingPoll* ph = poll_;
    poll_ = nullptr;
    ph->owner = nullptr;
    if (fromCleanupHook) {
      uv_close(reinterpret_cast<uv_handle_t*>(&ph->poll), [](uv_handle_t* h) {
        auto* done = static_cast<PingPoll*>(h->data);
        napi_remove_async_cleanup_hook(done->cleanupHook);
        delete done;
      });
    } else {
      if (ph->cleanupHook) napi_remove_async_cleanup_hook(ph->cleanupHook);
      ph->cleanupHook = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(&ph->poll), [](uv_handle_t* h) { delete static_cast<PingPoll*>(h->data); });
    }
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void PingSocket::OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg) {
  auto* ph = static_cast<PingPoll*>(arg);
  if (ph->owner) {
    ph->owner->CloseFd(true);
  } else {
    napi_remove_async_cleanup_hook(hook);
  }
}

// send(address, sequence, payload): one echo request. The identifier is left 0 and the checksum
// too: the kernel writes the socket's identifier and computes the checksum for a ping socket.
Napi::Value PingSocket::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0) ThrowErrno(env, EBADF, "sendto", "send an echo request on a closed ping socket");
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowInvalidArg(env, "send expects (address, sequence, payload)");
  }
  std::string to = info[0].As<Napi::String>();
  double seq = info[1].As<Napi::Number>().DoubleValue();
  if (!(seq >= 0 && seq <= 65535) || seq != static_cast<double>(static_cast<int>(seq))) ThrowInvalidArg(env, "sequence must be an integer from 0 to 65535");
  Napi::Uint8Array payload = info[2].As<Napi::Uint8Array>();
  if (payload.ByteLength() > kMaxPayload) ThrowInvalidArg(env, "payload must be at most " + std::to_string(kMaxPayload) + " bytes");

  std::vector<uint8_t> packet(8 + payload.ByteLength());
  packet[0] = family_ == 6 ? kEchoRequest6 : kEchoRequest4;
  packet[6] = static_cast<uint8_t>(static_cast<int>(seq) >> 8);
  packet[7] = static_cast<uint8_t>(static_cast<int>(seq) & 0xff);
  if (payload.ByteLength() > 0) memcpy(packet.data() + 8, payload.Data(), payload.ByteLength());

  sockaddr_storage dst{};
  socklen_t dstLen;
  if (family_ == 6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&dst);
    a->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, to.c_str(), &a->sin6_addr) != 1) ThrowInvalidArg(env, "not an IPv6 address: " + to);
    dstLen = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&dst);
    a->sin_family = AF_INET;
    if (inet_pton(AF_INET, to.c_str(), &a->sin_addr) != 1) ThrowInvalidArg(env, "not an IPv4 address: " + to);
    dstLen = sizeof *a;
  }
  ssize_t n;
  do {
    n = sendto(fd_, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&dst), dstLen);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    ThrowErrno(env, err, "sendto", "send an echo request to " + to + " on " + Describe());
  }
  return env.Undefined();
}

Napi::Value PingSocket::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0) ThrowErrno(env, EBADF, "uv_poll_start", "receive on a closed ping socket");
  if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction()) ThrowInvalidArg(env, "start expects (onReply, onError) functions");
  onReply_ = Napi::Persistent(info[0].As<Napi::Function>());
  onError_ = Napi::Persistent(info[1].As<Napi::Function>());
  if (!polling_) {
    int r = uv_poll_start(&poll_->poll, UV_READABLE, OnPollEvent);
    if (r < 0) ThrowErrno(env, -r, "uv_poll_start", "start receiving on " + Describe());
    polling_ = true;
  }
  if (!selfRef_) {
    Ref();
    selfRef_ = true;
  }
  return env.Undefined();
}

void PingSocket::StopPolling() {
  if (polling_ && poll_) uv_poll_stop(&poll_->poll);
  polling_ = false;
  onReply_.Reset();
  onError_.Reset();
  if (selfRef_) {
    selfRef_ = false;
    Unref();
  }
}

Napi::Value PingSocket::Stop(const Napi::CallbackInfo& info) {
  StopPolling();
  return info.Env().Undefined();
}

Napi::Value PingSocket::RefHandle(const Napi::CallbackInfo& info) {
  if (poll_) uv_ref(reinterpret_cast<uv_handle_t*>(&poll_->poll));
  return info.Env().Undefined();
}

Napi::Value PingSocket::UnrefHandle(const Napi::CallbackInfo& info) {
  if (poll_) uv_unref(reinterpret_cast<uv_handle_t*>(&poll_->poll));
  return info.Env().Undefined();
}

Napi::Value PingSocket::Close(const Napi::CallbackInfo& info) {
  StopPolling();
  CloseFd(false);
  return info.Env().Undefined();
}

Napi::Value PingSocket::Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), fd_ < 0); }

void PingSocket::OnPollEvent(uv_poll_t* handle, int status, int) {
  auto* ph = static_cast<PingPoll*>(handle->data);
  if (ph->owner) ph->owner->OnReadable(status);
}

void PingSocket::OnReadable(int status) {
  if (!Active()) return;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Object self = Value();
  try {
    Drain(self, status);
  } catch (const Napi::Error& e) {
    // Nothing may escape a libuv callback (see NetlinkSocket::OnReadable).
    if (poll_) uv_poll_stop(&poll_->poll);
    polling_ = false;
    if (!e.Value().IsEmpty()) napi_fatal_exception(env, e.Value());
  }
}

void PingSocket::Drain(Napi::Object self, int status) {
  Napi::Env env = Env();
  if (status < 0) {
    // A pending socket error (libuv stopped the poll on POLLERR): read and clear it, report it,
    // and go on receiving.
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
    if (soerr != 0) {
      Call(onError_, self, {MakeErrnoError(env, soerr, "recvfrom", "receive on " + Describe()).Value()});
      if (!Active()) return;
    }
  }
  uint8_t buf[64];
  for (int i = 0; i < kMaxRepliesPerWakeup; i++) {
    sockaddr_storage from{};
    socklen_t fromLen = sizeof from;
    // Only the ICMP header matters (a ping socket delivers it without the IP header); the rest of
    // a longer datagram is discarded by the kernel.
    ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fromLen);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      Call(onError_, self, {MakeErrnoError(env, errno, "recvfrom", "receive on " + Describe()).Value()});
      return;
    }
    if (n < 8 || buf[1] != 0 || buf[0] != (family_ == 6 ? kEchoReply6 : kEchoReply4)) continue;
    char text[INET6_ADDRSTRLEN] = "";
    if (from.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&from)->sin6_addr, text, sizeof text);
    } else if (from.ss_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&from)->sin_addr, text, sizeof text);
    }
    int seq = (buf[6] << 8) | buf[7];
    Call(onReply_, self, {Napi::Number::New(env, seq), Napi::String::New(env, text)});
    if (!Active()) return;
  }
}

// Handlers run as top-level callbacks, as the netlink socket's do.
void PingSocket::Call(const Napi::FunctionReference& fn, Napi::Object self, std::initializer_list<napi_value> args) {
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
  throw Napi::Error();
}

// The EACCES of socket() on a ping socket means one thing: the caller's group is outside
// net.ipv4.ping_group_range of that namespace. Say so, with the value and the fix.
std::string GroupRangeHint(const PingOpenFailure& f) {
  std::string range = f.pingGroupRange.empty() ? "" : " (\"" + f.pingGroupRange + "\" there)";
  return "the process's group (gid " + std::to_string(f.gid) + ") is outside net.ipv4.ping_group_range" + range +
         ", so unprivileged ICMP echo sockets are refused; allow them with sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"" +
         " in that network namespace (systemd sets this by default on hosts; a fresh namespace starts at \"1 0\", nobody)";
}

// openPingSocket(options) → Promise<PingSocketHandle>, made on a worker thread like the netlink
// socket (entering a namespace takes a thread of its own).
class OpenWorker : public Napi::AsyncWorker {
 public:
  OpenWorker(Napi::Env env, PingOpenOptions opts)
      : Napi::AsyncWorker(env, "tunkeeper:openPingSocket"), deferred_(Napi::Promise::Deferred::New(env)), opts_(std::move(opts)) {}
  ~OpenWorker() override {
    if (ext_.opened.fd >= 0) ::close(ext_.opened.fd);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override { err_ = OpenPingSocket(opts_, &ext_.opened, &failure_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      Napi::Error e = failure_.groupRange ? MakeErrnoErrorWithHint(env, failure_.err, failure_.syscall, failure_.what, GroupRangeHint(failure_))
                                          : MakeErrnoError(env, failure_.err, failure_.syscall, failure_.what);
      if (failure_.groupRange) {
        e.Set("reason", Napi::String::New(env, "ping_group_range"));
        if (!failure_.pingGroupRange.empty()) e.Set("pingGroupRange", Napi::String::New(env, failure_.pingGroupRange));
        e.Set("gid", Napi::Number::New(env, failure_.gid));
      }
      deferred_.Reject(e.Value());
      return;
    }
    try {
      ext_.family = opts_.family;
      ext_.ifname = opts_.ifname;
      Napi::Object handle = GetAddonData(env)->pingSocketClass.New({Napi::External<PingOpenedExternal>::New(env, &ext_)});
      deferred_.Resolve(handle);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  PingOpenOptions opts_;
  PingOpenedExternal ext_;
  PingOpenFailure failure_;
  int err_ = 0;
};

// openPingSocket({ family: 4 | 6, ifname, netns? }); the facade has checked the values already,
// this re-checks only what would make the syscalls misbehave.
Napi::Value OpenPing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) ThrowInvalidArg(env, "openPingSocket expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  PingOpenOptions opts;
  Napi::Value family = o.Get("family");
  if (!family.IsNumber() || (family.As<Napi::Number>().Int32Value() != 4 && family.As<Napi::Number>().Int32Value() != 6)) {
    ThrowInvalidArg(env, "ping socket option family must be 4 or 6");
  }
  opts.family = family.As<Napi::Number>().Int32Value();
  Napi::Value ifname = o.Get("ifname");
  if (!ifname.IsString()) ThrowInvalidArg(env, "ping socket option ifname must be a device name");
  opts.ifname = ifname.As<Napi::String>();
  if (opts.ifname.empty() || opts.ifname.size() > 15) ThrowInvalidArg(env, "ping socket option ifname must be 1 to 15 characters");
  Napi::Value netns = o.Get("netns");
  if (!netns.IsUndefined()) {
    if (!netns.IsString()) ThrowInvalidArg(env, "ping socket option netns must be a path");
    opts.netnsPath = netns.As<Napi::String>();
  }
  auto* worker = new OpenWorker(env, std::move(opts));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void InitPingSocket(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = PingSocket::Define(env);
  GetAddonData(env)->pingSocketClass = Napi::Persistent(ctor);
  exports.Set("PingSocketHandle", ctor);
  exports.Set("openPingSocket", Napi::Function::New(env, OpenPing, "openPingSocket"));
}

}  // namespace tunkeeper
