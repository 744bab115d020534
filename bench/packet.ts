/**
 * IPv4/UDP packets with correct header and UDP checksums, byte for byte what bench/ref/ipv4_udp.h
 * builds for the C reference (a TUN writer's packets go through the kernel's checksum checks).
 */
import { isIPv4 } from 'node:net';

export interface Ipv4UdpSpec {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** Payload length; byte i of the payload is i & 0xff. */
  payload: number;
}

function addressBytes(a: string): Buffer {
  if (!isIPv4(a)) throw new TypeError(`not an IPv4 address: ${a}`);
  return Buffer.from(a.split('.').map(Number));
}

/** The 16-bit one's complement sum of data (big-endian words), folded, not yet complemented. */
export function onesComplementSum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < data.length; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (data.length % 2 === 1) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

export function buildIpv4Udp(spec: Ipv4UdpSpec): Buffer {
  const udpLength = 8 + spec.payload;
  const total = 20 + udpLength;
  if (total > 0xffff) throw new RangeError('packet too long');
  const src = addressBytes(spec.src);
  const dst = addressBytes(spec.dst);
  const p = Buffer.alloc(total);
  p[0] = 0x45;
  p.writeUInt16BE(total, 2);
  p[6] = 0x40; // DF
  p[8] = 64; // TTL
  p[9] = 17; // UDP
  src.copy(p, 12);
  dst.copy(p, 16);
  p.writeUInt16BE(~onesComplementSum(p.subarray(0, 20)) & 0xffff, 10);

  p.writeUInt16BE(spec.srcPort, 20);
  p.writeUInt16BE(spec.dstPort, 22);
  p.writeUInt16BE(udpLength, 24);
  for (let i = 0; i < spec.payload; i++) p[28 + i] = i & 0xff;
  const pseudo = Buffer.concat([src, dst, Buffer.from([0, 17, udpLength >> 8, udpLength & 0xff])]);
  const sum = ~onesComplementSum(p.subarray(20), onesComplementSum(pseudo)) & 0xffff;
  p.writeUInt16BE(sum === 0 ? 0xffff : sum, 26); // 0 would mean "no checksum"
  return p;
}
