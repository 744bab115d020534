#include "netlink_receiver.h"

#include <linux/netlink.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace tunkeeper {

NetlinkReceiver::NetlinkReceiver(uint32_t* ends, bool kernelOnly) : ends_(ends), kernelOnly_(kernelOnly) {}

NetlinkReceiver::~NetlinkReceiver() {
  free(chunk_);
  if (spill_) munmap(spill_, kSpillBytes);
}

bool NetlinkReceiver::EnsureChunk() {
  if (!spillTried_) {
    spillTried_ = true;
    // Address space only: pages become memory when a datagram spills into them, and are given
    // back right after (AbsorbSpill).
    void* p = mmap(nullptr, kSpillBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    spill_ = p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
  }
  if (chunk_) return true;
  chunk_ = static_cast<uint8_t*>(malloc(kChunkBytes));
  if (!chunk_) return false;
  capacity_ = kChunkBytes;
  used_ = 0;
  count_ = 0;
  return true;
}

bool NetlinkReceiver::AbsorbSpill(size_t n, size_t room) {
  const size_t spilled = n - room;
  // No JS view of the chunk exists yet, so moving it is fine.
  auto* grown = static_cast<uint8_t*>(realloc(chunk_, used_ + n));
  bool ok = grown != nullptr;
  if (ok) {
    memcpy(grown + used_ + room, spill_, spilled);
    chunk_ = grown;
    used_ += n;
    capacity_ = used_;  // no room left: this batch ends here
  }
  const size_t page = 4096;
  madvise(spill_, (spilled + page - 1) / page * page, MADV_DONTNEED);
  return ok;
}

NetlinkReceiver::Result NetlinkReceiver::Fill(int fd) {
  if (!EnsureChunk()) return {Stop::kError, ENOMEM};
  while (count_ < kMaxDatagrams) {
    const size_t room = capacity_ - used_;
    if (room < kMinRoom) return {Stop::kFull, 0};

    sockaddr_nl from{};
    iovec iov[2] = {{chunk_ + used_, room}, {spill_, spill_ ? kSpillBytes : 0}};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = iov;
    msg.msg_iovlen = spill_ ? 2 : 1;
    // MSG_TRUNC: the return value is the datagram's real size, even when it did not fit.
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {Stop::kDrained, 0};
      return {Stop::kError, errno};
    }
    const size_t len = static_cast<size_t>(n);
    if (msg.msg_flags & MSG_TRUNC) {
      if (spill_) madvise(spill_, kSpillBytes, MADV_DONTNEED);
      return {Stop::kError, EMSGSIZE, len};
    }
    if (len > room) {
      if (kernelOnly_ && from.nl_pid != 0) {
        madvise(spill_, kSpillBytes, MADV_DONTNEED);
        continue;
      }
      if (!AbsorbSpill(len, room)) return {Stop::kError, ENOMEM};
      ends_[count_++] = static_cast<uint32_t>(used_);
      return {Stop::kFull, 0};
    }
    if (len == 0 || (kernelOnly_ && from.nl_pid != 0)) continue;
    used_ += len;
    ends_[count_++] = static_cast<uint32_t>(used_);
  }
  return {Stop::kFull, 0};
}

NetlinkReceiver::Batch NetlinkReceiver::Take() {
  Batch batch{chunk_, used_, count_, false};
  if (used_ > kCopyLimit) {
    // Hand the chunk over, trimmed to what was written: the caller keeps only its data alive.
    // Shrinking in place does not copy (heap chunks are split, mmap'd ones unmapped at the tail).
    auto* trimmed = static_cast<uint8_t*>(realloc(chunk_, used_));
    batch.data = trimmed ? trimmed : chunk_;
    batch.owned = true;
    chunk_ = nullptr;
    capacity_ = 0;
  }
  used_ = 0;
  count_ = 0;
  return batch;
}

}  // namespace tunkeeper
