// Draining a netlink socket into one contiguous batch with as few copies as the kernel allows.
//
// Each recvmsg lands directly in a large chunk of native memory, datagram after datagram; the
// batch is then handed to JavaScript whole (one Buffer plus the end offset of each datagram), so a
// 32 KiB dump datagram is copied exactly once, by the kernel. A small batch (the usual multicast
// event) is copied into a fresh Buffer instead and the chunk is reused, so that a trickle of
// events costs no allocation of chunk size.
//
// Truncation: every recvmsg offers at least kMinRoom bytes of the chunk plus a spill area of
// kSpillBytes (reserved address space, untouched until a datagram actually spills into it). The
// kernel's dump datagrams are at most max(32 KiB, the largest single message), so in practice
// nothing spills; a datagram that does is joined back into the chunk. One larger than room + spill
// is reported as EMSGSIZE, never delivered cut short.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tunkeeper {

class NetlinkReceiver {
 public:
  static constexpr size_t kChunkBytes = 2u << 20;
  static constexpr size_t kMinRoom = 64u << 10;
  static constexpr size_t kSpillBytes = 4u << 20;
  static constexpr size_t kCopyLimit = 32u << 10;
  // Datagrams per batch: bounds one burst (the loop is not starved by a flood of small events)
  // and sizes the shared array of end offsets.
  static constexpr uint32_t kMaxDatagrams = 1024;

  enum class Stop {
    kDrained,  // EAGAIN: nothing more to read now
    kFull,     // the batch is full; more may be waiting (the poll fires again)
    kError,    // recvmsg failed with `err` (ENOBUFS: messages were lost) or a datagram was too big (EMSGSIZE)
  };
  struct Result {
    Stop stop;
    int err;
    size_t size = 0;  // with EMSGSIZE: the size of the datagram that was dropped
  };

  // `ends` must hold kMaxDatagrams entries and outlive the receiver; ends[i] is the offset just
  // past datagram i in the batch. With kernelOnly, datagrams whose sender port is not 0 are
  // dropped: only the kernel speaks on an rtnetlink socket, anything else is spoofed.
  NetlinkReceiver(uint32_t* ends, bool kernelOnly);
  ~NetlinkReceiver();
  NetlinkReceiver(const NetlinkReceiver&) = delete;
  NetlinkReceiver& operator=(const NetlinkReceiver&) = delete;

  // Appends datagrams to the pending batch until the socket is drained, the batch is full, or an
  // error (the datagrams read before it stay in the batch).
  Result Fill(int fd);

  uint32_t count() const { return count_; }

  struct Batch {
    uint8_t* data;
    size_t size;
    uint32_t count;
    bool owned;  // true: the caller now owns `data` (release with free()); false: valid until the next Fill
  };
  // Takes the pending batch (count() > 0) and starts a new one.
  Batch Take();

 private:
  bool EnsureChunk();
  bool AbsorbSpill(size_t n, size_t room);

  uint32_t* ends_;
  bool kernelOnly_;
  uint8_t* chunk_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
  uint32_t count_ = 0;
  uint8_t* spill_ = nullptr;  // mmap'd lazily; nullptr if the mapping failed (then no spill)
  bool spillTried_ = false;
};

}  // namespace tunkeeper
