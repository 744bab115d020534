/**
 * segment() and coalesce() on packets built here from the RFCs, every result checked with an
 * independent checksum (test/helpers/packets.ts, RFC 1071 in TypeScript): lengths, IPv4 ids and
 * header checksums, IPv6 payload lengths, TCP sequence numbers and flags, UDP lengths, full L4
 * checksums with the pseudo-header, partial checksums completed, and the GRO rules (what merges,
 * what must not). The kernel's side of the same code is in offload-stream/offload-kernel tests.
 */
import { describe, expect, it } from '@jest/globals';
import { coalesce, PacketArena, type PacketList, readVnetHeader, segment, VNET_HDR_LEN } from '../../tun-native/index.js';
import { checksum, ipv4Bytes, ipv6Bytes, onesSum } from '../helpers/packets.js';

const TCP = 6;
const UDP = 17;
const FIN = 0x01;
const SYN = 0x02;
const PSH = 0x08;
const ACK = 0x10;
const ECE = 0x40;
const CWR = 0x80;

interface Flow {
  v6?: boolean;
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
}

interface TcpSpec extends Flow {
  seq: number;
  ack?: number;
  flags?: number;
  payload: Buffer;
  options?: Buffer;
  ttl?: number;
  id?: number;
  ipOptions?: Buffer;
}

function addrs(f: Flow): [Buffer, Buffer] {
  return f.v6 ? [ipv6Bytes(f.src ?? '2001:db8::1'), ipv6Bytes(f.dst ?? '2001:db8::2')] : [ipv4Bytes(f.src ?? '192.0.2.1'), ipv4Bytes(f.dst ?? '198.51.100.1')];
}

function pseudoSum(f: Flow, proto: number, l4Len: number): number {
  const [s, d] = addrs(f);
  const tail = f.v6 ? Buffer.from([0, 0, l4Len >> 8, l4Len & 0xff, 0, 0, 0, proto]) : Buffer.from([0, proto, l4Len >> 8, l4Len & 0xff]);
  return onesSum(Buffer.concat([s, d, tail]));
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

function ipHeader(f: Flow, proto: number, l4Len: number, ttl = 64, id = 0, ipOptions?: Buffer): Buffer {
  const [s, d] = addrs(f);
  if (f.v6) {
    const h = Buffer.alloc(40);
    h.writeUInt32BE(0x60000000, 0);
    h.writeUInt16BE(l4Len, 4);
    h[6] = proto;
    h[7] = ttl;
    s.copy(h, 8);
    d.copy(h, 24);
    return h;
  }
  const ihl = 20 + (ipOptions?.length ?? 0);
  const h = Buffer.alloc(ihl);
  h[0] = 0x40 | (ihl / 4);
  h.writeUInt16BE(ihl + l4Len, 2);
  h.writeUInt16BE(id, 4);
  h.writeUInt16BE(0x4000, 6);
  h[8] = ttl;
  h[9] = proto;
  s.copy(h, 12);
  d.copy(h, 16);
  ipOptions?.copy(h, 20);
  h.writeUInt16BE(checksum(h), 10);
  return h;
}

/** A TCP packet with both checksums right (`partial`: the TCP checksum left as the pseudo-header sum). */
function tcpPacket(t: TcpSpec, partial = false): Buffer {
  const options = t.options ?? Buffer.alloc(0);
  const tcp = Buffer.alloc(20 + options.length + t.payload.length);
  tcp.writeUInt16BE(t.sport ?? 40000, 0);
  tcp.writeUInt16BE(t.dport ?? 5201, 2);
  tcp.writeUInt32BE(t.seq >>> 0, 4);
  tcp.writeUInt32BE(t.ack ?? 1000, 8);
  tcp[12] = ((20 + options.length) / 4) << 4;
  tcp[13] = t.flags ?? ACK;
  tcp.writeUInt16BE(65535, 14);
  options.copy(tcp, 20);
  t.payload.copy(tcp, 20 + options.length);
  const ps = pseudoSum(t, TCP, tcp.length);
  tcp.writeUInt16BE(partial ? fold(ps) : checksum(tcp, ps), 16);
  return Buffer.concat([ipHeader(t, TCP, tcp.length, t.ttl, t.id, t.ipOptions), tcp]);
}

function udpPacket(f: Flow & { payload: Buffer; id?: number }, partial = false): Buffer {
  const udp = Buffer.alloc(8 + f.payload.length);
  udp.writeUInt16BE(f.sport ?? 40000, 0);
  udp.writeUInt16BE(f.dport ?? 5300, 2);
  udp.writeUInt16BE(udp.length, 4);
  f.payload.copy(udp, 8);
  const ps = pseudoSum(f, UDP, udp.length);
  const c = checksum(udp, ps);
  udp.writeUInt16BE(partial ? fold(ps) : c === 0 ? 0xffff : c, 6);
  return Buffer.concat([ipHeader(f, UDP, udp.length, 64, f.id ?? 0), udp]);
}

function vnet(h: { flags?: number; gsoType?: number; hdrLen?: number; gsoSize?: number; csumStart?: number; csumOffset?: number }): Buffer {
  const b = Buffer.alloc(VNET_HDR_LEN);
  b[0] = h.flags ?? 0;
  b[1] = h.gsoType ?? 0;
  b.writeUInt16LE(h.hdrLen ?? 0, 2);
  b.writeUInt16LE(h.gsoSize ?? 0, 4);
  b.writeUInt16LE(h.csumStart ?? 0, 6);
  b.writeUInt16LE(h.csumOffset ?? 0, 8);
  return b;
}

/** A GSO super-packet as the kernel hands it over: virtio-net header, headers, all the payload, partial checksum. */
function tcpSuper(t: TcpSpec, gsoSize: number, ecn = false): Buffer {
  const ip = tcpPacket(t, true);
  const ipLen = t.v6 ? 40 : 20 + (t.ipOptions?.length ?? 0);
  const type = (t.v6 ? 4 : 1) | (ecn ? 0x80 : 0);
  // hdrLen deliberately the kernel's unreliable hint (skb_headlen), not the header size.
  return Buffer.concat([vnet({ flags: 1, gsoType: type, hdrLen: 128, gsoSize, csumStart: ipLen, csumOffset: 16 }), ip]);
}

function listOf(...packets: Buffer[]): PacketList {
  const offsets = new Uint32Array(packets.length);
  const lengths = new Uint32Array(packets.length);
  let at = 0;
  for (const [i, p] of packets.entries()) {
    offsets[i] = at;
    lengths[i] = p.length;
    at += p.length + 3; // deliberately unaligned gaps: offsets need not be multiples of 4
  }
  const buffer = Buffer.alloc(at);
  for (const [i, p] of packets.entries()) p.copy(buffer, offsets[i]);
  return { buffer, offsets, lengths, count: packets.length };
}

interface Parsed {
  v6: boolean;
  ipHdrOk: boolean;
  l4Ok: boolean;
  totalLenOk: boolean;
  id: number;
  ttl: number;
  l4: Buffer;
  payload: Buffer;
  seq: number;
  flags: number;
}

/** Parses and checks a wire packet (no vnet header) independently of the code under test. */
function parse(p: Buffer): Parsed {
  const v6 = p[0]! >> 4 === 6;
  const ipLen = v6 ? 40 : (p[0]! & 0x0f) * 4;
  const proto = v6 ? p[6]! : p[9]!;
  const l4 = p.subarray(ipLen);
  const src = v6 ? p.subarray(8, 24) : p.subarray(12, 16);
  const dst = v6 ? p.subarray(24, 40) : p.subarray(16, 20);
  const tail = v6 ? Buffer.from([0, 0, l4.length >> 8, l4.length & 0xff, 0, 0, 0, proto]) : Buffer.from([0, proto, l4.length >> 8, l4.length & 0xff]);
  const ps = onesSum(Buffer.concat([src, dst, tail]));
  const hdr = proto === TCP ? (l4[12]! >> 4) * 4 : 8;
  return {
    v6,
    ipHdrOk: v6 || checksum(p.subarray(0, ipLen)) === 0,
    l4Ok: checksum(l4, ps) === 0 && (proto !== UDP || (l4.readUInt16BE(4) === l4.length && l4.readUInt16BE(6) !== 0)),
    totalLenOk: v6 ? p.readUInt16BE(4) === p.length - 40 : p.readUInt16BE(2) === p.length,
    id: v6 ? 0 : p.readUInt16BE(4),
    ttl: v6 ? p[7]! : p[8]!,
    l4,
    payload: l4.subarray(hdr),
    seq: proto === TCP ? l4.readUInt32BE(4) : 0,
    flags: proto === TCP ? l4[13]! : 0,
  };
}

const bytes = (n: number, salt = 0): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + salt * 7 + (i >> 8)) & 0xff));
const TIMESTAMPS = Buffer.from([1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78]);

describe('segment(): GSO super-packets into wire packets', () => {
  it('splits an IPv4 TCP super-packet with options: lengths, ids, header checksums, sequence numbers, FIN/PSH on the last only, full checksums', () => {
    const payload = bytes(5000);
    const input = tcpSuper({ seq: 0xfffff000, payload, options: TIMESTAMPS, flags: ACK | PSH | FIN, id: 0xfffe }, 1448);
    const stats = { invalid: -1 };
    const out = segment(listOf(input), new PacketArena(64, 1), stats);
    expect(stats.invalid).toBe(0);
    expect(out.count).toBe(4);
    const segs = Array.from({ length: out.count }, (_, i) => parse(out.packet(i)));
    expect(segs.map((s) => s.payload.length)).toEqual([1448, 1448, 1448, 656]);
    expect(Buffer.concat(segs.map((s) => s.payload)).equals(payload)).toBe(true);
    for (const [i, s] of segs.entries()) {
      expect(s).toMatchObject({ ipHdrOk: true, l4Ok: true, totalLenOk: true });
      expect(s.id).toBe((0xfffe + i) & 0xffff); // wraps
      expect(s.seq).toBe((0xfffff000 + i * 1448) >>> 0); // wraps
      expect(s.flags).toBe(i === 3 ? ACK | PSH | FIN : ACK);
      expect(s.l4.subarray(20, 32).equals(TIMESTAMPS)).toBe(true);
    }
    for (let i = 0; i < out.count; i++) expect(out.offsets[i]! % 4).toBe(0);
  });

  it('splits an IPv6 TCP super-packet whose payload is an exact multiple of gsoSize', () => {
    const payload = bytes(3 * 1000, 1);
    const out = segment(listOf(tcpSuper({ v6: true, seq: 7, payload, flags: ACK | PSH }, 1000)));
    expect(out.count).toBe(3);
    const segs = Array.from({ length: 3 }, (_, i) => parse(out.packet(i)));
    for (const [i, s] of segs.entries()) {
      expect(s).toMatchObject({ v6: true, l4Ok: true, totalLenOk: true, seq: 7 + i * 1000, flags: i === 2 ? ACK | PSH : ACK });
      expect(s.payload.length).toBe(1000);
    }
  });

  it('keeps CWR on the first segment only of an ECN super-packet, ECE on all', () => {
    const out = segment(listOf(tcpSuper({ seq: 1, payload: bytes(2500, 2), flags: ACK | CWR | ECE }, 1000, true)));
    expect(out.count).toBe(3);
    expect(Array.from({ length: 3 }, (_, i) => parse(out.packet(i)).flags)).toEqual([ACK | CWR | ECE, ACK | ECE, ACK | ECE]);
    for (let i = 0; i < 3; i++) expect(parse(out.packet(i)).l4Ok).toBe(true);
  });

  it('splits IPv4 and IPv6 UDP super-packets (UDP_L4): lengths and checksums per datagram, a short last one', () => {
    for (const v6 of [false, true]) {
      const payload = bytes(2 * 1200 + 17, 3);
      const ip = udpPacket({ v6, payload, id: 9 }, true);
      const input = Buffer.concat([vnet({ flags: 1, gsoType: 5, hdrLen: 0, gsoSize: 1200, csumStart: v6 ? 40 : 20, csumOffset: 6 }), ip]);
      const out = segment(listOf(input));
      expect(out.count).toBe(3);
      const segs = Array.from({ length: 3 }, (_, i) => parse(out.packet(i)));
      expect(segs.map((s) => s.payload.length)).toEqual([1200, 1200, 17]);
      expect(Buffer.concat(segs.map((s) => s.payload)).equals(payload)).toBe(true);
      for (const [i, s] of segs.entries()) {
        expect(s).toMatchObject({ ipHdrOk: true, l4Ok: true, totalLenOk: true });
        if (!v6) expect(s.id).toBe(9 + i);
      }
    }
  });

  it('completes a partial checksum (needsCsum without GSO) for UDP and TCP, and copies other packets as they are', () => {
    const udp = udpPacket({ payload: bytes(333, 4) }, true);
    const tcp = tcpPacket({ v6: true, seq: 5, payload: bytes(77, 5) }, true);
    const plain = udpPacket({ payload: bytes(20, 6) });
    const out = segment(
      listOf(
        Buffer.concat([vnet({ flags: 1, csumStart: 20, csumOffset: 6 }), udp]),
        Buffer.concat([vnet({ flags: 1, csumStart: 40, csumOffset: 16 }), tcp]),
        Buffer.concat([vnet({}), plain]),
      ),
    );
    expect(out.count).toBe(3);
    expect(parse(out.packet(0))).toMatchObject({ l4Ok: true, ipHdrOk: true });
    expect(parse(out.packet(1))).toMatchObject({ l4Ok: true });
    expect(out.packet(2).equals(plain)).toBe(true);
    expect(parse(udp).l4Ok).toBe(false); // the input really was partial
  });

  it('skips malformed packets and counts them: zero gsoSize, a GSO type of the other IP version, UFO, truncated headers, no needsCsum', () => {
    const good = tcpSuper({ seq: 1, payload: bytes(100) }, 50);
    const v4 = tcpPacket({ seq: 1, payload: bytes(100) }, true);
    const bad = [
      Buffer.concat([vnet({ flags: 1, gsoType: 1, gsoSize: 0, csumStart: 20, csumOffset: 16 }), v4]),
      Buffer.concat([vnet({ flags: 1, gsoType: 4, gsoSize: 50, csumStart: 20, csumOffset: 16 }), v4]),
      Buffer.concat([vnet({ flags: 1, gsoType: 3, gsoSize: 50, csumStart: 20, csumOffset: 6 }), udpPacket({ payload: bytes(100) }, true)]),
      Buffer.concat([vnet({ flags: 1, gsoType: 1, gsoSize: 50, csumStart: 20, csumOffset: 16 }), v4.subarray(0, 30)]),
      Buffer.concat([vnet({ flags: 0, gsoType: 1, gsoSize: 50, csumStart: 20, csumOffset: 16 }), v4]),
      vnet({}).subarray(0, 5),
    ];
    const stats = { invalid: 0 };
    const out = segment(listOf(good, ...bad), undefined, stats);
    expect(stats.invalid).toBe(bad.length);
    expect(out.count).toBe(2);
    expect(Array.from({ length: 2 }, (_, i) => parse(out.packet(i)).l4Ok)).toEqual([true, true]);
  });

  it('grows its arena when the segments do not fit, and refuses what is not a packet list', () => {
    const arena = new PacketArena(16, 1);
    const out = segment(listOf(tcpSuper({ seq: 1, payload: bytes(60000) }, 536)), arena);
    expect(out).toBe(arena);
    expect(out.count).toBe(Math.ceil(60000 / 536));
    expect(parse(out.packet(out.count - 1)).l4Ok).toBe(true);
    expect(() => segment({} as PacketList)).toThrow(/packet list/);
  });
});

/** A stream's consecutive segments of one flow, checksums right. */
function stream(n: number, opts: Partial<TcpSpec> & { size?: number; start?: number } = {}): Buffer[] {
  const size = opts.size ?? 1000;
  return Array.from({ length: n }, (_, i) => tcpPacket({ seq: (opts.start ?? 100) + i * size, payload: bytes(size, i), id: i, ...opts }));
  // (IPv4 ids count up, as a sender's do: segmenting a merged packet counts them up again.)
}

function outputs(out: PacketArena): { hdr: ReturnType<typeof readVnetHeader>; ip: Buffer }[] {
  return Array.from({ length: out.count }, (_, i) => {
    const p = out.packet(i);
    return { hdr: readVnetHeader(p), ip: p.subarray(VNET_HDR_LEN) };
  });
}

describe('coalesce(): wire packets into super-packets (GRO)', () => {
  it('merges a TCP stream into one super-packet whose segmentation gives the stream back', () => {
    for (const v6 of [false, true]) {
      const segs = stream(5, { v6, options: TIMESTAMPS, flags: ACK });
      segs.push(tcpPacket({ v6, seq: 100 + 5 * 1000, payload: bytes(300, 9), options: TIMESTAMPS, flags: ACK | PSH, id: 5 }));
      const stats = { merged: 0 };
      const out = coalesce(listOf(...segs), {}, undefined, stats);
      expect(stats.merged).toBe(5);
      const [only] = outputs(out);
      expect(out.count).toBe(1);
      expect(only?.hdr).toMatchObject({ needsCsum: true, gsoType: v6 ? 'tcp6' : 'tcp4', gsoSize: 1000, csumStart: v6 ? 40 : 20, csumOffset: 16, hdrLen: (v6 ? 40 : 20) + 32 });
      const ip = only!.ip;
      expect(parse(ip)).toMatchObject({ ipHdrOk: true, totalLenOk: true, flags: ACK | PSH });
      // The TCP checksum is left partial: completing it over the whole segment verifies.
      const l4 = Buffer.from(ip.subarray(v6 ? 40 : 20));
      l4.writeUInt16BE(0, 16);
      const ps = pseudoSum({ v6 }, TCP, l4.length);
      expect(ip.readUInt16BE((v6 ? 40 : 20) + 16)).toBe(fold(ps));
      const again = segment(out);
      expect(again.count).toBe(6);
      for (let i = 0; i < 6; i++) expect(again.packet(i).equals(segs[i]!)).toBe(true);
    }
  });

  it('keeps flows apart and in order, and leaves non-candidates (SYN, FIN, no payload, IP options, non-TCP) alone with an empty header', () => {
    const a = stream(3, { sport: 1111 });
    const b = stream(3, { sport: 2222, start: 900000 });
    const syn = tcpPacket({ seq: 1, flags: SYN, payload: Buffer.alloc(0) });
    const fin = tcpPacket({ seq: 100 + 3000, flags: ACK | FIN, payload: bytes(10) });
    const pureAck = tcpPacket({ seq: 5, payload: Buffer.alloc(0) });
    const withIpOptions = tcpPacket({ seq: 5, payload: bytes(100), ipOptions: Buffer.from([1, 1, 1, 0]), sport: 3333 });
    const udp = udpPacket({ payload: bytes(50) });
    const out = coalesce(listOf(a[0]!, b[0]!, syn, a[1]!, b[1]!, pureAck, a[2]!, b[2]!, fin, withIpOptions, udp));
    const got = outputs(out);
    expect(got.map((g) => g.hdr.gsoType)).toEqual(['tcp4', 'tcp4', 'none', 'none', 'none', 'none', 'none']);
    expect(parse(got[0]!.ip).l4.readUInt16BE(0)).toBe(1111);
    expect(parse(got[1]!.ip).l4.readUInt16BE(0)).toBe(2222);
    expect(got[0]!.ip.length).toBe(20 + 20 + 3000);
    expect([got[2]!.ip, got[3]!.ip, got[4]!.ip, got[5]!.ip, got[6]!.ip]).toEqual([syn, pureAck, fin, withIpOptions, udp]);
    for (const g of got.slice(2)) expect(g.hdr).toMatchObject({ needsCsum: false, gsoSize: 0 });
  });

  it('does not merge across a sequence gap, a PSH, a short segment, a different TTL, ACK number or TCP options', () => {
    const cases: [string, Buffer[]][] = [
      ['gap', [tcpPacket({ seq: 100, payload: bytes(1000) }), tcpPacket({ seq: 1200, payload: bytes(1000) })]],
      ['psh first', [tcpPacket({ seq: 100, payload: bytes(1000), flags: ACK | PSH }), tcpPacket({ seq: 1100, payload: bytes(1000) })]],
      ['larger after smaller', [tcpPacket({ seq: 100, payload: bytes(500) }), tcpPacket({ seq: 600, payload: bytes(700) })]],
      ['ttl', [tcpPacket({ seq: 100, payload: bytes(1000) }), tcpPacket({ seq: 1100, payload: bytes(1000), ttl: 63 })]],
      ['ack', [tcpPacket({ seq: 100, payload: bytes(1000) }), tcpPacket({ seq: 1100, payload: bytes(1000), ack: 2000 })]],
      ['options', [tcpPacket({ seq: 100, payload: bytes(1000), options: TIMESTAMPS }), tcpPacket({ seq: 1100, payload: bytes(1000), options: Buffer.from([1, 1, 8, 10, 0, 0, 0x12, 0x35, 0, 0, 0x56, 0x78]) })]],
    ];
    for (const [what, packets] of cases) {
      const stats = { merged: -1 };
      const out = coalesce(listOf(...packets), {}, undefined, stats);
      expect([what, stats.merged, out.count]).toEqual([what, 0, packets.length]);
      for (let i = 0; i < out.count; i++) expect(out.packet(i).subarray(VNET_HDR_LEN).equals(packets[i]!)).toBe(true);
    }
  });

  it('merges a shorter last segment, and a segment that arrives before its predecessor (prepend)', () => {
    const [s1, s2, s3] = stream(3);
    const short = tcpPacket({ seq: 100 + 3000, payload: bytes(10, 3), id: 3 });
    const out = coalesce(listOf(s2!, s1!, s3!, short));
    expect(out.count).toBe(1);
    const again = segment(out);
    expect(again.count).toBe(4);
    expect([0, 1, 2, 3].map((i) => again.packet(i).equals([s1, s2, s3, short][i]!))).toEqual([true, true, true, true]);
  });

  it('never merges a segment whose checksum is wrong (the kernel would trust the merged packet)', () => {
    const [s1, s2, s3] = stream(3);
    const corrupt = Buffer.from(s2!);
    corrupt[corrupt.length - 1]! ^= 0xff;
    const out = coalesce(listOf(s1!, corrupt, s3!));
    const got = outputs(out);
    expect(got.map((g) => g.hdr.gsoType)).toEqual(['none', 'none', 'none']);
    expect(got[1]!.ip.equals(corrupt)).toBe(true);
  });

  it('stops below 64 KiB: a long run becomes several super-packets', () => {
    const segs = stream(100, { size: 1400 });
    const out = coalesce(listOf(...segs));
    const got = outputs(out);
    expect(got.length).toBe(3);
    for (const g of got) expect(g.ip.length).toBeLessThanOrEqual(65535);
    const again = segment(out);
    expect(again.count).toBe(100);
    for (let i = 0; i < 100; i++) expect(again.packet(i).equals(segs[i]!)).toBe(true);
  });

  it('merges UDP datagrams of one flow only when asked (the receiver takes USO)', () => {
    for (const v6 of [false, true]) {
      const d = [0, 1, 2].map((i) => udpPacket({ v6, payload: bytes(i === 2 ? 100 : 1200, i) }));
      expect(coalesce(listOf(...d)).count).toBe(3);
      const out = coalesce(listOf(...d), { udp: true });
      const [only] = outputs(out);
      expect(out.count).toBe(1);
      expect(only?.hdr).toMatchObject({ needsCsum: true, gsoType: 'udp', gsoSize: 1200, csumStart: v6 ? 40 : 20, csumOffset: 6 });
      const again = segment(out);
      expect(again.count).toBe(3);
      for (let i = 0; i < 3; i++) {
        expect(parse(again.packet(i))).toMatchObject({ l4Ok: true, ipHdrOk: true, totalLenOk: true });
        expect(parse(again.packet(i)).payload.equals(parse(d[i]!).payload)).toBe(true);
      }
    }
  });
});
