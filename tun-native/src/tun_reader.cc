#include "tun_reader.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "tun_flags.h"
#include "tun_offload.h"

namespace tunkeeper {

namespace {

// Ring bytes per packet of queueLimit: MTU-sized packets meet the packet limit before the byte
// limit. Bounded both ways: at least a few largest frames, at most 64 MiB.
constexpr std::size_t kRingBytesPerPacket = 1600;
constexpr std::size_t kMinRing = 4 * kMaxFrame;
constexpr std::size_t kMaxRing = std::size_t(64) << 20;
// While JS keeps up, the reader wraps once it is this far into the ring (if the start is free),
// so packets are written into memory that is still in cache rather than swept across megabytes.
constexpr std::size_t kHotBytes = std::size_t(256) << 10;
// A reader that is not going idle wakes JS once this many batches are waiting.
constexpr uint64_t kWakeBatches = 16;

// read(2) without glibc's wrapper: in a multi-threaded process that wrapper makes every call a
// cancellation point (enabling and disabling async cancel around it), about 5% of a read under a
// flood. This thread is never cancelled (Stop() wakes it through the eventfd).
inline ssize_t RawRead(int fd, void* buf, std::size_t len) { return syscall(SYS_read, fd, buf, len); }

// Gives the calling thread an fd table of its own holding only `keep`; false (and nothing
// changed) where close_range(2) is missing. Why: while a process's fd table is shared by several
// threads, every read() takes and drops a reference on its file (atomics: several percent of a
// read under a flood); a table with a single user takes the kernel's light path. The copies of
// the other fds are closed at once so that the thread never keeps another file of the process
// open. So the thread must use no other fd: it wakes JS through its own eventfd, not libuv's.
bool PrivateFdTable(std::array<int, 3> keep) {
  // Probe on the shared table: closing an fd number that cannot exist closes nothing.
  if (syscall(SYS_close_range, ~0u, ~0u, 0u) != 0) return false;
  if (unshare(CLONE_FILES) != 0) return false;
  std::sort(keep.begin(), keep.end());
  unsigned next = 0;
  for (int fd : keep) {
    if (static_cast<unsigned>(fd) > next) syscall(SYS_close_range, next, static_cast<unsigned>(fd) - 1, 0u);
    next = static_cast<unsigned>(fd) + 1;
  }
  syscall(SYS_close_range, next, ~0u, 0u);
  return true;
}

inline std::size_t Align4(std::size_t n) { return (n + 3) & ~std::size_t(3); }

}  // namespace

TunReader::TunReader(uint32_t readBatch, uint32_t queueLimit)
    : readBatch_(readBatch),
      queueLimit_(queueLimit),
      ringSize_(Align4(std::max(kMinRing, std::min(kMaxRing, std::size_t(queueLimit) * kRingBytesPerPacket)))),
      wakeThreshold_(std::max<uint64_t>(1, std::min<uint64_t>(uint64_t(readBatch) * kWakeBatches, queueLimit / 2))) {}

TunReader::~TunReader() { Stop(); }

bool TunReader::Allocate() {
  if (ring_) return true;
  // Packets start 4-byte aligned (Align4), so 32-bit views of a lent packet's headers line up.
  std::unique_ptr<uint8_t[]> ring(new (std::nothrow) uint8_t[ringSize_]);
  std::unique_ptr<uint8_t[]> scratch(new (std::nothrow) uint8_t[kMaxFrame]);
  std::unique_ptr<Slot[]> slots(new (std::nothrow) Slot[queueLimit_]);
  std::unique_ptr<uint32_t[]> batchSlots(new (std::nothrow) uint32_t[batchSlotsBytes() / sizeof(uint32_t)]());
  if (!ring || !scratch || !slots || !batchSlots) return false;
  ring_ = std::shared_ptr<uint8_t[]>(ring.release());
  scratch_ = std::move(scratch);
  slots_ = std::move(slots);
  batchSlots_ = std::shared_ptr<uint32_t[]>(batchSlots.release());
  return true;
}

int TunReader::Start(int fd, int notifyFd, bool segment) {
  if (thread_.joinable()) return EALREADY;
  if (!Allocate()) return ENOMEM;
  wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) return errno;
  fd_ = fd;
  notifyFd_ = notifyFd;
  segment_ = segment;
  stopping_.store(false);
  // A wake-up outstanding from a previous run died with its threadsafe function.
  signalled_.store(false);
  ended_.store(false);
  endTaken_ = false;
  endErr_ = 0;
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error& e) {
    close(wakeFd_);
    wakeFd_ = -1;
    notifyFd_ = -1;
    return e.code().value() ? e.code().value() : EAGAIN;
  }
  // Packets left from a previous run are deliverable at once.
  if (produced_.load() != consumed_.load()) Wake(true);
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
  waitingForRoom_.store(false);
  close(wakeFd_);
  wakeFd_ = -1;
  fd_ = -1;
  notifyFd_ = -1;  // the caller's, closed by the caller
}

// Wake-up protocol (Dekker-style, every step seq_cst): the reader publishes, then checks and sets
// `signalled_`; JS clears `signalled_`, then looks for packets. Whatever the interleaving, either
// JS sees the packets or the reader sees the flag clear and sends a wake-up.
void TunReader::Wake(bool force) {
  if (notifyFd_ < 0) return;
  uint64_t queued = produced_.load() - consumed_.load();
  bool due = ended_.load() || (queued > 0 && (force || queued >= wakeThreshold_));
  if (!due || paused_.load()) return;
  if (!signalled_.exchange(true)) Notify();
}

void TunReader::Notify() {
  uint64_t one = 1;
  ssize_t ignored = write(notifyFd_, &one, sizeof one);  // an eventfd: cannot fill up in practice
  (void)ignored;
}

bool TunReader::Reserve(uint32_t unpublished, uint32_t packets, std::size_t bytes) {
  uint64_t queued = produced_.load(std::memory_order_relaxed) + unpublished - consumed_.load(std::memory_order_acquire);
  if (queued + packets > queueLimit_) return false;
  std::size_t r = readPos_.load(std::memory_order_acquire);
  // Positions alone cannot tell full from empty, so the writer never lets write_ reach r from
  // behind: a packet always ends strictly before the reader's cursor. The space left at the end
  // when wrapping is simply skipped (the slots say where each packet starts).
  if (write_ >= r) {
    bool fits = ringSize_ - write_ >= bytes;
    if (fits && write_ < kHotBytes) return true;
    if (r <= bytes) {
      // Wrapping would run into the reader: go on if we can. With nothing queued or lent (JS
      // gives room back, and so moves readPos_, only while it holds a batch) the whole ring is
      // free: start again at its beginning, so that a big run of segments cannot wait forever.
      if (fits || queued != 0 || bytes > ringSize_) return fits;
      readPos_.store(0, std::memory_order_release);
    }
    write_ = 0;
    return true;
  }
  return r - write_ > bytes;
}

void TunReader::Publish(uint32_t* kept) {
  // The packets and their slots are written before the count.
  if (*kept) produced_.fetch_add(*kept);
  *kept = 0;
}

void TunReader::Run() {
  // Named, so `top -H` and profilers tell it from Node's own threads.
  pthread_setname_np(pthread_self(), "tun-reader");
  bool privateFds = PrivateFdTable({fd_, wakeFd_, notifyFd_});
  if (segment_) SegmentLoop();
  else Loop();
  if (privateFds) {
    // Our copies must be gone before Stop()'s join returns: the thread's table itself is only
    // released later in its exit, and a copy of the TUN fd would keep the device alive past the
    // close() that should end it.
    close(fd_);
    close(wakeFd_);
    close(notifyFd_);
  }
}

void TunReader::Loop() {
  struct pollfd fds[2] = {{fd_, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
  uint8_t* scratch = scratch_.get();
  // The slot of the next packet: the reader thread alone advances produced_.
  std::size_t slot = produced_.load() % queueLimit_;
  while (!stopping_.load(std::memory_order_relaxed)) {
    uint32_t count = 0;
    uint32_t kept = 0;
    int err = 0;
    bool drained = false;
    while (count < readBatch_) {
      bool room = Reserve(kept, 1, kMaxFrame);
      if (!room && backpressure_.load(std::memory_order_relaxed)) {
        // Hand JS what is here, then leave the rest in the kernel until it gives room back.
        Publish(&kept);
        Wake(true);
        if (!WaitForRoom(1, kMaxFrame)) return;  // Stop()
        continue;
      }
      uint8_t* dst = room ? &ring_[write_] : scratch;
      ssize_t n = RawRead(fd_, dst, kMaxFrame);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) drained = true;
        else err = errno;
        break;
      }
      count++;
      if (room) {
        slots_[slot] = Slot{static_cast<uint32_t>(write_), static_cast<uint32_t>(n), 0};
        if (++slot == queueLimit_) slot = 0;
        write_ += Align4(static_cast<std::size_t>(n));
        kept++;
      } else {
        dropped_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    // Published once per batch.
    bool any = kept != 0;
    Publish(&kept);
    if (!EndBatch(fds, err, drained, any || drained)) return;
  }
}

void TunReader::SegmentLoop() {
  struct pollfd fds[2] = {{fd_, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
  // Each packet is read here whole (it can be 64 KiB), then its wire packets go to the ring.
  uint8_t* scratch = scratch_.get();
  std::size_t slot = produced_.load() % queueLimit_;
  while (!stopping_.load(std::memory_order_relaxed)) {
    uint32_t reads = 0;
    uint32_t kept = 0;
    int err = 0;
    bool drained = false;
    // A batch ends after readBatch reads or readBatch wire packets, whichever comes first.
    while (reads < readBatch_ && kept < readBatch_) {
      ssize_t n = RawRead(fd_, scratch, kMaxFrame);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) drained = true;
        else err = errno;
        break;
      }
      reads++;
      SegmentPlan plan = PlanSegments(scratch, static_cast<std::size_t>(n), kVnetHdrLen);
      if (!plan.valid()) {
        malformed_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (plan.segments > queueLimit_ || plan.outBytes > ringSize_) {
        dropped_.fetch_add(plan.segments, std::memory_order_relaxed);  // could never fit
        continue;
      }
      if (!Reserve(kept, plan.segments, plan.outBytes)) {
        if (!backpressure_.load(std::memory_order_relaxed)) {
          dropped_.fetch_add(plan.segments, std::memory_order_relaxed);
          continue;
        }
        // The packet is read already: hold it here, hand JS what is queued, wait for room. No
        // more is read meanwhile, so the rest waits in the kernel as with plain reads.
        Publish(&kept);
        Wake(true);
        if (!WaitForRoom(plan.segments, plan.outBytes)) {
          // Stop(): the held packet is gone with this run (the kernel will not hand it over
          // again, and a next run may be in the other mode); counted, never lost silently.
          dropped_.fetch_add(plan.segments, std::memory_order_relaxed);
          return;
        }
      }
      WriteSegments(plan, scratch + kVnetHdrLen, plan.ipLen, &ring_[write_]);
      for (uint32_t i = 0; i < plan.segments; i++) {
        std::size_t len = plan.SegmentLength(i);
        slots_[slot] = Slot{static_cast<uint32_t>(write_), static_cast<uint32_t>(len), 1};
        if (++slot == queueLimit_) slot = 0;
        write_ += Align4(len);
      }
      kept += plan.segments;
      if (plan.plan == SegmentPlan::Kind::Gso) split_.fetch_add(1, std::memory_order_relaxed);
    }
    if (kept) Publish(&kept);
    if (!EndBatch(fds, err, drained, true)) return;
  }
}

// The end of a batch, for both loops: a read error ends the run; otherwise JS is woken (going
// idle, or ending, with packets queued always wakes it; a busy reader wakes it only once enough
// has piled up, so under a flood both threads pay for far fewer wake-ups), and a drained fd is
// polled until it is readable again. False: the loop returns (an error, or Stop()).
bool TunReader::EndBatch(pollfd* fds, int err, bool drained, bool wake) {
  if (err) {
    // EBADFD: the device was deleted under us; anything else is as unexpected. Either way the
    // fd will never give packets again.
    endErr_ = err;
    ended_.store(true);
    Wake(true);
    return false;
  }
  if (wake) Wake(drained);
  if (!drained) return true;  // a full batch: more is probably waiting, skip the poll
  int ready = poll(fds, 2, -1);
  if (ready < 0 && errno != EINTR) {
    endErr_ = errno;
    ended_.store(true);
    Wake(true);
    return false;
  }
  if (fds[1].revents) {
    // Stop(), or a room wake-up that arrived after the reader had found room by itself.
    uint64_t ignored;
    ssize_t n = read(wakeFd_, &ignored, sizeof ignored);
    (void)n;
    if (stopping_.load()) return false;
  }
  // POLLERR on the TUN fd (device gone) shows up as the read's errno on the next turn.
  return true;
}

bool TunReader::WaitForRoom(uint32_t packets, std::size_t bytes) {
  struct pollfd wake = {wakeFd_, POLLIN, 0};
  for (;;) {
    // Dekker-style with Release(): announce, then look; Release() gives room, then looks.
    waitingForRoom_.store(true);
    if (Reserve(0, packets, bytes)) {
      waitingForRoom_.store(false);
      return true;
    }
    if (stopping_.load()) return false;
    if (poll(&wake, 1, -1) < 0 && errno != EINTR) return false;
    uint64_t ignored;
    ssize_t n = read(wakeFd_, &ignored, sizeof ignored);
    (void)n;
    if (stopping_.load()) return false;
  }
}

void TunReader::BeginDelivery() { signalled_.store(false); }

uint32_t TunReader::Borrow(std::size_t* outBytes) {
  *outBytes = 0;
  if (lent_ || paused_.load()) return 0;
  uint64_t consumed = consumed_.load(std::memory_order_relaxed);
  // seq_cst: this load must not move before BeginDelivery's store (see Wake).
  uint64_t available = produced_.load() - consumed;
  uint32_t count = static_cast<uint32_t>(std::min<uint64_t>(available, readBatch_));
  if (count == 0) return 0;
  uint32_t* offsets = batchSlots_.get();
  uint32_t* lengths = offsets + readBatch_;
  std::size_t slot = consumed % queueLimit_;
  std::size_t bytes = 0;
  // One mode per batch: the first packet's. Packets a previous run in the other mode left
  // queued come first (the ring is FIFO), so a batch ends where they end.
  const uint32_t segmented = slots_[slot].segmented;
  offsets[std::size_t(2) * readBatch_] = segmented;
  for (uint32_t i = 0; i < count; i++) {
    const Slot& s = slots_[slot];
    if (s.segmented != segmented) {
      count = i;
      break;
    }
    if (++slot == queueLimit_) slot = 0;
    offsets[i] = s.offset;
    lengths[i] = s.length;
    bytes += s.length;
    lentEnd_ = s.offset + Align4(s.length);
  }
  lent_ = count;
  *outBytes = bytes;
  return count;
}

void TunReader::Release() {
  if (!lent_) return;
  readPos_.store(lentEnd_, std::memory_order_release);
  consumed_.fetch_add(lent_);
  lent_ = 0;
  if (waitingForRoom_.load() && waitingForRoom_.exchange(false) && wakeFd_ >= 0) {
    uint64_t one = 1;
    ssize_t ignored = write(wakeFd_, &one, sizeof one);
    (void)ignored;
  }
}

void TunReader::EndDelivery() {
  bool more = produced_.load() != consumed_.load() || (ended_.load() && !endTaken_);
  if (more && !paused_.load() && notifyFd_ >= 0 && !signalled_.exchange(true)) Notify();
}

bool TunReader::TakeEnd(int* err) {
  if (endTaken_ || paused_.load() || !ended_.load() || produced_.load() != consumed_.load()) return false;
  endTaken_ = true;
  *err = endErr_;
  return true;
}

void TunReader::SetPaused(bool paused) {
  paused_.store(paused);
  if (!paused && thread_.joinable()) Wake(true);
}

}  // namespace tunkeeper
