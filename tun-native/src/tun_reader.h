// The packet reader of one TUN/TAP fd: a thread that poll()s the fd (and an eventfd that stops
// it) and read()s packets straight into a byte ring, and the JS-thread side that lends them to JS
// in place, up to `readBatch` packets per crossing: JS sees the ring through one external Buffer
// and each batch as offsets and lengths into it, so a batch costs no allocation and no copy.
//
// Where each packet lies is kept in a separate slot array that JS never sees: JS may scribble on
// the ring Buffer, which can garble packets but never mislead this code about offsets or lengths.
//
// The ring is the BOUNDED queue: single producer (the reader thread), single consumer (the JS
// thread), no locks, no allocation per packet or per batch. When JS does not keep up the reader
// keeps reading, so the kernel's own queue never silently overflows, and drops what does not fit
// (more than `queueLimit` packets waiting, or no room for one more largest frame), counting it.
//
// Wake-ups: the reader signals `notifyFd` (an eventfd the JS thread's loop watches) only when none is outstanding,
// and only when it is about to sleep (the fd is drained) or a few batches have piled up. So there
// is at most one pending crossing into JS however fast packets arrive, and under a flood one
// wake-up per several batches. `paused` lets a consumer stop deliveries without stopping the
// reader: packets then wait in the ring, up to the limit.
//
// Segmenting (a vnetHdr fd, Start(..., segment = true)): the thread reads each packet into a
// scratch buffer and writes the wire packets it stands for into the ring (tun_offload.h: GSO
// super-packets split, partial checksums completed, vnet headers gone), one slot per wire
// packet, so JS receives wire packets in the same lent batches. Done here, not on the JS thread,
// because the two threads often share a CPU (a pinned process): work moved to the JS thread
// would queue behind the reader's, and the segments are written while the packet is in cache.
// The limits then count wire packets: a super-packet is taken whole or not at all (dropped and
// counted, or with backpressure held until room comes), and one that could never fit (more wire
// packets than queueLimit, more bytes than the ring) is dropped. Its wire packets may be spread
// over several batches.
//
// Modes in one ring: a reader stopped with packets queued and started again in the other mode
// (segmenting or not) delivers those leftovers as they were written. Each slot records the mode
// that wrote it, a batch never mixes modes (Borrow ends it where the mode changes), and the batch
// says its mode in the word after its lengths (the word after the batch's lengths). Leftovers are not converted here:
// the consumer of lent batches reads the flag (and Tun.segment() turns a plain batch into wire
// packets); the facade converts for the consumers that get copies. Dropping them would lose
// packets the kernel already handed over, for no reason but a restart.
#pragma once
#include <poll.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

namespace tunkeeper {

class TunReader {
 public:
  TunReader(uint32_t readBatch, uint32_t queueLimit);
  ~TunReader();  // stops the thread
  TunReader(const TunReader&) = delete;
  TunReader& operator=(const TunReader&) = delete;

  // Starts the thread on `fd`, signalling `notifyFd` (an eventfd the caller owns and watches)
  // when JS has work; returns 0 or an errno (allocation, eventfd, thread creation).
  // `segment`: deliver wire packets (see above); the fd must be a TUN fd with IFF_VNET_HDR.
  int Start(int fd, int notifyFd, bool segment = false);
  // Wakes the thread through the eventfd and joins it; idempotent. Queued packets stay.
  void Stop();
  bool running() const { return thread_.joinable(); }

  // --- JS thread ---
  // Clears the outstanding wake-up: call before draining.
  void BeginDelivery();
  // Lends the next batch (at most readBatch packets; 0 when empty or paused): writes their ring
  // offsets to offsets()[i] and lengths to lengths()[i], and their total size to *outBytes. Their
  // room stays taken until Release().
  uint32_t Borrow(std::size_t* outBytes);
  // Gives the room of the batch Borrow lent back to the reader thread (no-op when none is lent).
  void Release();
  // Re-arms a wake-up if work remains (the caller stopped early to yield to the event loop).
  void EndDelivery();
  // True once, when the thread has ended by itself and every packet before that was taken;
  // *err is the errno it ended with.
  bool TakeEnd(int* err);
  void SetPaused(bool paused);
  // Backpressure instead of drops: while the queue is full the thread stops reading, so packets
  // wait in the kernel's queue of the device, where TCP's small-queue limits see them and slow a
  // local sender down (and the device's txqueuelen decides what is dropped), rather than being
  // read and thrown away here.
  void SetBackpressure(bool on) { backpressure_.store(on); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // Segmenting: packets read that were not valid GSO or vnet-header packets, skipped.
  uint64_t malformed() const { return malformed_.load(std::memory_order_relaxed); }
  // Segmenting: GSO super-packets split into wire packets.
  uint64_t split() const { return split_.load(std::memory_order_relaxed); }

  // The ring (ringSize() bytes) and the batch slots (readBatch offsets, then readBatch lengths,
  // then one word: 1 when the lent batch holds segmented wire packets, 0 when it holds packets as
  // the kernel handed them over), shared so that the JS Buffers over them keep them alive even
  // after the reader is freed. batchSlotsBytes(): their size.
  const std::shared_ptr<uint8_t[]>& ring() const { return ring_; }
  std::size_t ringSize() const { return ringSize_; }
  const std::shared_ptr<uint32_t[]>& batchSlots() const { return batchSlots_; }
  std::size_t batchSlotsBytes() const { return (std::size_t(2) * readBatch_ + 1) * sizeof(uint32_t); }
  uint32_t readBatch() const { return readBatch_; }
  // Allocates the ring and the batch slots; false when out of memory. Start() calls it too.
  bool Allocate();

 private:
  void Run();
  void Loop();
  void SegmentLoop();
  bool EndBatch(pollfd* fds, int err, bool drained, bool wake);
  // Room for `packets` more packets in `bytes` contiguous bytes at the write position (wrapping
  // if needed)? Reader thread; `unpublished`: packets of the current batch not yet counted in
  // produced_. A plain read needs one packet of up to kMaxFrame.
  bool Reserve(uint32_t unpublished, uint32_t packets, std::size_t bytes);
  // Backpressure: sleeps until Release() makes that room (true) or Stop() (false).
  bool WaitForRoom(uint32_t packets, std::size_t bytes);
  // Publishes the packets of the current batch (the slots and bytes are written before).
  void Publish(uint32_t* kept);
  void Wake(bool force);
  void Notify();

  const uint32_t readBatch_;
  const uint32_t queueLimit_;
  const std::size_t ringSize_;
  const uint64_t wakeThreshold_;  // packets

  // Where a queued packet lies in the ring, and which mode wrote it; queueLimit_ slots, indexed
  // by sequence number. A frame is at most kMaxFrame bytes, so the length leaves a bit spare.
  struct Slot {
    uint32_t offset;
    uint32_t length : 31;
    uint32_t segmented : 1;
  };

  std::shared_ptr<uint8_t[]> ring_;
  std::unique_ptr<uint8_t[]> scratch_;  // read() target for packets that are dropped
  std::unique_ptr<Slot[]> slots_;
  std::shared_ptr<uint32_t[]> batchSlots_;
  int fd_ = -1;
  int wakeFd_ = -1;
  int notifyFd_ = -1;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  bool segment_ = false;

  // write_ is the reader thread's cursor; produced_ counts the packets before it that JS may
  // take (published once per batch). readPos_ (the end of the last packet given back) and
  // consumed_ tell the reader what room JS has given back. lent_/lentEnd_: the batch JS holds.
  std::size_t write_ = 0;
  uint32_t lent_ = 0;
  std::size_t lentEnd_ = 0;
  std::atomic<std::size_t> readPos_{0};
  std::atomic<uint64_t> produced_{0};
  std::atomic<uint64_t> consumed_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> split_{0};

  std::atomic<bool> signalled_{false};
  std::atomic<bool> paused_{false};
  std::atomic<bool> backpressure_{false};
  // Set by a reader waiting for room; Release() clears it and wakes the reader through wakeFd_.
  std::atomic<bool> waitingForRoom_{false};
  std::atomic<bool> ended_{false};
  bool endTaken_ = false;
  int endErr_ = 0;  // written before ended_ is set
};

}  // namespace tunkeeper
