/**
 * Packet building and parsing for tests: IPv4/IPv6 + UDP with correct checksums, Ethernet frames,
 * the TUN packet-info header and the virtio-net header. Only what the tun tests need, written
 * from the RFCs (791, 768, 8200, 1071) rather than any library, so a test compares the kernel's
 * bytes with an independent construction.
 */
import { isIPv4, isIPv6 } from 'node:net';

export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_ARP = 0x0806;
export const IPPROTO_UDP = 17;

/** Ones' complement sum of 16-bit big-endian words (RFC 1071), not yet folded or inverted. */
export function onesSum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  let i = 0;
  for (; i + 1 < data.length; i += 2) sum += ((data[i] as number) << 8) | (data[i + 1] as number);
  if (i < data.length) sum += (data[i] as number) << 8;
  return sum;
}

/** The Internet checksum of data (plus an initial partial sum, e.g. a pseudo-header's). */
export function checksum(data: Uint8Array, initial = 0): number {
  let sum = onesSum(data, initial);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ipv4Bytes(addr: string): Buffer {
  if (!isIPv4(addr)) throw new Error(`not an IPv4 address: ${addr}`);
  return Buffer.from(addr.split('.').map(Number));
}

export function ipv6Bytes(addr: string): Buffer {
  if (!isIPv6(addr)) throw new Error(`not an IPv6 address: ${addr}`);
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
  const words = (s: string | undefined): number[] => (s ? s.split(':').map((w) => parseInt(w, 16)) : []);
  const h = words(head);
  const t = words(tail);
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

export function formatIpv4(b: Uint8Array): string {
  return Array.from(b.subarray(0, 4)).join('.');
}

export function formatIpv6(b: Uint8Array): string {
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push((((b[i] as number) << 8) | (b[i + 1] as number)).toString(16));
  // Compress the longest run of zero words, as inet_ntop does.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return words.join(':');
  return `${words.slice(0, best).join(':')}::${words.slice(best + bestLen).join(':')}`;
}

export interface UdpSpec {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
  /** IPv4 TTL / IPv6 hop limit; default 64. */
  ttl?: number;
  /** IPv4 identification; default 0. */
  id?: number;
  /** IPv4 don't-fragment bit; default true (what Linux sets on UDP with PMTU discovery). */
  dontFragment?: boolean;
}

function udpHeader(spec: UdpSpec, pseudoSum: number): Buffer {
  const udp = Buffer.alloc(8 + spec.payload.length);
  udp.writeUInt16BE(spec.srcPort, 0);
  udp.writeUInt16BE(spec.dstPort, 2);
  udp.writeUInt16BE(udp.length, 4);
  spec.payload.copy(udp, 8);
  const sum = checksum(udp, pseudoSum);
  udp.writeUInt16BE(sum === 0 ? 0xffff : sum, 6); // 0 means "no checksum" in UDP
  return udp;
}

/** An IPv4 packet carrying UDP, both checksums correct. */
export function ipv4Udp(spec: UdpSpec): Buffer {
  const src = ipv4Bytes(spec.src);
  const dst = ipv4Bytes(spec.dst);
  const udpLen = 8 + spec.payload.length;
  const pseudo = Buffer.concat([src, dst, Buffer.from([0, IPPROTO_UDP, udpLen >> 8, udpLen & 0xff])]);
  const udp = udpHeader(spec, onesSum(pseudo));
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + udp.length, 2);
  ip.writeUInt16BE(spec.id ?? 0, 4);
  ip.writeUInt16BE(spec.dontFragment === false ? 0 : 0x4000, 6);
  ip[8] = spec.ttl ?? 64;
  ip[9] = IPPROTO_UDP;
  src.copy(ip, 12);
  dst.copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return Buffer.concat([ip, udp]);
}

/** An IPv6 packet carrying UDP, checksum correct. */
export function ipv6Udp(spec: UdpSpec): Buffer {
  const src = ipv6Bytes(spec.src);
  const dst = ipv6Bytes(spec.dst);
  const udpLen = 8 + spec.payload.length;
  const pseudo = Buffer.alloc(40);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 16);
  pseudo.writeUInt32BE(udpLen, 32);
  pseudo[39] = IPPROTO_UDP;
  const udp = udpHeader(spec, onesSum(pseudo));
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(udp.length, 4);
  ip[6] = IPPROTO_UDP;
  ip[7] = spec.ttl ?? 64;
  src.copy(ip, 8);
  dst.copy(ip, 24);
  return Buffer.concat([ip, udp]);
}

export interface ParsedUdp {
  version: 4 | 6;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  ttl: number;
  /** IPv4 identification (0 for IPv6). */
  id: number;
  dontFragment: boolean;
  payload: Buffer;
  /** Both the IPv4 header checksum (if any) and the UDP checksum verify. */
  checksumsOk: boolean;
}

/** Parses an IPv4 or IPv6 packet carrying UDP; undefined for anything else. */
export function parseUdp(packet: Buffer): ParsedUdp | undefined {
  if (packet.length < 1) return undefined;
  const version = packet[0] as number >> 4;
  if (version === 4) {
    const ihl = ((packet[0] as number) & 0x0f) * 4;
    if (packet.length < ihl + 8 || packet[9] !== IPPROTO_UDP) return undefined;
    const total = packet.readUInt16BE(2);
    const udp = packet.subarray(ihl, total);
    const pseudo = Buffer.concat([packet.subarray(12, 20), Buffer.from([0, IPPROTO_UDP, udp.length >> 8, udp.length & 0xff])]);
    const ipOk = checksum(packet.subarray(0, ihl)) === 0;
    const udpOk = udp.readUInt16BE(6) === 0 || checksum(udp, onesSum(pseudo)) === 0;
    return {
      version: 4,
      src: formatIpv4(packet.subarray(12, 16)),
      dst: formatIpv4(packet.subarray(16, 20)),
      srcPort: udp.readUInt16BE(0),
      dstPort: udp.readUInt16BE(2),
      ttl: packet[8] as number,
      id: packet.readUInt16BE(4),
      dontFragment: (packet.readUInt16BE(6) & 0x4000) !== 0,
      payload: Buffer.from(udp.subarray(8)),
      checksumsOk: ipOk && udpOk,
    };
  }
  if (version === 6) {
    if (packet.length < 48 || packet[6] !== IPPROTO_UDP) return undefined;
    const udp = packet.subarray(40, 40 + packet.readUInt16BE(4));
    const pseudo = Buffer.alloc(40);
    packet.copy(pseudo, 0, 8, 40);
    pseudo.writeUInt32BE(udp.length, 32);
    pseudo[39] = IPPROTO_UDP;
    return {
      version: 6,
      src: formatIpv6(packet.subarray(8, 24)),
      dst: formatIpv6(packet.subarray(24, 40)),
      srcPort: udp.readUInt16BE(0),
      dstPort: udp.readUInt16BE(2),
      ttl: packet[7] as number,
      id: 0,
      dontFragment: false,
      payload: Buffer.from(udp.subarray(8)),
      checksumsOk: checksum(udp, onesSum(pseudo)) === 0,
    };
  }
  return undefined;
}

export function macBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6) throw new Error(`not a MAC address: ${mac}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(b: Uint8Array): string {
  return Array.from(b.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}

export function ethernetFrame(dst: string, src: string, etherType: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(14);
  macBytes(dst).copy(header, 0);
  macBytes(src).copy(header, 6);
  header.writeUInt16BE(etherType, 12);
  return Buffer.concat([header, payload]);
}

export interface ParsedEthernet {
  dst: string;
  src: string;
  etherType: number;
  payload: Buffer;
}

export function parseEthernet(frame: Buffer): ParsedEthernet | undefined {
  if (frame.length < 14) return undefined;
  return {
    dst: formatMac(frame.subarray(0, 6)),
    src: formatMac(frame.subarray(6, 12)),
    etherType: frame.readUInt16BE(12),
    payload: frame.subarray(14),
  };
}

/** struct tun_pi: 16-bit flags (host order; 0 here), 16-bit protocol (big-endian EtherType). */
export function tunPi(proto: number, flags = 0): Buffer {
  const pi = Buffer.alloc(4);
  pi.writeUInt16LE(flags, 0);
  pi.writeUInt16BE(proto, 2);
  return pi;
}

export function parseTunPi(packet: Buffer): { flags: number; proto: number; payload: Buffer } {
  return { flags: packet.readUInt16LE(0), proto: packet.readUInt16BE(2), payload: packet.subarray(4) };
}

/** struct virtio_net_hdr (10 bytes, the size IFF_VNET_HDR uses by default), little-endian fields. */
export const VNET_HDR_LEN = 10;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;

export interface VnetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export function parseVnetHdr(packet: Buffer): { hdr: VnetHdr; payload: Buffer } {
  return {
    hdr: {
      flags: packet[0] as number,
      gsoType: packet[1] as number,
      hdrLen: packet.readUInt16LE(2),
      gsoSize: packet.readUInt16LE(4),
      csumStart: packet.readUInt16LE(6),
      csumOffset: packet.readUInt16LE(8),
    },
    payload: packet.subarray(VNET_HDR_LEN),
  };
}

/** A virtio-net header for a plain packet (no offload): all zero. */
export function plainVnetHdr(): Buffer {
  return Buffer.alloc(VNET_HDR_LEN);
}

export const IPPROTO_ICMP = 1;
export const IPPROTO_ICMPV6 = 58;
const ICMP_ECHO_REQUEST = 8;
const ICMP_ECHO_REPLY = 0;
const ICMPV6_ECHO_REQUEST = 128;
const ICMPV6_ECHO_REPLY = 129;

export interface ParsedEcho {
  version: 4 | 6;
  src: string;
  dst: string;
  /** 'request' or 'reply'. */
  kind: 'request' | 'reply';
  id: number;
  sequence: number;
  data: Buffer;
  /** The ICMP checksum (IPv6: with the pseudo-header, RFC 4443 2.3) and IPv4's header checksum verify. */
  checksumsOk: boolean;
}

function icmpv6PseudoSum(src: Uint8Array, dst: Uint8Array, length: number): number {
  const pseudo = Buffer.alloc(40);
  pseudo.set(src, 0);
  pseudo.set(dst, 16);
  pseudo.writeUInt32BE(length, 32);
  pseudo[39] = IPPROTO_ICMPV6;
  return onesSum(pseudo);
}

/** An ICMP echo request or reply (RFC 792) or ICMPv6 echo (RFC 4443 4.1/4.2), else undefined. */
export function parseEcho(packet: Buffer): ParsedEcho | undefined {
  const version = (packet[0] ?? 0) >> 4;
  if (version === 4) {
    const ihl = ((packet[0] as number) & 0x0f) * 4;
    if (packet.length < ihl + 8 || packet[9] !== IPPROTO_ICMP) return undefined;
    const icmp = packet.subarray(ihl, packet.readUInt16BE(2));
    const type = icmp[0];
    if ((type !== ICMP_ECHO_REQUEST && type !== ICMP_ECHO_REPLY) || icmp[1] !== 0) return undefined;
    return {
      version: 4,
      src: formatIpv4(packet.subarray(12, 16)),
      dst: formatIpv4(packet.subarray(16, 20)),
      kind: type === ICMP_ECHO_REQUEST ? 'request' : 'reply',
      id: icmp.readUInt16BE(4),
      sequence: icmp.readUInt16BE(6),
      data: Buffer.from(icmp.subarray(8)),
      checksumsOk: checksum(packet.subarray(0, ihl)) === 0 && checksum(icmp) === 0,
    };
  }
  if (version === 6) {
    // Extension headers are not followed: the kernel's echoes carry none.
    if (packet.length < 48 || packet[6] !== IPPROTO_ICMPV6) return undefined;
    const icmp = packet.subarray(40, 40 + packet.readUInt16BE(4));
    const type = icmp[0];
    if ((type !== ICMPV6_ECHO_REQUEST && type !== ICMPV6_ECHO_REPLY) || icmp[1] !== 0) return undefined;
    return {
      version: 6,
      src: formatIpv6(packet.subarray(8, 24)),
      dst: formatIpv6(packet.subarray(24, 40)),
      kind: type === ICMPV6_ECHO_REQUEST ? 'request' : 'reply',
      id: icmp.readUInt16BE(4),
      sequence: icmp.readUInt16BE(6),
      data: Buffer.from(icmp.subarray(8)),
      checksumsOk: checksum(icmp, icmpv6PseudoSum(packet.subarray(8, 24), packet.subarray(24, 40), icmp.length)) === 0,
    };
  }
  return undefined;
}

/**
 * The reply a host would send to an echo request: addresses swapped, type echo reply, the same
 * identifier, sequence and data, fresh checksums (IPv6's over the pseudo-header), TTL/hop limit
 * 64. undefined when the packet is not an echo request.
 */
export function echoReplyTo(packet: Buffer): Buffer | undefined {
  const echo = parseEcho(packet);
  if (echo === undefined || echo.kind !== 'request') return undefined;
  const icmp = Buffer.alloc(8 + echo.data.length);
  icmp[0] = echo.version === 4 ? ICMP_ECHO_REPLY : ICMPV6_ECHO_REPLY;
  icmp.writeUInt16BE(echo.id, 4);
  icmp.writeUInt16BE(echo.sequence, 6);
  echo.data.copy(icmp, 8);
  if (echo.version === 4) {
    icmp.writeUInt16BE(checksum(icmp), 2);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + icmp.length, 2);
    ip[8] = 64;
    ip[9] = IPPROTO_ICMP;
    ipv4Bytes(echo.dst).copy(ip, 12);
    ipv4Bytes(echo.src).copy(ip, 16);
    ip.writeUInt16BE(checksum(ip), 10);
    return Buffer.concat([ip, icmp]);
  }
  const src = ipv6Bytes(echo.dst);
  const dst = ipv6Bytes(echo.src);
  icmp.writeUInt16BE(checksum(icmp, icmpv6PseudoSum(src, dst, icmp.length)), 2);
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(icmp.length, 4);
  ip[6] = IPPROTO_ICMPV6;
  ip[7] = 64;
  src.copy(ip, 8);
  dst.copy(ip, 24);
  return Buffer.concat([ip, icmp]);
}
