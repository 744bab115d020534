// AF_NETLINK sockets for JavaScript: openNetlinkSocket(options) resolves to a handle whose fd is
// polled on the libuv loop (uv_poll, no thread per socket; see polled_socket.h). Everything
// readable in one wake-up is delivered in one call: onData(batch, count), with the datagram
// boundaries in the shared `ends` array (see netlink_receiver.h); ENOBUFS goes to onOverflow(),
// other receive errors to onError(err). The typed facade is tun-native/netlink-socket.ts.
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "addon_data.h"
#include "errors.h"
#include "netlink_open.h"
#include "netlink_receiver.h"
#include "polled_socket.h"
#include "promise_worker.h"

namespace tunkeeper {

namespace {

class NetlinkSocket : public PolledSocket<NetlinkSocket> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NetlinkSocket(const Napi::CallbackInfo& info);

 private:
  friend class PolledSocket<NetlinkSocket>;
  static constexpr const char* kKind = "netlink socket";

  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value AddMembership(const Napi::CallbackInfo& info);
  Napi::Value DropMembership(const Napi::CallbackInfo& info);
  Napi::Value Memberships(const Napi::CallbackInfo& info);

  void Drain(Napi::Object self, int soerr);
  bool DeliverData(Napi::Object self);
  bool DeliverSocketError(Napi::Object self, int err, size_t size);
  void ResetHandlers() {
    onData_.Reset();
    onOverflow_.Reset();
  }
  // The receive buffers are only for an open socket.
  void OnClosed() { receiver_.reset(); }
  uint32_t GroupArg(const Napi::CallbackInfo& info);
  std::string Describe() const { return "netlink socket (port " + std::to_string(portId_) + ")"; }

  uint32_t portId_ = 0;
  Napi::FunctionReference onData_;
  Napi::FunctionReference onOverflow_;
  Napi::Reference<Napi::Uint32Array> ends_;
  std::unique_ptr<NetlinkReceiver> receiver_;
};

Napi::Function NetlinkSocket::Define(Napi::Env env) {
  return DefineSocketClass(env, "NetlinkSocketHandle",
                           {
                               InstanceMethod<&NetlinkSocket::Send>("send"),
                               InstanceMethod<&NetlinkSocket::Start>("start"),
                               InstanceMethod<&NetlinkSocket::AddMembership>("addMembership"),
                               InstanceMethod<&NetlinkSocket::DropMembership>("dropMembership"),
                               InstanceMethod<&NetlinkSocket::Memberships>("memberships"),
                           });
}

// Constructed only by openNetlinkSocket, with the opened socket passed as an External.
NetlinkSocket::NetlinkSocket(const Napi::CallbackInfo& info) : PolledSocket(info) {
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
  Adopt(env, &opened->fd, "tunkeeper:NetlinkSocket");
  // From here on the wrapper owns the fd; nothing below throws.
  portId_ = opened->portId;
  ends_ = Napi::Persistent(ends);
  receiver_ = std::make_unique<NetlinkReceiver>(ends.Data(), opened->kernelOnly);
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
    n = sendmsg(fd(), &msg, 0);
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
  StartPolling(env, info[2].As<Napi::Function>());
  return env.Undefined();
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
  if (int err = SetNetlinkMembership(fd(), group, true)) {
    ThrowErrno(info.Env(), err, "setsockopt(NETLINK_ADD_MEMBERSHIP)", "join netlink multicast group " + std::to_string(group) + " on " + Describe());
  }
  return info.Env().Undefined();
}

Napi::Value NetlinkSocket::DropMembership(const Napi::CallbackInfo& info) {
  CheckOpen("setsockopt(NETLINK_DROP_MEMBERSHIP)", "leave a multicast group");
  uint32_t group = GroupArg(info);
  if (int err = SetNetlinkMembership(fd(), group, false)) {
    ThrowErrno(info.Env(), err, "setsockopt(NETLINK_DROP_MEMBERSHIP)", "leave netlink multicast group " + std::to_string(group) + " on " + Describe());
  }
  return info.Env().Undefined();
}

Napi::Value NetlinkSocket::Memberships(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen("getsockopt(NETLINK_LIST_MEMBERSHIPS)", "list multicast groups");
  std::vector<uint32_t> groups;
  if (int err = ListNetlinkMemberships(fd(), &groups)) {
    ThrowErrno(env, err, "getsockopt(NETLINK_LIST_MEMBERSHIPS)", "list the multicast groups of " + Describe());
  }
  Napi::Array out = Napi::Array::New(env, groups.size());
  for (size_t i = 0; i < groups.size(); i++) out.Set(static_cast<uint32_t>(i), groups[i]);
  return out;
}

void NetlinkSocket::Drain(Napi::Object self, int soerr) {
  // A pending socket error collected on POLLERR: on a netlink socket normally ENOBUFS, after the
  // kernel dropped messages.
  if (soerr != 0 && !DeliverSocketError(self, soerr, 0)) return;

  for (;;) {
    NetlinkReceiver::Result result = receiver_->Fill(fd());
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
    Napi::Error e = ReceiveError(err, "recvmsg");
    if (err == EMSGSIZE) {
      e.Set("message", Napi::String::New(env, "receive on " + Describe() + ": EMSGSIZE: a datagram of " + std::to_string(size) +
                                                  " bytes, too large to receive whole, was dropped"));
    }
    Call(onError_, self, {e.Value()});
  }
  return Active();
}

// openNetlinkSocket(options) → Promise<NetlinkSocketHandle>. The socket is made on a worker
// thread: entering a namespace takes a thread of its own (see netns.h), and the JS thread never
// waits for it.
class OpenWorker : public PromiseWorker {
 public:
  OpenWorker(Napi::Env env, NetlinkOpenOptions opts) : PromiseWorker(env, "tunkeeper:openNetlinkSocket"), opts_(std::move(opts)) {}
  ~OpenWorker() override {
    if (opened_.fd >= 0) ::close(opened_.fd);
  }

  void Execute() override { err_ = OpenNetlinkSocket(opts_, &opened_, &failure_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      deferred_.Reject(MakeErrnoError(env, failure_.err, failure_.syscall, failure_.what).Value());
      return;
    }
    ResolveWithNew(GetAddonData(env)->netlinkSocketClass, &opened_);
  }

 private:
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
  return PromiseWorker::QueueForPromise(new OpenWorker(env, std::move(opts)));
}

}  // namespace

void InitNetlinkSocket(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NetlinkSocket::Define(env);
  GetAddonData(env)->netlinkSocketClass = Napi::Persistent(ctor);
  exports.Set("NetlinkSocketHandle", ctor);
  exports.Set("openNetlinkSocket", Napi::Function::New(env, OpenNetlink, "openNetlinkSocket"));
}

}  // namespace tunkeeper
