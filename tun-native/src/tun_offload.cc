#include "tun_offload.h"

#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tunkeeper {

namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the checksum and vnet header code assume a little-endian host");

constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpAck = 0x10;
constexpr uint8_t kTcpCwr = 0x80;
constexpr std::size_t kMaxIpPacket = 65535;

inline uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t Get32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
inline void Put16(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void Put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
inline uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
inline void PutLe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline std::size_t Align4(std::size_t n) { return (n + 3) & ~std::size_t(3); }

inline uint32_t Fold(uint64_t s) {
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return static_cast<uint32_t>(s);
}

// Ones' complement sum in host order (RFC 1071: it may be taken in any word size and byte
// order, folded and swapped at the end). Checksums are most of the CPU time of segmenting and
// coalescing a 64 KiB super-packet, so the bulk goes through SIMD: 32-bit words widened to 64-bit
// lanes and added exactly (no carries to chase); AVX2 where the CPU has it, SSE2 otherwise.
uint64_t SumTail(const uint8_t* p, std::size_t n, uint64_t acc) {
  auto add = [&acc](uint64_t w) {
    acc += w;
    acc += (acc < w);
  };
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    add(w);
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    add(w);
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    add(w);
    p += 2;
    n -= 2;
  }
  if (n) add(p[0]);  // the odd byte is the high byte of a big-endian word: the low one here
  return acc;
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t SumAvx2(const uint8_t* p, std::size_t n) {
  const __m256i zero = _mm256_setzero_si256();
  __m256i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
    __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32));
    a0 = _mm256_add_epi64(a0, _mm256_unpacklo_epi32(x, zero));
    a1 = _mm256_add_epi64(a1, _mm256_unpackhi_epi32(x, zero));
    a2 = _mm256_add_epi64(a2, _mm256_unpacklo_epi32(y, zero));
    a3 = _mm256_add_epi64(a3, _mm256_unpackhi_epi32(y, zero));
  }
  __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  // Leave no dirty upper halves behind: the SSE code that runs next (ours, libc's) would pay a
  // state-transition penalty on every instruction (it made the coalescing loop 5x slower).
  _mm256_zeroupper();
  // Each lane is below 2^33 per 64 bytes summed: no overflow for any packet.
  uint64_t acc = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  return SumTail(p + i, n - i, acc);
}

uint64_t SumSse2(const uint8_t* p, std::size_t n) {
  const __m128i zero = _mm_setzero_si128();
  __m128i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    __m128i y = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 16));
    a0 = _mm_add_epi64(a0, _mm_unpacklo_epi32(x, zero));
    a1 = _mm_add_epi64(a1, _mm_unpackhi_epi32(x, zero));
    a2 = _mm_add_epi64(a2, _mm_unpacklo_epi32(y, zero));
    a3 = _mm_add_epi64(a3, _mm_unpackhi_epi32(y, zero));
  }
  __m128i s = _mm_add_epi64(_mm_add_epi64(a0, a1), _mm_add_epi64(a2, a3));
  alignas(16) uint64_t lanes[2];
  _mm_store_si128(reinterpret_cast<__m128i*>(lanes), s);
  return SumTail(p + i, n - i, lanes[0] + lanes[1]);
}

const bool kHasAvx2 = __builtin_cpu_supports("avx2");

uint64_t SumHostOrder(const uint8_t* p, std::size_t n) { return kHasAvx2 ? SumAvx2(p, n) : SumSse2(p, n); }
#else
uint64_t SumHostOrder(const uint8_t* p, std::size_t n) { return SumTail(p, n, 0); }
#endif

struct Ip {
  const uint8_t* p;
  std::size_t len;
  bool v6;
};

// The full L4 checksum of a packet whose L4 header starts at l4Off (the checksum field zeroed
// by the caller). UDP's 0 means "none", so a computed 0 is sent as 0xffff.
uint16_t L4Checksum(const uint8_t* ip, bool v6, uint8_t proto, std::size_t l4Off, std::size_t total) {
  uint32_t l4Len = static_cast<uint32_t>(total - l4Off);
  uint16_t c = static_cast<uint16_t>(~ChecksumFold(ip + l4Off, l4Len, PseudoHeaderSum(ip, v6, proto, l4Len)));
  if (proto == kProtoUdp && c == 0) c = 0xffff;
  return c;
}

void SetIpv4HeaderChecksum(uint8_t* ip, std::size_t ihl) {
  ip[10] = ip[11] = 0;
  Put16(ip + 10, static_cast<uint16_t>(~ChecksumFold(ip, ihl, 0)));
}

// --- segmentation ---

using Plan = SegmentPlan::Kind;

// Writes the segments of one planned packet at out.bytes + *pos; returns how many.
uint32_t EmitSegments(const SegmentPlan& s, const uint8_t* ip, std::size_t ipLen, const PacketOut& out, std::size_t* pos, uint32_t index) {
  uint8_t* o = out.bytes + *pos;
  WriteSegments(s, ip, ipLen, o);
  for (uint32_t i = 0; i < s.segments; i++) {
    std::size_t len = s.SegmentLength(i);
    out.offsets[index + i] = static_cast<uint32_t>(*pos);
    out.lengths[index + i] = static_cast<uint32_t>(len);
    *pos += Align4(len);
  }
  return s.segments;
}

bool InBounds(const PacketList& in, uint32_t i) {
  return std::size_t(in.offsets[i]) + in.lengths[i] <= in.size;
}
// --- coalescing ---

enum class Kind : uint8_t { Plain, Tcp4, Tcp6, Udp4, Udp6 };

struct Candidate {
  Kind kind = Kind::Plain;
  std::size_t iphLen = 0;
  std::size_t l4hLen = 0;
  std::size_t payload = 0;
  uint32_t seq = 0;
  bool psh = false;
};

Candidate Classify(const uint8_t* ip, std::size_t len, bool udp) {
  Candidate c;
  if (len < 28 || len > kMaxIpPacket) return c;
  int version = ip[0] >> 4;
  uint8_t proto;
  if (version == 4) {
    // Options, fragments and inconsistent lengths are left alone, as the kernel's GRO does.
    if ((ip[0] & 0x0f) != 5 || Get16(ip + 2) != len) return c;
    if ((ip[6] & 0x20) || (Get16(ip + 6) & 0x1fff)) return c;
    c.iphLen = 20;
    proto = ip[9];
  } else if (version == 6) {
    if (len < 48 || Get16(ip + 4) != len - 40) return c;
    c.iphLen = 40;
    proto = ip[6];  // an extension header is not TCP or UDP: left alone
  } else {
    return c;
  }
  const uint8_t* l4 = ip + c.iphLen;
  if (proto == kProtoTcp) {
    if (len < c.iphLen + 20) return c;
    c.l4hLen = std::size_t(l4[12] >> 4) * 4;
    if (c.l4hLen < 20 || c.iphLen + c.l4hLen > len) return c;
    uint8_t flags = l4[13];
    if (flags != kTcpAck && flags != (kTcpAck | kTcpPsh)) return c;
    c.psh = flags & kTcpPsh;
    c.seq = Get32(l4 + 4);
    c.kind = version == 4 ? Kind::Tcp4 : Kind::Tcp6;
  } else if (proto == kProtoUdp && udp) {
    c.l4hLen = 8;
    if (Get16(l4 + 4) != len - c.iphLen) return c;
    if (version == 4 && Get16(l4 + 6) == 0) return c;  // no checksum to offload
    c.kind = version == 4 ? Kind::Udp4 : Kind::Udp6;
  } else {
    return c;
  }
  c.payload = len - c.iphLen - c.l4hLen;
  if (c.payload == 0) c.kind = Kind::Plain;
  return c;
}

bool IsTcp(Kind k) { return k == Kind::Tcp4 || k == Kind::Tcp6; }

struct Item {
  uint32_t head;  // input index of the first packet in sequence
  uint32_t tail;
  Kind kind;
  std::size_t iphLen, l4hLen;
  std::size_t gsoSize;  // payload of every packet but the last
  std::size_t payload;  // all of them
  uint32_t seq;         // the head's
  uint32_t merged;      // packets beyond the head
  bool psh;             // the tail's PSH
  bool verified;        // the head's checksum was checked (and found valid)
  bool closed;          // never merged into (bad checksum)
};

bool SameFlow(const uint8_t* a, const uint8_t* b, const Candidate& c) {
  bool v6 = c.kind == Kind::Tcp6 || c.kind == Kind::Udp6;
  std::size_t addrOff = v6 ? 8 : 12, addrLen = v6 ? 32 : 8;
  if (std::memcmp(a + addrOff, b + addrOff, addrLen) != 0) return false;
  if (std::memcmp(a + c.iphLen, b + c.iphLen, 4) != 0) return false;  // ports
  if (IsTcp(c.kind) && std::memcmp(a + c.iphLen + 8, b + c.iphLen + 8, 4) != 0) return false;  // ACK number
  return true;
}

bool IpHeadersMatch(const uint8_t* a, const uint8_t* b, bool v6) {
  if (v6) return std::memcmp(a, b, 4) == 0 && a[7] == b[7];  // version, class, flow label; hop limit
  return a[1] == b[1] && (a[6] >> 5) == (b[6] >> 5) && a[8] == b[8];  // TOS; DF and reserved; TTL
}

bool ChecksumValid(const uint8_t* ip, std::size_t len, const Candidate& c) {
  bool v6 = c.kind == Kind::Tcp6 || c.kind == Kind::Udp6;
  uint8_t proto = IsTcp(c.kind) ? kProtoTcp : kProtoUdp;
  uint32_t l4Len = static_cast<uint32_t>(len - c.iphLen);
  return ChecksumFold(ip + c.iphLen, l4Len, PseudoHeaderSum(ip, v6, proto, l4Len)) == 0xffff;
}

}  // namespace

VnetHdr ReadVnetHdr(const uint8_t* p) {
  VnetHdr h;
  h.flags = p[0];
  h.gsoType = p[1];
  h.hdrLen = Le16(p + 2);
  h.gsoSize = Le16(p + 4);
  h.csumStart = Le16(p + 6);
  h.csumOffset = Le16(p + 8);
  return h;
}

void WriteVnetHdr(uint8_t* p, const VnetHdr& h) {
  p[0] = h.flags;
  p[1] = h.gsoType;
  PutLe16(p + 2, h.hdrLen);
  PutLe16(p + 4, h.gsoSize);
  PutLe16(p + 6, h.csumStart);
  PutLe16(p + 8, h.csumOffset);
}

uint16_t ChecksumFold(const uint8_t* p, std::size_t len, uint32_t initial) {
  uint32_t host = Fold(SumHostOrder(p, len));
  uint32_t be = ((host & 0xff) << 8) | (host >> 8);
  return static_cast<uint16_t>(Fold(uint64_t(be) + initial));
}

uint32_t PseudoHeaderSum(const uint8_t* ip, bool v6, uint8_t proto, uint32_t l4Len) {
  uint32_t s = proto + (l4Len >> 16) + (l4Len & 0xffff);
  const uint8_t* a = ip + (v6 ? 8 : 12);
  std::size_t n = v6 ? 32 : 8;
  for (std::size_t i = 0; i < n; i += 2) s += Get16(a + i);
  return s;
}

std::size_t SegmentPlan::SegmentLength(uint32_t i) const {
  if (plan != Kind::Gso) return ipLen;
  return hdrLen + (i + 1 < segments ? std::size_t(h.gsoSize) : payload - std::size_t(i) * h.gsoSize);
}

SegmentPlan PlanSegments(const uint8_t* pkt, std::size_t len, std::size_t vlen) {
  SegmentPlan s;
  if (len < vlen + 1) return s;
  s.h = ReadVnetHdr(pkt);
  const uint8_t* ip = pkt + vlen;
  std::size_t ipLen = len - vlen;
  s.ipLen = ipLen;
  uint8_t type = s.h.gsoType & ~kVnetGsoEcn;
  if (type == kVnetGsoNone) {
    if (!(s.h.flags & kVnetFlagNeedsCsum)) {
      s.plan = Plan::Copy;
    } else {
      if (s.h.csumStart >= ipLen || std::size_t(s.h.csumStart) + s.h.csumOffset + 2 > ipLen || (s.h.csumStart & 1)) return s;
      s.plan = Plan::Csum;
    }
    s.segments = 1;
    s.outBytes = Align4(ipLen);
    return s;
  }
  if (!(s.h.flags & kVnetFlagNeedsCsum) || s.h.gsoSize == 0) return s;
  int version = ip[0] >> 4;
  if (type == kVnetGsoTcpV4 && version != 4) return s;
  if (type == kVnetGsoTcpV6 && version != 6) return s;
  if (type != kVnetGsoTcpV4 && type != kVnetGsoTcpV6 && type != kVnetGsoUdpL4) return s;  // UFO and the unknown
  if (version != 4 && version != 6) return s;
  s.v6 = version == 6;
  s.proto = type == kVnetGsoUdpL4 ? kProtoUdp : kProtoTcp;
  std::size_t ipHdr = 40;
  if (!s.v6) {
    ipHdr = std::size_t(ip[0] & 0x0f) * 4;
    if (ipHdr < 20 || ipLen < ipHdr || ip[9] != s.proto) return s;
  } else if (ipLen < 40) {
    return s;
  }
  s.l4Off = s.h.csumStart;
  if (s.l4Off < ipHdr || s.l4Off & 1) return s;
  if (s.v6 && s.l4Off == 40 && ip[6] != s.proto) return s;
  if (s.proto == kProtoTcp) {
    if (s.h.csumOffset != 16 || s.l4Off + 20 > ipLen) return s;
    std::size_t thl = std::size_t(ip[s.l4Off + 12] >> 4) * 4;
    if (thl < 20 || s.l4Off + thl > ipLen) return s;
    // The kernel's hdr_len is only a hint (skb_headlen); the headers are what csum_start and the
    // TCP data offset say.
    s.hdrLen = s.l4Off + thl;
  } else {
    if (s.h.csumOffset != 6 || s.l4Off + 8 > ipLen) return s;
    s.hdrLen = s.l4Off + 8;
  }
  s.payload = ipLen - s.hdrLen;
  if (s.payload == 0) return s;
  if (s.hdrLen + s.h.gsoSize > kMaxIpPacket) return s;
  s.segments = static_cast<uint32_t>((s.payload + s.h.gsoSize - 1) / s.h.gsoSize);
  std::size_t full = s.segments - 1;
  std::size_t last = s.payload - full * s.h.gsoSize;
  s.outBytes = full * Align4(s.hdrLen + s.h.gsoSize) + Align4(s.hdrLen + last);
  s.plan = Plan::Gso;
  return s;
}


void WriteSegments(const SegmentPlan& s, const uint8_t* ip, std::size_t ipLen, uint8_t* out) {
  if (s.plan == Plan::Copy || s.plan == Plan::Csum) {
    uint8_t* o = out;
    std::memcpy(o, ip, ipLen);
    if (s.plan == Plan::Csum) {
      // The field holds the pseudo-header sum (CHECKSUM_PARTIAL): summing from csum_start over
      // it and inverting completes the checksum.
      uint8_t* field = o + s.h.csumStart + s.h.csumOffset;
      uint16_t c = static_cast<uint16_t>(~ChecksumFold(o + s.h.csumStart, ipLen - s.h.csumStart, 0));
      bool udp = s.h.csumOffset == 6 && (((o[0] >> 4) == 4 && o[9] == kProtoUdp) || ((o[0] >> 4) == 6 && o[6] == kProtoUdp));
      if (udp && c == 0) c = 0xffff;
      Put16(field, c);
    }
    return;
  }
  const std::size_t gso = s.h.gsoSize;
  const std::size_t ihl = s.v6 ? 0 : std::size_t(ip[0] & 0x0f) * 4;
  const uint16_t id0 = s.v6 ? 0 : Get16(ip + 4);
  const uint32_t seq0 = s.proto == kProtoTcp ? Get32(ip + s.l4Off + 4) : 0;
  std::size_t pos = 0;
  for (uint32_t i = 0; i < s.segments; i++) {
    std::size_t total = s.SegmentLength(i);
    std::size_t segPayload = total - s.hdrLen;
    uint8_t* o = out + pos;
    std::memcpy(o, ip, s.hdrLen);
    std::memcpy(o + s.hdrLen, ip + s.hdrLen + std::size_t(i) * gso, segPayload);
    if (!s.v6) {
      Put16(o + 2, static_cast<uint32_t>(total));
      Put16(o + 4, static_cast<uint16_t>(id0 + i));
      SetIpv4HeaderChecksum(o, ihl);
    } else {
      Put16(o + 4, static_cast<uint32_t>(total - 40));
    }
    uint8_t* l4 = o + s.l4Off;
    if (s.proto == kProtoTcp) {
      Put32(l4 + 4, seq0 + static_cast<uint32_t>(i * gso));
      uint8_t flags = l4[13];
      if (i + 1 < s.segments) flags &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
      if (i > 0) flags &= static_cast<uint8_t>(~kTcpCwr);
      l4[13] = flags;
      l4[16] = l4[17] = 0;
      Put16(l4 + 16, L4Checksum(o, s.v6, kProtoTcp, s.l4Off, total));
    } else {
      Put16(l4 + 4, static_cast<uint32_t>(total - s.l4Off));
      l4[6] = l4[7] = 0;
      Put16(l4 + 6, L4Checksum(o, s.v6, kProtoUdp, s.l4Off, total));
    }
    pos += Align4(total);
  }
}

SegmentResult SegmentPackets(const PacketList& in, std::size_t vlen, const PacketOut& out) {
  SegmentResult r;
  std::size_t bytes = 0;
  uint32_t needed = 0;
  for (uint32_t i = 0; i < in.count; i++) {
    if (!InBounds(in, i)) continue;
    SegmentPlan s = PlanSegments(in.bytes + in.offsets[i], in.lengths[i], vlen);
    if (s.plan == Plan::Invalid) continue;
    bytes += s.outBytes;
    needed += s.segments;
  }
  if (bytes > out.capacity || needed > out.maxCount) {
    r.fits = false;
    r.bytes = bytes;
    r.needed = needed;
    return r;
  }
  std::size_t pos = 0;
  for (uint32_t i = 0; i < in.count; i++) {
    if (!InBounds(in, i)) {
      r.invalid++;
      continue;
    }
    const uint8_t* pkt = in.bytes + in.offsets[i];
    SegmentPlan s = PlanSegments(pkt, in.lengths[i], vlen);
    if (s.plan == Plan::Invalid) {
      r.invalid++;
      continue;
    }
    r.count += EmitSegments(s, pkt + vlen, in.lengths[i] - vlen, out, &pos, r.count);
  }
  r.bytes = pos;
  r.needed = r.count;
  return r;
}

std::size_t CoalesceCapacity(const PacketList& in, std::size_t vlen) {
  std::size_t n = 0;
  for (uint32_t i = 0; i < in.count; i++) n += Align4(vlen + in.lengths[i]);
  return n;
}

CoalesceResult CoalescePackets(const PacketList& in, std::size_t vlen, bool udp, const PacketOut& out) {
  CoalesceResult r;
  // The JS thread's scratch, reused across calls: no allocation per batch once warm.
  thread_local std::vector<Item> items;
  thread_local std::vector<uint32_t> next;
  thread_local std::vector<Candidate> cand;
  items.clear();
  next.assign(in.count, UINT32_MAX);
  cand.resize(in.count);

  for (uint32_t i = 0; i < in.count; i++) {
    const uint8_t* ip = in.bytes + in.offsets[i];
    std::size_t len = in.lengths[i];
    Candidate c = InBounds(in, i) ? Classify(ip, len, udp) : Candidate{};
    cand[i] = c;
    bool checkedPkt = false, pktValid = true;
    if (c.kind != Kind::Plain) {
      // Newest items first: a flow's latest run is where the next segment belongs.
      for (std::size_t k = items.size(); k-- > 0;) {
        Item& it = items[k];
        if (it.kind != c.kind) continue;
        const uint8_t* headIp = in.bytes + in.offsets[it.head];
        if (!SameFlow(headIp, ip, c)) continue;
        bool tcp = IsTcp(c.kind);
        bool fits = !it.closed && it.l4hLen == c.l4hLen && IpHeadersMatch(headIp, ip, c.kind == Kind::Tcp6 || c.kind == Kind::Udp6) &&
                    it.iphLen + it.l4hLen + it.payload + c.payload <= kMaxIpPacket;
        if (fits && tcp && c.l4hLen > 20)
          fits = std::memcmp(headIp + it.iphLen + 20, ip + c.iphLen + 20, c.l4hLen - 20) == 0;  // options
        bool append = false, prepend = false;
        if (fits) {
          bool lastWasFull = it.payload % it.gsoSize == 0;
          if (!tcp) {
            append = lastWasFull && c.payload <= it.gsoSize;
          } else if (c.seq == it.seq + static_cast<uint32_t>(it.payload)) {
            append = !it.psh && lastWasFull && c.payload <= it.gsoSize;
          } else if (c.seq + static_cast<uint32_t>(c.payload) == it.seq) {
            prepend = !c.psh && c.payload >= it.gsoSize && (c.payload == it.gsoSize || it.merged == 0);
          }
        }
        if (append || prepend) {
          // Merged packets go to the kernel with CHECKSUM_PARTIAL, which it trusts: a corrupted
          // segment must not be folded in (nor into), or its damage would go unnoticed.
          if (!it.verified) {
            const Candidate& hc = cand[it.head];
            if (!ChecksumValid(headIp, in.lengths[it.head], hc)) {
              it.closed = true;
              append = prepend = false;
            }
            it.verified = true;
          }
          if (append || prepend) {
            if (!checkedPkt) {
              pktValid = ChecksumValid(ip, len, c);
              checkedPkt = true;
            }
            if (!pktValid) break;
          }
        }
        if (append) {
          next[it.tail] = i;
          it.tail = i;
          it.payload += c.payload;
          it.merged++;
          it.psh = c.psh;
          r.merged++;
          goto placed;
        }
        if (prepend) {
          next[i] = it.head;
          it.head = i;
          it.seq = c.seq;
          it.gsoSize = c.payload;
          it.payload += c.payload;
          it.merged++;
          r.merged++;
          goto placed;
        }
        if (!tcp) break;  // UDP: only the flow's latest run, or datagrams would be reordered
      }
    }
    items.push_back(Item{i, i, c.kind, c.iphLen, c.l4hLen, c.payload ? c.payload : 1, c.payload, c.seq, 0, c.psh, checkedPkt && pktValid,
                         c.kind == Kind::Plain || (checkedPkt && !pktValid)});
  placed:;
  }

  std::size_t pos = 0;
  for (const Item& it : items) {
    uint8_t* o = out.bytes + pos;
    std::memset(o, 0, vlen);
    uint8_t* ip = o + vlen;
    const uint8_t* headIp = in.bytes + in.offsets[it.head];
    std::size_t total;
    if (it.merged == 0) {
      total = in.lengths[it.head];
      std::memcpy(ip, headIp, total);
    } else {
      std::size_t hdr = it.iphLen + it.l4hLen;
      std::memcpy(ip, headIp, hdr);
      std::size_t at = hdr;
      for (uint32_t m = it.head; m != UINT32_MAX; m = next[m]) {
        std::size_t n = in.lengths[m] - hdr;
        std::memcpy(ip + at, in.bytes + in.offsets[m] + hdr, n);
        at += n;
      }
      total = at;
      bool v6 = it.kind == Kind::Tcp6 || it.kind == Kind::Udp6;
      bool tcp = IsTcp(it.kind);
      if (!v6) {
        Put16(ip + 2, static_cast<uint32_t>(total));
        SetIpv4HeaderChecksum(ip, it.iphLen);
      } else {
        Put16(ip + 4, static_cast<uint32_t>(total - 40));
      }
      uint8_t* l4 = ip + it.iphLen;
      uint32_t l4Len = static_cast<uint32_t>(total - it.iphLen);
      // CHECKSUM_PARTIAL: the field carries the pseudo-header sum; the kernel (or whoever
      // segments the packet) completes it over the data.
      uint16_t partial = static_cast<uint16_t>(Fold(PseudoHeaderSum(ip, v6, tcp ? kProtoTcp : kProtoUdp, l4Len)));
      if (tcp) {
        if (it.psh) l4[13] |= kTcpPsh;
        Put16(l4 + 16, partial);
      } else {
        Put16(l4 + 4, l4Len);
        Put16(l4 + 6, partial);
      }
      VnetHdr h;
      h.flags = kVnetFlagNeedsCsum;
      h.gsoType = tcp ? (v6 ? kVnetGsoTcpV6 : kVnetGsoTcpV4) : kVnetGsoUdpL4;
      h.hdrLen = static_cast<uint16_t>(hdr);
      h.gsoSize = static_cast<uint16_t>(it.gsoSize);
      h.csumStart = static_cast<uint16_t>(it.iphLen);
      h.csumOffset = tcp ? 16 : 6;
      WriteVnetHdr(o, h);
    }
    out.offsets[r.count] = static_cast<uint32_t>(pos);
    out.lengths[r.count] = static_cast<uint32_t>(vlen + total);
    r.count++;
    pos += Align4(vlen + total);
  }
  r.bytes = pos;
  return r;
}

}  // namespace tunkeeper
