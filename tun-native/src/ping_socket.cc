// ICMP/ICMPv6 echo for JavaScript over a ping socket (ping_open.h): openPingSocket(options)
// resolves to a handle that sends echo requests (send(address, sequence, payload), one sendto on
// the JS thread: the socket is non-blocking and a datagram socket never waits to send) and
// reports each echo reply as onReply(sequence, fromAddress). Replies are read when the fd is
// readable, watched by a libuv poll on the JS thread's loop as the netlink socket is
// (polled_socket.h): no thread and no pool slot sits waiting for an answer that may take seconds
// or never come. Matching replies to requests, and timeouts, are the facade's
// (tun-native/ping-socket.ts).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "addon_data.h"
#include "errors.h"
#include "ping_open.h"
#include "polled_socket.h"
#include "promise_worker.h"

namespace tunkeeper {

namespace {

constexpr uint8_t kEchoRequest4 = 8;
constexpr uint8_t kEchoReply4 = 0;
constexpr uint8_t kEchoRequest6 = 128;
constexpr uint8_t kEchoReply6 = 129;
// Replies read per wake-up before the loop gets a turn (a flood cannot starve it).
constexpr int kMaxRepliesPerWakeup = 64;
constexpr size_t kMaxPayload = 1024;

class PingSocket : public PolledSocket<PingSocket> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit PingSocket(const Napi::CallbackInfo& info);

 private:
  friend class PolledSocket<PingSocket>;
  static constexpr const char* kKind = "ping socket";

  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);

  void Drain(Napi::Object self, int soerr);
  void ResetHandlers() { onReply_.Reset(); }
  std::string Describe() const { return std::string(family_ == 6 ? "ICMPv6" : "ICMP") + " ping socket on " + ifname_; }

  int family_ = 4;
  std::string ifname_;
  Napi::FunctionReference onReply_;
};

struct PingOpenedExternal {
  PingOpened opened;
  int family;
  std::string ifname;
};

Napi::Function PingSocket::Define(Napi::Env env) {
  return DefineSocketClass(env, "PingSocketHandle",
                           {
                               InstanceMethod<&PingSocket::Send>("send"),
                               InstanceMethod<&PingSocket::Start>("start"),
                           });
}

// Constructed only by openPingSocket, with the opened socket passed as an External.
PingSocket::PingSocket(const Napi::CallbackInfo& info) : PolledSocket(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal()) ThrowInvalidArg(env, "PingSocketHandle is created by openPingSocket(), not directly");
  PingOpenedExternal* o = info[0].As<Napi::External<PingOpenedExternal>>().Data();

  // Everything that can throw comes before the wrapper takes the fd (the opener closes it then).
  Napi::Object self = info.This().As<Napi::Object>();
  self.DefineProperties({
      Napi::PropertyDescriptor::Value("ifindex", Napi::Number::New(env, o->opened.ifindex), napi_enumerable),
  });
  Adopt(env, &o->opened.fd, "tunkeeper:PingSocket");
  family_ = o->family;
  ifname_ = o->ifname;
}

// send(address, sequence, payload): one echo request. The identifier is left 0 and the checksum
// too: the kernel writes the socket's identifier and computes the checksum for a ping socket.
Napi::Value PingSocket::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen("sendto", "send an echo request");
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
    n = sendto(fd(), packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&dst), dstLen);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    ThrowErrno(env, err, "sendto", "send an echo request to " + to + " on " + Describe());
  }
  return env.Undefined();
}

Napi::Value PingSocket::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen("uv_poll_start", "receive");
  if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction()) ThrowInvalidArg(env, "start expects (onReply, onError) functions");
  onReply_ = Napi::Persistent(info[0].As<Napi::Function>());
  StartPolling(env, info[1].As<Napi::Function>());
  return env.Undefined();
}

void PingSocket::Drain(Napi::Object self, int soerr) {
  Napi::Env env = Env();
  // A pending socket error (collected on POLLERR, polling resumed): report it, and go on
  // receiving.
  if (soerr != 0) {
    Call(onError_, self, {ReceiveError(soerr, "recvfrom").Value()});
    if (!Active()) return;
  }
  uint8_t buf[64];
  for (int i = 0; i < kMaxRepliesPerWakeup; i++) {
    sockaddr_storage from{};
    socklen_t fromLen = sizeof from;
    // Only the ICMP header matters (a ping socket delivers it without the IP header); the rest of
    // a longer datagram is discarded by the kernel.
    ssize_t n = recvfrom(fd(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fromLen);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      Call(onError_, self, {ReceiveError(errno, "recvfrom").Value()});
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
class OpenWorker : public PromiseWorker {
 public:
  OpenWorker(Napi::Env env, PingOpenOptions opts) : PromiseWorker(env, "tunkeeper:openPingSocket"), opts_(std::move(opts)) {}
  ~OpenWorker() override {
    if (ext_.opened.fd >= 0) ::close(ext_.opened.fd);
  }

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
    ext_.family = opts_.family;
    ext_.ifname = opts_.ifname;
    ResolveWithNew(GetAddonData(env)->pingSocketClass, &ext_);
  }

 private:
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
  return PromiseWorker::QueueForPromise(new OpenWorker(env, std::move(opts)));
}

}  // namespace

void InitPingSocket(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = PingSocket::Define(env);
  GetAddonData(env)->pingSocketClass = Napi::Persistent(ctor);
  exports.Set("PingSocketHandle", ctor);
  exports.Set("openPingSocket", Napi::Function::New(env, OpenPing, "openPingSocket"));
}

}  // namespace tunkeeper
