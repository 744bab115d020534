// The offloaded TUN data path's packet work, in plain C++ (no N-API, no syscalls): the
// virtio_net_hdr that precedes every packet of an IFF_VNET_HDR fd, the Internet checksum,
// segmentation of a GSO super-packet into the packets it stands for, and coalescing (GRO) of
// consecutive TCP/UDP packets of one flow into super-packets the kernel takes back in one write.
//
// Why both: with TUNSETOFFLOAD the kernel hands the reader up to 64 KiB of a TCP stream per read
// (one syscall instead of ~45), and takes as much per write. A consumer that must see each wire
// packet (a VPN encrypting them) segments what it reads and coalesces what it writes; one that
// only forwards passes super-packets through untouched.
//
// Packet lists are (bytes, offsets, lengths, count), the shape of the reader's lent batches.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tunkeeper {

// <linux/virtio_net.h>, spelled out so older headers do not matter.
constexpr uint8_t kVnetFlagNeedsCsum = 1;
constexpr uint8_t kVnetFlagDataValid = 2;
constexpr uint8_t kVnetGsoNone = 0;
constexpr uint8_t kVnetGsoTcpV4 = 1;
constexpr uint8_t kVnetGsoUdp = 3;  // UFO: never produced, refused
constexpr uint8_t kVnetGsoTcpV6 = 4;
constexpr uint8_t kVnetGsoUdpL4 = 5;
constexpr uint8_t kVnetGsoEcn = 0x80;
// The header IFF_VNET_HDR uses unless TUNSETVNETHDRSZ says otherwise.
constexpr std::size_t kVnetHdrLen = 10;

// struct virtio_net_hdr, little-endian on the wire (tun's default for a little-endian host and
// for modern virtio alike).
struct VnetHdr {
  uint8_t flags = 0;
  uint8_t gsoType = 0;
  uint16_t hdrLen = 0;
  uint16_t gsoSize = 0;
  uint16_t csumStart = 0;
  uint16_t csumOffset = 0;
};

VnetHdr ReadVnetHdr(const uint8_t* p);
void WriteVnetHdr(uint8_t* p, const VnetHdr& h);

// The folded (not inverted) ones' complement sum of `len` bytes starting at an even offset of
// the packet, plus `initial` (a pseudo-header's sum), as a big-endian 16-bit value.
uint16_t ChecksumFold(const uint8_t* p, std::size_t len, uint32_t initial);
// The pseudo-header sum of IPv4/IPv6 `ip` (the addresses found in its fixed header) for
// protocol `proto` and L4 length `l4Len`; unfolded.
uint32_t PseudoHeaderSum(const uint8_t* ip, bool v6, uint8_t proto, uint32_t l4Len);

struct PacketList {
  const uint8_t* bytes;
  std::size_t size;  // of bytes: every packet must lie inside
  const uint32_t* offsets;
  const uint32_t* lengths;
  uint32_t count;
};

struct PacketOut {
  uint8_t* bytes;
  std::size_t capacity;
  uint32_t* offsets;
  uint32_t* lengths;
  uint32_t maxCount;
};

// One packet read from a vnetHdr fd (a virtio_net_hdr, then an IP packet), planned for
// segmentation: what it becomes and how much room that takes. Planning reads the headers only,
// so a caller can find room before writing anything (the reader thread segments straight into
// its ring).
struct SegmentPlan {
  // Invalid: a GSO type or header the kernel would not produce (skip it). Copy: a wire packet
  // as it is. Csum: a wire packet whose partial checksum is to be completed. Gso: a super-packet.
  enum class Kind { Invalid, Copy, Csum, Gso };
  Kind plan = Kind::Invalid;
  VnetHdr h;
  bool v6 = false;
  uint8_t proto = 0;
  std::size_t ipLen = 0;     // the IP packet after the vnet header
  std::size_t l4Off = 0;
  std::size_t hdrLen = 0;    // IP + L4 headers of every segment
  std::size_t payload = 0;
  uint32_t segments = 0;     // wire packets it becomes
  std::size_t outBytes = 0;  // their room, each started 4-byte aligned

  bool valid() const { return plan != Kind::Invalid; }
  // The length of wire packet i (i < segments).
  std::size_t SegmentLength(uint32_t i) const;
};

SegmentPlan PlanSegments(const uint8_t* pkt, std::size_t len, std::size_t vnetHdrLen);
// Writes the wire packets of a valid plan back to back at `out` (plan.outBytes of room; packet i
// starts at the sum of Align4(SegmentLength(j)) for j < i). `ip` is the packet after its vnet
// header, `ipLen` its length (plan.ipLen). `out` must not overlap `ip`.
void WriteSegments(const SegmentPlan& plan, const uint8_t* ip, std::size_t ipLen, uint8_t* out);

struct SegmentResult {
  uint32_t count = 0;       // packets written
  std::size_t bytes = 0;    // bytes written, or needed when it did not fit
  uint32_t needed = 0;      // packets needed
  uint32_t invalid = 0;     // input packets skipped as malformed
  bool fits = true;         // false: nothing written, `bytes`/`needed` say how much room it takes
};

// Splits each input packet (a `vnetHdrLen`-byte virtio_net_hdr, then an IP packet) into the wire
// packets it stands for, written back to back (4-byte aligned starts) without a vnet header:
// GSO TCP/UDP super-packets into gsoSize segments with their own IPv4 id / total length / header
// checksum or IPv6 payload length, TCP sequence numbers (FIN and PSH on the last only, CWR on the
// first only) or UDP length, and full L4 checksums; a non-GSO packet with NEEDS_CSUM gets its
// checksum completed; any other packet is copied. Malformed input packets are skipped and counted.
SegmentResult SegmentPackets(const PacketList& in, std::size_t vnetHdrLen, const PacketOut& out);

struct CoalesceResult {
  uint32_t count = 0;   // packets written (each with a vnet header)
  std::size_t bytes = 0;
  uint32_t merged = 0;  // input packets folded into an earlier one
};

// The room CoalescePackets may need: every packet on its own plus a header each, aligned.
std::size_t CoalesceCapacity(const PacketList& in, std::size_t vnetHdrLen);

// GRO: merges consecutive TCP segments of one flow (same addresses, ports and ACK number, IPv4
// without options or fragments, IPv6 without extension headers, equal TOS/TTL/DF or traffic
// class/hop limit, equal TCP options, only ACK or ACK|PSH set, in-sequence, equal segment sizes
// with at most a shorter last one, PSH only at the end, both checksums valid) into one GSO
// super-packet with a virtio_net_hdr; UDP datagrams of one flow likewise when `udp` (the kernel
// takes USO). Every output packet starts with a `vnetHdrLen`-byte header (all zero for one that
// was not merged); order follows each output's first input packet. `out` must hold
// CoalesceCapacity() bytes and `in.count` packets.
CoalesceResult CoalescePackets(const PacketList& in, std::size_t vnetHdrLen, bool udp, const PacketOut& out);

}  // namespace tunkeeper
