// The TunDevice handle JavaScript holds: one /dev/net/tun fd, its reader and its writes. Opening
// and closing run on the libuv pool (opening inside the requested namespace through RunInNetns,
// so no pool thread ever changes namespace); packets cross into JS one batch per call, lent in
// place in the reader's ring (see CallJs).
//
// Lifetime: the fd is closed by close() (off the JS thread), by the finalizer when the handle is
// garbage-collected, or by an environment cleanup hook at exit, whichever comes first. A running
// reader holds a threadsafe function; its own cleanup hook is registered after that function is
// created so that it runs before Node tears the function down (hooks run last-in, first-out): the
// reader thread must be gone before the function its wake-ups reach is.
#include <napi.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <uv.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "addon_data.h"
#include "errors.h"
#include "netns.h"
#include "promise_worker.h"
#include "tun_flags.h"
#include "tun_open.h"
#include "tun_reader.h"

namespace tunkeeper {

namespace {

// Batches delivered per wake-up before yielding to the rest of the event loop.
constexpr int kMaxBatchesPerWakeup = 16;

// The reader thread's wake-ups: it signals `fd` (an eventfd), and a poll handle on the JS
// thread's loop forwards that to the threadsafe function. The thread cannot call the function
// itself: that writes to libuv's own eventfd, which is not in the thread's private fd table
// (tun_reader.cc, PrivateFdTable). Freed by the handle's close callback.
struct Notifier {
  uv_poll_t poll;
  int fd = -1;
  napi_threadsafe_function tsfn = nullptr;
};

void OnNotify(uv_poll_t* handle, int, int) {
  auto* n = static_cast<Notifier*>(handle->data);
  uint64_t count;
  ssize_t ignored = read(n->fd, &count, sizeof count);  // clears it (nonblocking)
  (void)ignored;
  if (n->tsfn) napi_call_threadsafe_function(n->tsfn, nullptr, napi_tsfn_nonblocking);
}

void CloseNotifier(Notifier* n) {
  n->tsfn = nullptr;
  uv_poll_stop(&n->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&n->poll), [](uv_handle_t* h) {
    auto* n = static_cast<Notifier*>(h->data);
    close(n->fd);
    delete n;
  });
}

// Returns the notifier, or null with errno set.
Notifier* OpenNotifier(napi_env env, napi_threadsafe_function tsfn) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
    errno = EINVAL;
    return nullptr;
  }
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return nullptr;
  auto* n = new Notifier();
  n->fd = fd;
  n->tsfn = tsfn;
  n->poll.data = n;
  int err = uv_poll_init(loop, &n->poll, fd);
  if (err) {
    close(fd);
    delete n;
    errno = -err;
    return nullptr;
  }
  uv_poll_start(&n->poll, UV_READABLE, OnNotify);
  // The threadsafe function keeps the loop alive (or not: setRef); this handle never does.
  uv_unref(reinterpret_cast<uv_handle_t*>(&n->poll));
  return n;
}

struct TunState {
  explicit TunState(napi_env e) : env(e) {}
  napi_env env;
  int fd = -1;
  std::string name;
  std::string netns;
  int ifindex = 0;
  unsigned flags = 0;
  int64_t offload = -1;  // TUN_F_* bits set on this fd, -1 when never set
  uint32_t readBatch = 64;
  uint32_t queueLimit = 4096;
  std::unique_ptr<TunReader> reader;
  napi_threadsafe_function tsfn = nullptr;
  Notifier* notifier = nullptr;
  bool refed = true;
  bool backpressure = false;
  bool readerHook = false;
  bool deviceHook = false;
  bool viewsGiven = false;
  // Counted on the JS thread only. droppedBefore: the drops of a reader freed at close.
  double packetsRead = 0, bytesRead = 0, batches = 0, packetsWritten = 0, bytesWritten = 0, droppedBefore = 0, malformedBefore = 0, splitBefore = 0;

  std::string Label() const { return std::string(IsTap(flags) ? "tap" : "tun") + " device '" + name + "'"; }
};

// What an open hands to the TunDevice constructor (through a napi External).
struct OpenedTun {
  TunOpenResult result;
  std::string netns;
  uint32_t readBatch;
  uint32_t queueLimit;
};

void ReaderCleanup(void* arg);

void StopReader(TunState* st) {
  if (st->reader) st->reader->Stop();
  if (st->notifier) {
    CloseNotifier(st->notifier);
    st->notifier = nullptr;
  }
  if (st->tsfn) {
    // abort: a wake-up still queued is dropped (call_js then sees a null env) instead of delivered.
    napi_release_threadsafe_function(st->tsfn, napi_tsfn_abort);
    st->tsfn = nullptr;
  }
  if (st->readerHook) {
    st->readerHook = false;
    napi_remove_env_cleanup_hook(st->env, ReaderCleanup, st);
  }
}

void ReaderCleanup(void* arg) {
  auto* st = static_cast<TunState*>(arg);
  st->readerHook = false;
  StopReader(st);
}

// Stops the reader and frees it (its ring can be megabytes); keeps its drop count for stats().
// Safe inside CallJs: after a callback it touches the reader only if the fd is still open.
void FreeReader(TunState* st) {
  StopReader(st);
  if (st->reader) {
    st->droppedBefore += static_cast<double>(st->reader->dropped());
    st->malformedBefore += static_cast<double>(st->reader->malformed());
    st->splitBefore += static_cast<double>(st->reader->split());
    st->reader.reset();
  }
}

void CloseNow(TunState* st) {
  FreeReader(st);
  if (st->fd >= 0) {
    close(st->fd);
    st->fd = -1;
  }
}

void DeviceCleanup(void* arg) {
  auto* st = static_cast<TunState*>(arg);
  st->deviceHook = false;
  CloseNow(st);
}

void FinalizeHolder(napi_env, void* data, void*) { delete static_cast<std::shared_ptr<TunState>*>(data); }

// An exception out of the facade's callback would otherwise be swallowed by the threadsafe
// function machinery; make it an uncaught exception like any other.
bool ReportIfThrown(napi_env env, napi_status status) {
  if (status != napi_pending_exception) return false;
  napi_value error;
  if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
  return true;
}

void DeliverEnd(napi_env env, napi_value cb, TunState* st, int err) {
  napi_value argv[2];
  napi_create_int32(env, -1, &argv[0]);
  if (err == 0) {
    napi_get_undefined(env, &argv[1]);
  } else {
    try {
      Napi::Error e = err == EBADFD
                          ? MakeErrnoError(env, ENODEV, "read", "read from " + st->Label() + " (it was deleted while open)")
                          : MakeErrnoError(env, err, "read", "read from " + st->Label());
      argv[1] = e.Value();
    } catch (const Napi::Error& e) {
      argv[1] = e.Value();
    }
  }
  napi_value undefined, result;
  napi_get_undefined(env, &undefined);
  ReportIfThrown(env, napi_call_function(env, undefined, cb, 2, argv, &result));
}

// Delivers up to kMaxBatchesPerWakeup batches: each is lent in place (its offsets and lengths in
// the batch slots JS views through readerViews()), announced as onBatch(count), and given back
// to the reader thread when the callback returns. No allocation, no copy per batch.
void CallJs(napi_env env, napi_value cb, void* context, void*) {
  if (env == nullptr || cb == nullptr) return;  // the function is being torn down
  TunState* st = static_cast<std::shared_ptr<TunState>*>(context)->get();
  TunReader* reader = st->reader.get();
  if (!reader || st->fd < 0 || !st->tsfn) return;
  reader->BeginDelivery();
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  for (int i = 0; i < kMaxBatchesPerWakeup; i++) {
    std::size_t bytes;
    uint32_t count = reader->Borrow(&bytes);
    if (count == 0) break;
    st->packetsRead += count;
    st->bytesRead += static_cast<double>(bytes);
    st->batches += 1;
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value argv[1], result;
    napi_create_uint32(env, count, &argv[0]);
    ReportIfThrown(env, napi_call_function(env, undefined, cb, 1, argv, &result));
    napi_close_handle_scope(env, scope);
    // The callback may have closed the handle (which frees the reader: nothing to give back) or
    // stopped the reader (the batch was delivered all the same: give its room back).
    if (st->fd < 0) return;
    reader->Release();
    if (!st->tsfn) return;
  }
  int err;
  if (reader->TakeEnd(&err)) {
    DeliverEnd(env, cb, st, err);
    return;
  }
  reader->EndDelivery();
}

int WriteOne(TunState* st, const uint8_t* data, std::size_t len) {
  if (st->fd < 0) return EBADF;
  if (len > kMaxFrame) return EMSGSIZE;
  for (;;) {
    // Not glibc's write(): in a multi-threaded process it makes each call a cancellation point
    // (async-cancel bookkeeping around the syscall, a few percent of a small packet's write).
    // The JS thread is never cancelled.
    ssize_t n = syscall(SYS_write, st->fd, data, len);
    if (n >= 0) break;
    if (errno != EINTR) return errno;
  }
  st->packetsWritten += 1;
  st->bytesWritten += static_cast<double>(len);
  return 0;
}

[[noreturn]] void ThrowWriteError(Napi::Env env, TunState* st, int err, std::size_t len) {
  std::string size = std::to_string(len) + "-byte packet";
  if (err == EBADF) ThrowErrno(env, EBADF, "write", "write to " + st->Label());
  if (err == EMSGSIZE)
    ThrowErrno(env, EMSGSIZE, "write",
               "write a " + size + " to " + st->Label() + " (one frame holds at most " + std::to_string(kMaxFrame) + " bytes)");
  if (err == EBADFD) ThrowErrno(env, ENODEV, "write", "write to " + st->Label() + " (it was deleted while open)");
  if (err == EINVAL)
    ThrowErrno(env, EINVAL, "write", "write a " + size + " to " + st->Label() + " (the kernel rejects empty, truncated or malformed frames)");
  ThrowErrno(env, err, "write", "write a " + size + " to " + st->Label());
}

class TunDevice : public Napi::ObjectWrap<TunDevice> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TunDevice",
                       {
                           InstanceMethod<&TunDevice::Info>("info"),
                           InstanceMethod<&TunDevice::WriteSync>("writeSync"),
                           InstanceMethod<&TunDevice::WriteBatch>("writeBatch"),
                           InstanceMethod<&TunDevice::WritePacked>("writePacked"),
                           InstanceMethod<&TunDevice::WriteVectors>("writeVectors"),
                           InstanceMethod<&TunDevice::SetPersist>("setPersist"),
                           InstanceMethod<&TunDevice::SetOwner>("setOwner"),
                           InstanceMethod<&TunDevice::SetGroup>("setGroup"),
                           InstanceMethod<&TunDevice::SetOffload>("setOffload"),
                           InstanceMethod<&TunDevice::ReaderViews>("readerViews"),
                           InstanceMethod<&TunDevice::StartReader>("startReader"),
                           InstanceMethod<&TunDevice::StopReaderJs>("stopReader"),
                           InstanceMethod<&TunDevice::SetPaused>("setPaused"),
                           InstanceMethod<&TunDevice::SetBackpressure>("setBackpressure"),
                           InstanceMethod<&TunDevice::SetRef>("setRef"),
                           InstanceMethod<&TunDevice::Stats>("stats"),
                           InstanceMethod<&TunDevice::Close>("close"),
                       });
  }

  explicit TunDevice(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TunDevice>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsExternal())
      ThrowInvalidArg(env, "TunDevice cannot be constructed directly; use Tun.open()");
    OpenedTun* opened = info[0].As<Napi::External<OpenedTun>>().Data();
    state_ = std::make_shared<TunState>(env);
    state_->fd = opened->result.fd;
    opened->result.fd = -1;  // ours now
    state_->name = opened->result.name;
    state_->flags = opened->result.flags;
    state_->ifindex = opened->result.ifindex;
    state_->offload = opened->result.offload;
    state_->netns = opened->netns;
    state_->readBatch = opened->readBatch;
    state_->queueLimit = opened->queueLimit;
    if (napi_add_env_cleanup_hook(env, DeviceCleanup, state_.get()) == napi_ok) state_->deviceHook = true;
  }

  ~TunDevice() override {
    // Garbage-collected without close(): release the fd here. (A running reader keeps its
    // callback, and so this handle, alive; it can only be running here at environment teardown,
    // whose hooks have stopped it already.)
    CloseNow(state_.get());
    if (state_->deviceHook) {
      state_->deviceHook = false;
      napi_remove_env_cleanup_hook(state_->env, DeviceCleanup, state_.get());
    }
  }

 private:
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("name", state_->name);
    o.Set("ifindex", state_->ifindex);
    o.Set("flags", state_->flags);
    o.Set("netns", state_->netns);
    o.Set("offload", static_cast<double>(state_->offload));
    return o;
  }

  void WriteSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      ThrowInvalidArg(env, "write expects a Buffer or Uint8Array");
    Napi::Uint8Array packet = info[0].As<Napi::Uint8Array>();
    int err = WriteOne(state_.get(), packet.Data(), packet.ByteLength());
    if (err) ThrowWriteError(env, state_.get(), err, packet.ByteLength());
  }

  // One crossing, one write(2) per packet (tun(4): one packet per write). Like sendmmsg: returns
  // how many were written; throws only when the first one fails.
  Napi::Value WriteBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) ThrowInvalidArg(env, "writeBatch expects an array of Buffers");
    napi_value array = info[0];
    uint32_t length = 0;
    napi_get_array_length(env, array, &length);
    uint32_t written = 0;
    for (; written < length; written++) {
      napi_value element;
      napi_typedarray_type type;
      std::size_t count;
      void* data;
      if (napi_get_element(env, array, written, &element) != napi_ok) throw Napi::Error::New(env);
      // napi_get_typedarray_info fails (napi_invalid_arg) on anything but a typed array.
      if (napi_get_typedarray_info(env, element, &type, &count, &data, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
        napi_value ignored;
        napi_get_and_clear_last_exception(env, &ignored);
        ThrowInvalidArg(env, "writeBatch: element " + std::to_string(written) + " is not a Buffer or Uint8Array");
      }
      int err = WriteOne(state_.get(), static_cast<const uint8_t*>(data), count);
      if (err) {
        if (written == 0) ThrowWriteError(env, state_.get(), err, count);
        break;
      }
    }
    return Napi::Number::New(env, written);
  }

  // writePacked(bytes, lengths, count): `count` packets back to back in one Uint8Array, their
  // lengths in a Uint32Array: two N-API look-ups per batch instead of three per packet. Checks that
  // the lengths fit the bytes before writing any; then the same results as writeBatch.
  Napi::Value WritePacked(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
        !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array || !info[2].IsNumber())
      ThrowInvalidArg(env, "writePacked expects (Uint8Array, Uint32Array, count)");
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    Napi::Uint32Array lens = info[1].As<Napi::Uint32Array>();
    double countArg = info[2].As<Napi::Number>().DoubleValue();
    if (!(countArg >= 0 && countArg <= static_cast<double>(lens.ElementLength())) || countArg != static_cast<double>(static_cast<uint32_t>(countArg)))
      ThrowInvalidArg(env, "writePacked: count must be a whole number no larger than the lengths given");
    uint32_t count = static_cast<uint32_t>(countArg);
    const uint32_t* lengths = lens.Data();
    uint64_t total = 0;
    for (uint32_t i = 0; i < count; i++) total += lengths[i];
    if (total > bytes.ByteLength())
      ThrowInvalidArg(env, "writePacked: the lengths add up to " + std::to_string(total) + " bytes, more than the " +
                               std::to_string(bytes.ByteLength()) + " given (nothing was written)");
    const uint8_t* data = bytes.Data();
    uint32_t written = 0;
    for (; written < count; written++) {
      std::size_t len = lengths[written];
      int err = WriteOne(state_.get(), data, len);
      if (err) {
        if (written == 0) ThrowWriteError(env, state_.get(), err, len);
        break;
      }
      data += len;
    }
    return Napi::Number::New(env, written);
  }

  // writeVectors(bytes, offsets, lengths, count): packet i is lengths[i] bytes at offsets[i] of
  // `bytes`: a batch lent by another Tun's reader (forwarding without a copy), or an arena the
  // offload code filled. Checks every packet lies inside `bytes` before writing any; then the
  // same results as writeBatch.
  Napi::Value WriteVectors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
        !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
        !info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array || !info[3].IsNumber())
      ThrowInvalidArg(env, "writeVectors expects (Uint8Array, Uint32Array offsets, Uint32Array lengths, count)");
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    Napi::Uint32Array offs = info[1].As<Napi::Uint32Array>();
    Napi::Uint32Array lens = info[2].As<Napi::Uint32Array>();
    double countArg = info[3].As<Napi::Number>().DoubleValue();
    double max = static_cast<double>(std::min(offs.ElementLength(), lens.ElementLength()));
    if (!(countArg >= 0 && countArg <= max) || countArg != static_cast<double>(static_cast<uint32_t>(countArg)))
      ThrowInvalidArg(env, "writeVectors: count must be a whole number no larger than the offsets and lengths given");
    uint32_t count = static_cast<uint32_t>(countArg);
    const uint32_t* offsets = offs.Data();
    const uint32_t* lengths = lens.Data();
    for (uint32_t i = 0; i < count; i++) {
      if (uint64_t(offsets[i]) + lengths[i] > bytes.ByteLength())
        ThrowInvalidArg(env, "writeVectors: packet " + std::to_string(i) + " lies outside the " + std::to_string(bytes.ByteLength()) +
                                 " bytes given (nothing was written)");
    }
    const uint8_t* data = bytes.Data();
    uint32_t written = 0;
    for (; written < count; written++) {
      std::size_t len = lengths[written];
      int err = WriteOne(state_.get(), data + offsets[written], len);
      if (err) {
        if (written == 0) ThrowWriteError(env, state_.get(), err, len);
        break;
      }
    }
    return Napi::Number::New(env, written);
  }

  void Ioctl(Napi::Env env, unsigned long request, unsigned long arg, const char* syscall, const std::string& what) {
    if (state_->fd < 0) ThrowErrno(env, EBADF, syscall, what);
    if (ioctl(state_->fd, request, arg) < 0) {
      int err = errno;
      if (err == EBADFD) ThrowErrno(env, ENODEV, syscall, what + " (it was deleted while open)");
      ThrowErrno(env, err, syscall, what);
    }
  }

  static unsigned long IdArg(const Napi::CallbackInfo& info, const char* what) {
    if (!info[0].IsNumber()) ThrowInvalidArg(info.Env(), std::string(what) + " expects a number");
    double v = info[0].As<Napi::Number>().DoubleValue();
    if (!(v >= 0 && v <= 4294967294.0) || v != static_cast<double>(static_cast<uint32_t>(v)))
      ThrowInvalidArg(info.Env(), std::string(what) + " expects an integer id in 0..4294967294");
    return static_cast<unsigned long>(v);
  }

  void SetPersist(const Napi::CallbackInfo& info) {
    bool on = info[0].ToBoolean();
    Ioctl(info.Env(), TUNSETPERSIST, on ? 1 : 0, "ioctl(TUNSETPERSIST)",
          std::string(on ? "make " : "unmake ") + state_->Label() + " persistent");
    state_->flags = on ? (state_->flags | IFF_PERSIST) : (state_->flags & ~IFF_PERSIST);
  }

  void SetOwner(const Napi::CallbackInfo& info) {
    unsigned long uid = IdArg(info, "setOwner");
    Ioctl(info.Env(), TUNSETOWNER, uid, "ioctl(TUNSETOWNER)", "set owner uid " + std::to_string(uid) + " on " + state_->Label());
  }

  void SetGroup(const Napi::CallbackInfo& info) {
    unsigned long gid = IdArg(info, "setGroup");
    Ioctl(info.Env(), TUNSETGROUP, gid, "ioctl(TUNSETGROUP)", "set group gid " + std::to_string(gid) + " on " + state_->Label());
  }

  void SetOffload(const Napi::CallbackInfo& info) {
    if (!info[0].IsNumber()) ThrowInvalidArg(info.Env(), "setOffload expects TUN_F_* bits");
    uint32_t bits = info[0].As<Napi::Number>().Uint32Value();
    if (bits & ~kTunOffloadMask) ThrowInvalidArg(info.Env(), "setOffload: unknown offload bits");
    Ioctl(info.Env(), TUNSETOFFLOAD, bits, "ioctl(TUNSETOFFLOAD)", "set offloads on " + state_->Label());
    state_->offload = bits;
  }

  // readerViews() → [ring, slots]: Buffers over the reader's ring and its batch slots (readBatch
  // uint32 offsets, readBatch uint32 lengths, then the batch's mode word: tun_reader.h), made
  // once per handle (the facade keeps them; V8 must not see the same memory wrapped twice). They own a share of that memory, so they stay
  // valid after close; what is in them is only meaningful during a batch callback.
  Napi::Value ReaderViews(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    TunState* st = state_.get();
    if (st->fd < 0) ThrowErrno(env, EBADF, "read", "read from " + st->Label());
    if (st->viewsGiven) ThrowInvalidArg(env, "readerViews: already given out for " + st->Label());
    if (!st->reader) {
      st->reader = std::make_unique<TunReader>(st->readBatch, st->queueLimit);
      st->reader->SetBackpressure(st->backpressure);
    }
    if (!st->reader->Allocate()) ThrowErrno(env, ENOMEM, "malloc", "allocate the packet queue of " + st->Label());
    Napi::Array views = Napi::Array::New(env, 2);
    views.Set(0u, ExternalBuffer(env, st->reader->ring(), st->reader->ringSize()));
    views.Set(1u, ExternalBuffer(env, st->reader->batchSlots(), st->reader->batchSlotsBytes()));
    st->viewsGiven = true;
    return views;
  }

  template <typename T>
  static Napi::Value ExternalBuffer(Napi::Env env, const std::shared_ptr<T[]>& memory, std::size_t bytes) {
    auto* share = new std::shared_ptr<void>(memory);
    napi_value result;
    napi_status status = napi_create_external_buffer(
        env, bytes, memory.get(), [](napi_env, void*, void* hint) { delete static_cast<std::shared_ptr<void>*>(hint); }, share, &result);
    if (status != napi_ok) {
      delete share;
      throw Napi::Error::New(env);
    }
    return Napi::Value(env, result);
  }

  // startReader(onBatch, segment?): onBatch(count) per batch, its packets lent in the views of
  // readerViews() until onBatch returns; onBatch(-1, error?) once when the reader ends by itself
  // (error undefined: never, today; the device going away is ENODEV). segment: the reader thread
  // segments what it reads into wire packets (tun_reader.h); a vnetHdr TUN without packet info.
  void StartReader(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    TunState* st = state_.get();
    if (!info[0].IsFunction()) ThrowInvalidArg(env, "startReader expects a function");
    bool segment = info.Length() > 1 && info[1].ToBoolean();
    if (segment && (IsTap(st->flags) || !(st->flags & IFF_VNET_HDR) || !(st->flags & IFF_NO_PI)))
      ThrowInvalidArg(env, "startReader: segmenting reads need a tun device with vnetHdr and without packet info, not " + st->Label());
    if (st->fd < 0) ThrowErrno(env, EBADF, "read", "read from " + st->Label());
    if (st->tsfn) ThrowInvalidArg(env, "a reader is already running on " + st->Label());
    if (!st->reader) {
      st->reader = std::make_unique<TunReader>(st->readBatch, st->queueLimit);
      st->reader->SetBackpressure(st->backpressure);
    }

    auto* holder = new std::shared_ptr<TunState>(state_);
    napi_threadsafe_function tsfn;
    napi_status status = napi_create_threadsafe_function(env, info[0], nullptr, Napi::String::New(env, "tunkeeper:tunReader"), 0, 1,
                                                         holder, FinalizeHolder, holder, CallJs, &tsfn);
    if (status != napi_ok) {
      delete holder;
      throw Napi::Error::New(env, "could not create the reader's threadsafe function");
    }
    st->tsfn = tsfn;
    if (!st->refed) napi_unref_threadsafe_function(env, tsfn);
    if (napi_add_env_cleanup_hook(env, ReaderCleanup, st) == napi_ok) st->readerHook = true;
    st->notifier = OpenNotifier(env, tsfn);
    if (!st->notifier) {
      int err = errno;
      StopReader(st);
      ThrowErrno(env, err, "eventfd", "start the reader of " + st->Label());
    }
    int err = st->reader->Start(st->fd, st->notifier->fd, segment);
    if (err) {
      StopReader(st);
      ThrowErrno(env, err, "pthread_create", "start the reader of " + st->Label());
    }
  }

  void StopReaderJs(const Napi::CallbackInfo&) { StopReader(state_.get()); }

  void SetPaused(const Napi::CallbackInfo& info) {
    if (state_->reader) state_->reader->SetPaused(info[0].ToBoolean());
  }

  void SetBackpressure(const Napi::CallbackInfo& info) {
    state_->backpressure = info[0].ToBoolean();
    if (state_->reader) state_->reader->SetBackpressure(state_->backpressure);
  }

  void SetRef(const Napi::CallbackInfo& info) {
    bool on = info[0].ToBoolean();
    state_->refed = on;
    if (state_->tsfn) {
      if (on) napi_ref_threadsafe_function(info.Env(), state_->tsfn);
      else napi_unref_threadsafe_function(info.Env(), state_->tsfn);
    }
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("packetsRead", state_->packetsRead);
    o.Set("bytesRead", state_->bytesRead);
    o.Set("batches", state_->batches);
    o.Set("dropped", state_->droppedBefore + static_cast<double>(state_->reader ? state_->reader->dropped() : 0));
    o.Set("malformed", state_->malformedBefore + static_cast<double>(state_->reader ? state_->reader->malformed() : 0));
    o.Set("superPackets", state_->splitBefore + static_cast<double>(state_->reader ? state_->reader->split() : 0));
    o.Set("packetsWritten", state_->packetsWritten);
    o.Set("bytesWritten", state_->bytesWritten);
    return o;
  }

  // The last close of a non-persistent device unregisters it, which waits for RCU grace periods:
  // that runs on the pool, not on the event loop. The reader is stopped first, synchronously
  // (the eventfd wakes it at once).
  class CloseWorker : public PromiseWorker {
   public:
    CloseWorker(Napi::Env env, int fd) : PromiseWorker(env, "tunkeeper:tunClose"), fd_(fd) {}
    void Execute() override { close(fd_); }
    void OnOK() override { deferred_.Resolve(Env().Undefined()); }

   private:
    int fd_;
  };

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    TunState* st = state_.get();
    FreeReader(st);
    int fd = st->fd;
    st->fd = -1;
    if (fd < 0) {
      auto done = Napi::Promise::Deferred::New(env);
      done.Resolve(env.Undefined());
      return done.Promise();
    }
    return PromiseWorker::QueueForPromise(new CloseWorker(env, fd));
  }

  std::shared_ptr<TunState> state_;
};

class OpenWorker : public PromiseWorker {
 public:
  OpenWorker(Napi::Env env, TunOpenRequest req, std::string netns, uint32_t readBatch, uint32_t queueLimit)
      : PromiseWorker(env, "tunkeeper:tunOpen"), req_(std::move(req)), netns_(std::move(netns)), readBatch_(readBatch), queueLimit_(queueLimit) {}

  ~OpenWorker() override {
    if (result_.fd >= 0) close(result_.fd);  // never handed over (e.g. the environment went away)
  }

  void Execute() override {
    const char* enterSyscall = nullptr;
    // With a namespace, RunInNetns runs the open on a fresh thread that enters it; this pool
    // thread itself never changes namespace.
    err_ = RunInNetns(netns_, [this] { return OpenTunHere(req_, &result_); }, &enterSyscall);
    if (err_ && !result_.syscall) {
      result_.syscall = enterSyscall ? enterSyscall : "setns";
      result_.what = "enter network namespace " + netns_;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      deferred_.Reject(MakeErrnoError(env, err_, result_.syscall, result_.what).Value());
      return;
    }
    try {
      OpenedTun opened{result_, netns_, readBatch_, queueLimit_};
      result_.fd = -1;
      Napi::Object handle = GetAddonData(env)->tunDeviceClass.New({Napi::External<OpenedTun>::New(env, &opened)});
      if (opened.result.fd >= 0) close(opened.result.fd);  // the constructor did not take it
      deferred_.Resolve(handle);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

 private:
  TunOpenRequest req_;
  std::string netns_;
  uint32_t readBatch_;
  uint32_t queueLimit_;
  TunOpenResult result_;
  int err_ = 0;
};

int64_t OptionalInt(Napi::Object o, const char* key, int64_t min, int64_t max) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return -1;
  if (!v.IsNumber()) ThrowInvalidArg(o.Env(), std::string("openTun: ") + key + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(min) && d <= static_cast<double>(max)) || d != static_cast<double>(static_cast<int64_t>(d)))
    ThrowInvalidArg(o.Env(), std::string("openTun: ") + key + " is out of range");
  return static_cast<int64_t>(d);
}

// openTun({ name, flags, persist?, owner?, group?, offload?, mtu?, netns?, readBatch, queueLimit })
// → Promise<TunDevice>. The TypeScript facade validates first; this re-checks types and ranges.
Napi::Value OpenTun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowInvalidArg(env, "openTun expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  TunOpenRequest req;
  Napi::Value name = o.Get("name");
  if (name.IsString()) req.name = name.As<Napi::String>().Utf8Value();
  if (req.name.size() >= 16) ThrowInvalidArg(env, "openTun: name is longer than 15 bytes");
  int64_t flags = OptionalInt(o, "flags", 0, 0xffff);
  req.flags = flags < 0 ? (IFF_TUN | IFF_NO_PI) : static_cast<unsigned>(flags);
  Napi::Value persist = o.Get("persist");
  if (!persist.IsUndefined() && !persist.IsNull()) req.persist = persist.ToBoolean() ? 1 : 0;
  req.owner = OptionalInt(o, "owner", 0, 4294967294LL);
  req.group = OptionalInt(o, "group", 0, 4294967294LL);
  req.offload = OptionalInt(o, "offload", 0, kTunOffloadMask);
  int64_t optional = OptionalInt(o, "offloadOptional", 0, kTunOffloadMask);
  req.offloadOptional = optional < 0 ? 0 : optional;
  int64_t mtu = OptionalInt(o, "mtu", 1, 65535);
  req.mtu = mtu < 0 ? 0 : static_cast<int>(mtu);
  std::string netns;
  Napi::Value ns = o.Get("netns");
  if (ns.IsString()) netns = ns.As<Napi::String>().Utf8Value();
  int64_t readBatch = OptionalInt(o, "readBatch", 1, 65536);
  int64_t queueLimit = OptionalInt(o, "queueLimit", 1, 1 << 24);
  return PromiseWorker::QueueForPromise(new OpenWorker(env, std::move(req), std::move(netns), readBatch < 0 ? 64 : static_cast<uint32_t>(readBatch),
                                                       queueLimit < 0 ? 4096 : static_cast<uint32_t>(queueLimit)));
}

}  // namespace

void InitTunDevice(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = TunDevice::Define(env);
  GetAddonData(env)->tunDeviceClass = Napi::Persistent(cls);
  exports.Set("openTun", Napi::Function::New(env, OpenTun, "openTun"));
}

}  // namespace tunkeeper
