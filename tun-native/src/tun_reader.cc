#include "tun_reader.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "tun_flags.h"

namespace tunkeeper {

namespace {
// Room the slab keeps per packet of a batch on top of one largest frame. Small packets (the common
// case) fill a whole batch; jumbo or GSO frames end a batch early rather than being truncated.
constexpr std::size_t kSlabBytesPerPacket = 2048;
// The byte bound of the queue, next to its packet bound: a queue of 64 KiB GSO frames must not
// grow to queueLimit * 64 KiB.
constexpr std::size_t kQueueBytesPerPacket = 2048;
constexpr std::size_t kMinQueueBytes = 4 * kMaxFrame;
// A reader that is not going idle wakes JS once this many batches are queued.
constexpr std::size_t kWakeBatches = 4;
}  // namespace

PacketBatch* PacketBatch::Make(const uint8_t* packets, const uint32_t* lens, uint32_t count, uint32_t bytes) {
  auto* batch = static_cast<PacketBatch*>(std::malloc(sizeof(PacketBatch) + count * sizeof(uint32_t) + bytes));
  if (!batch) return nullptr;
  batch->count = count;
  batch->bytes = bytes;
  std::memcpy(batch->lens(), lens, count * sizeof(uint32_t));
  std::memcpy(batch->payload() + count * sizeof(uint32_t), packets, bytes);
  return batch;
}

void PacketBatch::Free(PacketBatch* batch) { std::free(batch); }

TunReader::TunReader(uint32_t readBatch, uint32_t queueLimit)
    : readBatch_(readBatch),
      queueLimit_(queueLimit),
      queueBytesLimit_(std::max<std::size_t>(std::size_t(queueLimit) * kQueueBytesPerPacket, kMinQueueBytes)),
      slabSize_(kMaxFrame + std::size_t(readBatch) * kSlabBytesPerPacket),
      wakeThreshold_(std::max<std::size_t>(1, std::min<std::size_t>(std::size_t(readBatch) * kWakeBatches, queueLimit / 2))) {}

TunReader::~TunReader() {
  Stop();
  Clear();
}

int TunReader::Start(int fd, Notify notify, void* ctx) {
  if (thread_.joinable()) return EALREADY;
  wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) return errno;
  fd_ = fd;
  notify_ = notify;
  ctx_ = ctx;
  stopping_.store(false);
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A wake-up outstanding from a previous run died with its threadsafe function.
    signalled_ = false;
    ended_ = false;
    endTaken_ = false;
    endErr_ = 0;
    wake = !queue_.empty() && ArmLocked();
  }
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error& e) {
    close(wakeFd_);
    wakeFd_ = -1;
    return e.code().value() ? e.code().value() : EAGAIN;
  }
  if (wake) notify_(ctx_);
  return 0;
}

void TunReader::Stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  uint64_t one = 1;
  // The eventfd is in the reader's poll set: this ends a poll() that may wait forever.
  ssize_t ignored = write(wakeFd_, &one, sizeof one);
  (void)ignored;
  thread_.join();
  close(wakeFd_);
  wakeFd_ = -1;
  fd_ = -1;
  notify_ = nullptr;  // the threadsafe function it called is released next
}

void TunReader::Run() {
  std::unique_ptr<uint8_t[]> slab(new (std::nothrow) uint8_t[slabSize_]);
  std::vector<uint32_t> lens(readBatch_);
  if (!slab) {
    Finish(ENOMEM);
    return;
  }
  struct pollfd fds[2] = {{fd_, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
  while (!stopping_.load(std::memory_order_relaxed)) {
    std::size_t used = 0;
    uint32_t count = 0;
    int err = 0;
    bool drained = false;
    while (count < readBatch_ && slabSize_ - used >= kMaxFrame) {
      ssize_t n = read(fd_, slab.get() + used, kMaxFrame);
      if (n >= 0) {
        lens[count++] = static_cast<uint32_t>(n);
        used += static_cast<std::size_t>(n);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) drained = true;
      else err = errno;
      break;
    }
    // Going idle (or ending) with packets queued always wakes JS; a busy reader wakes it only
    // once enough has piled up, so under a flood both threads pay for far fewer wake-ups.
    bool idle = drained || err;
    if (count) Publish(slab.get(), lens.data(), count, idle);
    else if (idle) WakeIfQueued();
    if (err) {
      // EBADFD: the device was deleted under us; anything else is as unexpected. Either way the
      // fd will never give packets again.
      Finish(err);
      return;
    }
    if (!drained) continue;  // a full batch: more is probably waiting, skip the poll
    int ready = poll(fds, 2, -1);
    if (ready < 0 && errno != EINTR) {
      Finish(errno);
      return;
    }
    if (fds[1].revents) return;  // Stop()
    // POLLERR on the TUN fd (device gone) shows up as the read's errno on the next turn.
  }
}

bool TunReader::ArmLocked() {
  if (signalled_ || paused_) return false;
  signalled_ = true;
  return true;
}

void TunReader::WakeIfQueued() {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake = !queue_.empty() && ArmLocked();
  }
  if (wake) notify_(ctx_);
}

void TunReader::Publish(const uint8_t* slab, const uint32_t* lens, uint32_t count, bool idle) {
  uint32_t accept;
  uint32_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t roomPackets = queueLimit_ > queuedPackets_ ? queueLimit_ - queuedPackets_ : 0;
    std::size_t roomBytes = queueBytesLimit_ > queuedBytes_ ? queueBytesLimit_ - queuedBytes_ : 0;
    accept = 0;
    while (accept < count && accept < roomPackets && bytes + lens[accept] <= roomBytes) bytes += lens[accept++];
    // Reserve now so the allocation and copy below happen outside the lock.
    queuedPackets_ += accept;
    queuedBytes_ += bytes;
  }
  if (accept < count) dropped_.fetch_add(count - accept, std::memory_order_relaxed);
  if (accept == 0) {
    if (idle) WakeIfQueued();
    return;
  }
  PacketBatch* batch = PacketBatch::Make(slab, lens, accept, bytes);
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (batch) {
      queue_.push_back(batch);
      wake = (idle || queuedPackets_ >= wakeThreshold_) && ArmLocked();
    } else {
      queuedPackets_ -= accept;
      queuedBytes_ -= bytes;
    }
  }
  if (!batch) dropped_.fetch_add(accept, std::memory_order_relaxed);
  if (wake) notify_(ctx_);
}

void TunReader::Finish(int err) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    endErr_ = err;
    wake = ArmLocked();
  }
  if (wake) notify_(ctx_);
}

void TunReader::BeginDelivery() {
  std::lock_guard<std::mutex> lock(mu_);
  signalled_ = false;
}

PacketBatch* TunReader::Take() {
  std::lock_guard<std::mutex> lock(mu_);
  if (paused_ || queue_.empty()) return nullptr;
  PacketBatch* batch = queue_.front();
  queue_.pop_front();
  queuedPackets_ -= batch->count;
  queuedBytes_ -= batch->bytes;
  return batch;
}

void TunReader::EndDelivery() {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake = (!queue_.empty() || (ended_ && !endTaken_)) && ArmLocked();
  }
  if (wake && notify_) notify_(ctx_);
}

bool TunReader::TakeEnd(int* err) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ended_ || endTaken_ || paused_ || !queue_.empty()) return false;
  endTaken_ = true;
  *err = endErr_;
  return true;
}

void TunReader::SetPaused(bool paused) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = paused;
    wake = !paused && thread_.joinable() && (!queue_.empty() || (ended_ && !endTaken_)) && ArmLocked();
  }
  if (wake && notify_) notify_(ctx_);
}

void TunReader::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  for (PacketBatch* batch : queue_) PacketBatch::Free(batch);
  queue_.clear();
  queuedPackets_ = 0;
  queuedBytes_ = 0;
}

}  // namespace tunkeeper
