// A job for the libuv pool whose outcome JavaScript receives as a promise: opening a TUN device,
// a netlink socket or a ping socket (entering a namespace, and the kernel's own work, stay off the
// JS thread), and closing a TUN device. The job settles the promise from OnOK; an exception out of
// Execute rejects it.
#pragma once
#include <napi.h>

namespace tunkeeper {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  // Queues `worker` and returns its promise. The worker deletes itself once it has run OnOK or
  // OnError on the JS thread.
  static Napi::Promise QueueForPromise(PromiseWorker* worker) {
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 protected:
  PromiseWorker(Napi::Env env, const char* resourceName)
      : Napi::AsyncWorker(env, resourceName), deferred_(Napi::Promise::Deferred::New(env)) {}

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  // Resolves with a new instance of `cls` made from what the job opened, passed to its constructor
  // as an External (the constructor takes what it keeps; what it does not stays with the worker,
  // whose destructor releases it), or rejects with what the constructor threw.
  template <typename Opened>
  void ResolveWithNew(const Napi::FunctionReference& cls, Opened* opened) {
    try {
      Napi::Object handle = cls.New({Napi::External<Opened>::New(Env(), opened)});
      deferred_.Resolve(handle);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  Napi::Promise::Deferred deferred_;
};

}  // namespace tunkeeper
