// The packet reader of one TUN/TAP fd: a thread that poll()s the fd (and an eventfd that stops
// it) and read()s packets into a preallocated slab, up to `readBatch` per batch, and a BOUNDED
// queue of batches that the JS thread drains. When JS does not keep up, the reader keeps reading
// (so the kernel's own queue never silently overflows) and drops what does not fit, counting it.
//
// Hand-over protocol: the reader calls `notify` (a threadsafe-function call) only when no wake-up
// is outstanding, and only when it is about to sleep (the fd is drained) or a few batches have
// piled up: at most one pending crossing into JS however fast packets arrive, and under a flood
// one wake-up per several batches rather than per batch. The JS side clears the flag before draining (BeginDelivery) and re-arms it
// when it leaves work behind (EndDelivery). `paused` lets a consumer stop deliveries without
// stopping the reader: packets then pile up to the limit and the rest is dropped and counted.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

namespace tunkeeper {

// One batch as queued and as handed to JS: one malloc'd block, header then `count` uint32 lengths
// then the packets back to back. The part after the header is exactly the ArrayBuffer JS gets.
struct PacketBatch {
  uint32_t count;
  uint32_t bytes;  // packet bytes, without the lengths
  uint32_t* lens() { return reinterpret_cast<uint32_t*>(this + 1); }
  uint8_t* payload() { return reinterpret_cast<uint8_t*>(this + 1); }  // lens, then packets
  std::size_t payloadSize() const { return count * sizeof(uint32_t) + bytes; }
  static PacketBatch* Make(const uint8_t* packets, const uint32_t* lens, uint32_t count, uint32_t bytes);
  static void Free(PacketBatch* batch);
};

class TunReader {
 public:
  using Notify = void (*)(void* ctx);

  TunReader(uint32_t readBatch, uint32_t queueLimit);
  ~TunReader();  // stops the thread, frees queued batches
  TunReader(const TunReader&) = delete;
  TunReader& operator=(const TunReader&) = delete;

  // Starts the thread on `fd`; returns 0 or an errno (eventfd/thread creation).
  int Start(int fd, Notify notify, void* ctx);
  // Wakes the thread through the eventfd and joins it; idempotent. Queued batches stay.
  void Stop();
  bool running() const { return thread_.joinable(); }

  // --- JS thread ---
  void BeginDelivery();
  // The next batch (caller frees with PacketBatch::Free), or nullptr when empty or paused.
  PacketBatch* Take();
  // Re-arms a wake-up if work remains that the caller left for the next turn of the event loop.
  void EndDelivery();
  // True once, when the reader thread has ended on its own and everything before it was taken;
  // *err is the errno it ended with.
  bool TakeEnd(int* err);
  void SetPaused(bool paused);
  // Packets read and dropped because the queue was full.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // Frees everything queued (on close).
  void Clear();

 private:
  void Run();
  // Queues what fits of a batch, drops and counts the rest. `idle`: the reader is about to sleep.
  void Publish(const uint8_t* slab, const uint32_t* lens, uint32_t count, bool idle);
  void WakeIfQueued();
  void Finish(int err);
  // Under mu_: whether a wake-up is due now (and marks it outstanding).
  bool ArmLocked();

  const uint32_t readBatch_;
  const uint32_t queueLimit_;
  const std::size_t queueBytesLimit_;
  const std::size_t slabSize_;
  const std::size_t wakeThreshold_;  // packets

  int fd_ = -1;
  int wakeFd_ = -1;
  Notify notify_ = nullptr;
  void* ctx_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> dropped_{0};

  std::mutex mu_;  // guards everything below
  std::deque<PacketBatch*> queue_;
  std::size_t queuedPackets_ = 0;  // includes packets reserved by a Publish in progress
  std::size_t queuedBytes_ = 0;
  bool signalled_ = false;
  bool paused_ = false;
  bool ended_ = false;
  bool endTaken_ = false;
  int endErr_ = 0;
};

}  // namespace tunkeeper
