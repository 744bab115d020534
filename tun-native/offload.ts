/**
 * The offloaded data path's packet work: the virtio-net header every packet of a vnetHdr Tun
 * carries, segmentation of GSO super-packets into wire packets, and coalescing (GRO) of wire
 * packets into super-packets. The work is done by the addon (tun-native/src/tun_offload.cc), one
 * crossing per list of packets; this file keeps the growable arenas the results land in.
 *
 * A list of packets is `{ buffer, offsets, lengths, count }`: packet i is `lengths[i]` bytes at
 * `offsets[i]` of `buffer`. A PacketBatch (what onBatches lends) is one, and so is a PacketArena.
 */
import { native } from './native.js';
import { bufferView } from './tun-packets.js';
import { invalidArg } from './tun-errors.js';

/** Packets lying in one buffer: what segment(), coalesce() and Tun.writeList() take. */
export interface PacketList {
  readonly buffer: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly count: number;
}

/** The size of struct virtio_net_hdr that vnetHdr Tuns use (the kernel's default). */
export const VNET_HDR_LEN = 10;

export type GsoType = 'none' | 'tcp4' | 'tcp6' | 'udp' | 'ufo' | 'unknown';

/** struct virtio_net_hdr, parsed. */
export interface VnetHeader {
  /** VIRTIO_NET_HDR_F_NEEDS_CSUM: the L4 checksum is partial (the pseudo-header sum) and still to be completed. */
  needsCsum: boolean;
  /** VIRTIO_NET_HDR_F_DATA_VALID: the kernel already verified the checksum. */
  dataValid: boolean;
  gsoType: GsoType;
  /** VIRTIO_NET_HDR_GSO_ECN: a TCP super-packet with CWR set (on its first segment only). */
  ecn: boolean;
  /** The kernel's header-length hint (not reliable for the real header size: see csumStart). */
  hdrLen: number;
  /** Payload bytes per segment (0 for a plain packet). */
  gsoSize: number;
  /** Where the L4 header starts, counted from the IP header. */
  csumStart: number;
  /** Where the checksum field lies, counted from csumStart (16 for TCP, 6 for UDP). */
  csumOffset: number;
}

const GSO_TYPES: Record<number, GsoType> = { 0: 'none', 1: 'tcp4', 3: 'ufo', 4: 'tcp6', 5: 'udp' };

/** Parses the virtio-net header at `offset` of `bytes` (a packet read from a vnetHdr Tun starts with one). */
export function readVnetHeader(bytes: Uint8Array, offset = 0): VnetHeader {
  if (offset < 0 || offset + VNET_HDR_LEN > bytes.length) throw invalidArg(`readVnetHeader: no ${VNET_HDR_LEN}-byte header at offset ${offset}`);
  const le16 = (at: number): number => (bytes[offset + at] as number) | ((bytes[offset + at + 1] as number) << 8);
  const flags = bytes[offset] as number;
  const type = bytes[offset + 1] as number;
  return {
    needsCsum: (flags & 1) !== 0,
    dataValid: (flags & 2) !== 0,
    gsoType: GSO_TYPES[type & 0x7f] ?? 'unknown',
    ecn: (type & 0x80) !== 0,
    hdrLen: le16(2),
    gsoSize: le16(4),
    csumStart: le16(6),
    csumOffset: le16(8),
  };
}

/**
 * A growable list of packets that segment() and coalesce() write into, reused call after call:
 * its packets are valid until the next call that writes into it. Offsets are multiples of 4.
 */
export class PacketArena implements PacketList {
  buffer: Buffer;
  offsets: Uint32Array;
  lengths: Uint32Array;
  count = 0;

  constructor(bytes = 256 * 1024, slots = 256) {
    this.buffer = Buffer.allocUnsafeSlow(bytes);
    this.offsets = new Uint32Array(slots);
    this.lengths = new Uint32Array(slots);
  }

  /** Makes room for at least `bytes` and `slots` packets (contents are not kept). */
  reserve(bytes: number, slots: number): void {
    if (this.buffer.length < bytes) this.buffer = Buffer.allocUnsafeSlow(Math.max(bytes, 2 * this.buffer.length));
    if (this.offsets.length < slots) {
      const n = Math.max(slots, 2 * this.offsets.length);
      this.offsets = new Uint32Array(n);
      this.lengths = new Uint32Array(n);
    }
  }

  /** Packet i as a view (no copy), valid until the arena is written again. */
  packet(i: number): Buffer {
    if (!(Number.isInteger(i) && i >= 0 && i < this.count)) throw new RangeError(`PacketArena: packet ${i} is out of range (it holds ${this.count})`);
    return bufferView(this.buffer.buffer as ArrayBuffer, this.buffer.byteOffset + (this.offsets[i] as number), this.lengths[i] as number);
  }

  /** Every packet copied into a Buffer of its own. */
  copyAll(): Buffer[] {
    return Array.from({ length: this.count }, (_, i) => Buffer.from(this.packet(i)));
  }
}

interface OffloadBinding {
  offloadSegment(
    bytes: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, vnetHdrLen: number,
    out: Uint8Array, outOffsets: Uint32Array, outLengths: Uint32Array, status: Float64Array,
  ): number;
  offloadCoalesce(
    bytes: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, vnetHdrLen: number, udp: boolean,
    out: Uint8Array, outOffsets: Uint32Array, outLengths: Uint32Array, status: Float64Array,
  ): number;
}

const binding = native as unknown as OffloadBinding;
// [bytes, packets, malformed-or-merged]: the addon's out-parameters, shared (the JS thread is one).
const status = new Float64Array(3);

export interface SegmentStats {
  /** Input packets skipped as malformed (a GSO type or header the kernel would not produce). */
  invalid: number;
}

function checkList(list: PacketList, what: string): void {
  if (
    typeof list !== 'object' || list === null || !(list.buffer instanceof Uint8Array) || !(list.offsets instanceof Uint32Array) ||
    !(list.lengths instanceof Uint32Array) || !Number.isInteger(list.count)
  ) {
    throw invalidArg(`${what} expects a packet list ({ buffer, offsets, lengths, count }), such as a PacketBatch or PacketArena`, 'type');
  }
}

/**
 * Splits packets read from a vnetHdr Tun (each a virtio-net header and an IP packet) into the wire
 * packets they stand for, without headers: a TCP or UDP GSO super-packet into gsoSize segments
 * with their own lengths, IPv4 ids and header checksums, TCP sequence numbers (FIN/PSH only on
 * the last, CWR only on the first) and full L4 checksums; a plain packet whose checksum the
 * kernel left partial (needsCsum) with it completed; anything else as it is. Malformed packets
 * are skipped (and counted in `stats`). Returns `out` (a new arena if none is given).
 */
export function segment(list: PacketList, out: PacketArena = new PacketArena(), stats?: SegmentStats): PacketArena {
  checkList(list, 'segment');
  for (;;) {
    const n = binding.offloadSegment(list.buffer, list.offsets, list.lengths, list.count, VNET_HDR_LEN, out.buffer, out.offsets, out.lengths, status);
    if (n >= 0) {
      out.count = n;
      if (stats) stats.invalid = status[2] as number;
      return out;
    }
    out.reserve(status[0] as number, status[1] as number);
  }
}

export interface CoalesceOptions {
  /** Merge UDP datagrams too (the receiving kernel takes UDP GSO: Linux 6.2+). Default false. */
  udp?: boolean;
}

export interface CoalesceStats {
  /** Input packets folded into an earlier one. */
  merged: number;
}

/**
 * GRO: merges runs of consecutive TCP segments of one flow (and UDP datagrams with `udp`) into
 * super-packets a vnetHdr Tun takes in one write, each output packet a virtio-net header (all zero
 * for a packet left alone) and an IP packet; the rules are the kernel's and wireguard-go's (same
 * addresses, ports and ACK, in sequence, equal sizes but a shorter last, no options differing,
 * only ACK/PSH flags, valid checksums). Returns `out` (a new arena if none is given).
 */
export function coalesce(list: PacketList, opts: CoalesceOptions = {}, out: PacketArena = new PacketArena(), stats?: CoalesceStats): PacketArena {
  checkList(list, 'coalesce');
  const count = list.count;
  let bytes = 0;
  for (let i = 0; i < count; i++) bytes += (VNET_HDR_LEN + (list.lengths[i] as number) + 3) & ~3;
  out.reserve(bytes, count);
  out.count = binding.offloadCoalesce(list.buffer, list.offsets, list.lengths, count, VNET_HDR_LEN, opts.udp === true, out.buffer, out.offsets, out.lengths, status);
  if (stats) stats.merged = status[2] as number;
  return out;
}
