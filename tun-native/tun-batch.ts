/**
 * PacketBatch: one native batch of read packets, lent to JS in place.
 *
 * The reader thread reads packets into a ring of native memory; JS sees that ring as one Buffer
 * (`buffer`) and a batch as `count` offsets and lengths into it. Nothing is allocated or copied
 * per batch or per packet, which is what lets a JS consumer keep up with a C read() loop.
 *
 * From a reader started with `segment` (a vnetHdr Tun), every packet is a wire packet the reader
 * thread cut out of what the kernel handed over, without a virtio-net header (`segmented`). The
 * flag is per batch, not per reader: packets a stopped reader left queued are delivered to the
 * next one in the form they were read in, never in a batch with packets of the other form.
 *
 * Lifetime: a batch's packets are valid only until its callback returns. The reader thread then
 * reuses their room for new packets, and the same PacketBatch object is handed out again (its
 * `count` is 0 in between). Keep a packet by copying it: copy(i), copyAll(), or Buffer.from().
 */
import { readVnetHeader, type VnetHeader } from './offload.js';
import { bufferView } from './tun-packets.js';

function align4(n: number): number {
  return (n + 3) & ~3;
}

export class PacketBatch {
  /**
   * The reader's whole ring of packets. Packet i of the current batch is
   * `buffer.subarray(offsets[i], offsets[i] + lengths[i])`; every other byte is meaningless (the
   * reader thread may be writing there). Offsets are multiples of 4.
   */
  readonly buffer: Buffer;
  /** Where each packet of the current batch starts in `buffer`; entries from `count` on are stale. */
  readonly offsets: Uint32Array;
  /** Each packet's length in bytes; entries from `count` on are stale. */
  readonly lengths: Uint32Array;
  #count = 0;
  #segmented = false;
  // The native batch's mode word, after its lengths (1: segmented wire packets).
  readonly #mode: Uint32Array;

  /** @internal The facade makes batches over the addon's views; users receive them. */
  constructor(ring: Buffer, slots: Buffer, capacity: number) {
    this.buffer = ring;
    this.offsets = new Uint32Array(slots.buffer, slots.byteOffset, capacity);
    this.lengths = new Uint32Array(slots.buffer, slots.byteOffset + 4 * capacity, capacity);
    this.#mode = new Uint32Array(slots.buffer, slots.byteOffset + 8 * capacity, 1);
  }

  /** Packets in the current batch (0 outside a callback). */
  get count(): number {
    return this.#count;
  }

  /**
   * True when this batch's packets were segmented by the reader thread (ReadOptions.segment on a
   * vnetHdr Tun): wire packets with no virtio-net header. False: each packet is what the kernel
   * handed over (after a virtio-net header on a vnetHdr Tun). Usually the reader's setting, but
   * after a reader is restarted with the other setting, the first batches hold what the previous
   * one left queued, in its form: look at this flag, or call tun.segment(batch), which gives wire
   * packets either way.
   */
  get segmented(): boolean {
    return this.#segmented;
  }

  /** @internal Opens (count > 0: its mode read from the native batch) or closes (0) the batch around a callback. */
  setCount(count: number): void {
    this.#count = count;
    if (count > 0) this.#segmented = this.#mode[0] === 1;
  }

  /** Packet i as a view into the ring (no copy): valid only until the callback returns. */
  packet(i: number): Buffer {
    this.#check(i);
    return bufferView(this.buffer.buffer as ArrayBuffer, this.buffer.byteOffset + (this.offsets[i] as number), this.lengths[i] as number);
  }

  /**
   * The virtio-net header packet i starts with (a Tun opened with vnetHdr): for a GSO
   * super-packet, its type and segment size; whether the checksum is still partial.
   */
  vnetHeader(i: number): VnetHeader {
    this.#check(i);
    if (this.#segmented) throw new RangeError('PacketBatch: a segmented batch holds wire packets, without virtio-net headers');
    return readVnetHeader(this.buffer, this.offsets[i] as number);
  }

  /** Packet i copied into a Buffer of its own, valid for as long as it is kept. */
  copy(i: number): Buffer {
    this.#check(i);
    const start = this.offsets[i] as number;
    const out = Buffer.allocUnsafe(this.lengths[i] as number);
    this.buffer.copy(out, 0, start, start + out.length);
    return out;
  }

  /**
   * Every packet of the batch copied, one Buffer each, all sharing one fresh allocation (not
   * zero-filled: every byte is overwritten). What packets() and onPackets() deliver.
   */
  copyAll(): Buffer[] {
    const count = this.#count;
    const offsets = this.offsets;
    const lengths = this.lengths;
    // Packets lie back to back in the ring except where it wraps, so the batch is copied in one
    // or two runs rather than one copy per packet.
    let total = 0;
    let runStart = 0;
    let runEnd = 0;
    for (let i = 0; i < count; i++) {
      const off = offsets[i] as number;
      if (i === 0 || off < runEnd) {
        total += runEnd - runStart;
        runStart = off;
      }
      runEnd = off + align4(lengths[i] as number);
    }
    total += runEnd - runStart;
    const target = Buffer.allocUnsafeSlow(total);
    const memory = target.buffer as ArrayBuffer;
    const base = target.byteOffset;
    const packets = new Array<Buffer>(count);
    let pos = 0;
    runStart = 0;
    runEnd = 0;
    let runFirst = 0;
    for (let i = 0; i <= count; i++) {
      const off = i < count ? (offsets[i] as number) : -1;
      if (i === count || (i > 0 && off < runEnd)) {
        this.buffer.copy(target, pos, runStart, runEnd);
        for (let j = runFirst; j < i; j++) {
          packets[j] = bufferView(memory, base + pos + (offsets[j] as number) - runStart, lengths[j] as number);
        }
        pos += runEnd - runStart;
        if (i === count) break;
        runFirst = i;
        runStart = off;
      } else if (i === 0) {
        runStart = off;
      }
      runEnd = off + align4(lengths[i] as number);
    }
    return packets;
  }

  #check(i: number): void {
    if (!(Number.isInteger(i) && i >= 0 && i < this.#count)) {
      throw new RangeError(
        this.#count === 0
          ? 'PacketBatch: the batch is over (its packets are valid only during the callback; copy what you keep)'
          : `PacketBatch: packet ${i} is out of range (the batch has ${this.#count})`,
      );
    }
  }
}
