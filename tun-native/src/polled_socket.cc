#include "polled_socket.h"

#include <sys/socket.h>
#include <unistd.h>

namespace tunkeeper {

// The poll handle outlives the JS object when needed: libuv frees nothing before uv_close's
// callback, which may run after the wrapper was finalized.
struct SocketPoll::Handle {
  uv_poll_t poll;
  Owner* owner = nullptr;
  // Registered for every handle, started or not: a worker's loop cannot be closed while any
  // handle is open, so environment teardown must close them all.
  napi_async_cleanup_hook_handle cleanupHook = nullptr;
};

void SocketPoll::Adopt(Napi::Env env, int* fd, Owner* owner, const std::string& what) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, "tunkeeper: no libuv loop for this environment");
  }
  auto handle = std::make_unique<Handle>();
  int r = uv_poll_init(loop, &handle->poll, *fd);
  if (r < 0) ThrowErrno(env, -r, "uv_poll_init", what);

  // From here on the fd is ours; nothing below throws.
  fd_ = *fd;
  *fd = -1;
  handle_ = handle.release();
  handle_->poll.data = handle_;
  handle_->owner = owner;
  if (napi_add_async_cleanup_hook(env, OnEnvCleanup, handle_, &handle_->cleanupHook) != napi_ok) {
    handle_->cleanupHook = nullptr;
  }
}

int SocketPoll::Start() {
  int r = uv_poll_start(&handle_->poll, UV_READABLE, OnPoll);
  if (r == 0) polling_ = true;
  return r;
}

void SocketPoll::Stop() {
  if (polling_ && handle_) uv_poll_stop(&handle_->poll);
  polling_ = false;
}

void SocketPoll::Ref() {
  if (handle_) uv_ref(reinterpret_cast<uv_handle_t*>(&handle_->poll));
}

void SocketPoll::Unref() {
  if (handle_) uv_unref(reinterpret_cast<uv_handle_t*>(&handle_->poll));
}

int SocketPoll::TakeSocketError() const {
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
  return soerr;
}

void SocketPoll::Close(bool fromCleanupHook) {
  polling_ = false;
  if (handle_) {
    Handle* h = handle_;
    handle_ = nullptr;
    h->owner = nullptr;
    if (fromCleanupHook) {
      // Teardown waits for the hook to be removed: remove it once libuv has let go of the handle.
      uv_close(reinterpret_cast<uv_handle_t*>(&h->poll), [](uv_handle_t* closed) {
        auto* done = static_cast<Handle*>(closed->data);
        napi_remove_async_cleanup_hook(done->cleanupHook);
        delete done;
      });
    } else {
      if (h->cleanupHook) napi_remove_async_cleanup_hook(h->cleanupHook);
      h->cleanupHook = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(&h->poll), [](uv_handle_t* closed) { delete static_cast<Handle*>(closed->data); });
    }
  }
  // uv_close has already removed the fd from epoll, so closing it now is safe.
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void SocketPoll::OnPoll(uv_poll_t* handle, int status, int) {
  auto* h = static_cast<Handle*>(handle->data);
  if (h->owner) h->owner->OnPollEvent(status);
}

void SocketPoll::OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg) {
  auto* h = static_cast<Handle*>(arg);
  if (h->owner) {
    h->owner->OnEnvTeardown();
  } else {
    // The owner is gone but its uv_close is pending: nothing to close, only the hook to finish.
    napi_remove_async_cleanup_hook(hook);
  }
}

void CallHandler(napi_env env, napi_async_context context, napi_value self, const Napi::FunctionReference& fn,
                 std::initializer_list<napi_value> args) {
  if (fn.IsEmpty()) return;
  napi_value result;
  napi_status status = napi_make_callback(env, context, self, fn.Value(), args.size(), args.begin(), &result);
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

}  // namespace tunkeeper
