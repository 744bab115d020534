/**
 * Tun: a TUN or TAP device opened through /dev/net/tun. The data path of tunkeeper's library:
 * packets are read by a native thread in batches and cross into JS one batch at a time; writes go
 * straight to write(2), one packet each, as tun(4) requires.
 *
 * Two speeds each way. Fastest: onBatches() lends each batch in place (PacketBatch: the native
 * ring as one Buffer, offsets and lengths; nothing allocated or copied) and writePacked() takes
 * packets back to back in one buffer. Convenient: packets()/onPackets() copy each batch once
 * into Buffers the caller may keep, and writeBatch() takes an array of Buffers (gathering small
 * ones into writePacked).
 *
 * Offloaded (vnetHdr with offload: 'auto'): the kernel hands over TCP/UDP GSO super-packets of up
 * to 64 KiB as one batch entry each (batch.vnetHeader(i) says what it is) and takes them back the
 * same way. Reading with `{ segment: true }` has the reader thread split them, so batches hold
 * wire packets; segment() does the same to a lent batch on the JS thread, writeCoalesced() merges
 * wire packets into super-packets again (GRO), writeList() forwards a lent batch as it is
 * (offload.ts, the C++ in tun_offload.cc).
 *
 * Every syscall lives in the addon (tun-native/src/tun_*.cc); this file validates, keeps the
 * consumer bookkeeping, and shapes batches into Buffers.
 */
import type { NativeError } from './errors.js';
import { native } from './native.js';
import { netnsPath } from './netns.js';
import { explainTunOpenError } from './tun-device-access.js';
import { invalidArg, nativeError } from './tun-errors.js';
import {
  IFF_MULTI_QUEUE,
  IFF_NO_PI,
  IFF_PERSIST,
  IFF_TAP,
  IFF_TUN,
  IFF_VNET_HDR,
  type NativeOpenRequest,
  offloadBits,
  offloadFromBits,
  resolveOpenOptions,
  type TunMode,
  type TunOffload,
  type TunOpenOptions,
  validateId,
} from './tun-options.js';
import { PacketBatch } from './tun-batch.js';
import { PacketIterator } from './tun-packets.js';
import { coalesce, PacketArena, type PacketList, segment, VNET_HDR_LEN } from './offload.js';

export { PacketBatch } from './tun-batch.js';

export type { TunMode, TunOffload, TunOpenOptions } from './tun-options.js';
export { validateIfName } from './tun-options.js';

export interface TunStats {
  /** Packets handed to JS (not counting dropped ones). */
  packetsRead: number;
  bytesRead: number;
  /** Crossings into JS, one per native batch. */
  batches: number;
  /**
   * Packets read from the device and dropped because the native queue was full (JS did not keep
   * up); wire packets when reading with `segment`.
   */
  dropped: number;
  /** Reading with `segment`: packets skipped because their virtio-net or IP/L4 headers were not valid. */
  malformed: number;
  /** Reading with `segment`: GSO super-packets the reader thread split into wire packets. */
  superPackets: number;
  packetsWritten: number;
  bytesWritten: number;
}

/** The addon's TunDevice handle (tun-native/src/tun_device.cc). */
interface NativeTunHandle {
  info(): { name: string; ifindex: number; flags: number; netns: string; offload: number };
  writeSync(packet: Uint8Array): void;
  writeBatch(packets: readonly Uint8Array[]): number;
  writePacked(bytes: Uint8Array, lengths: Uint32Array, count: number): number;
  writeVectors(bytes: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number;
  setPersist(on: boolean): void;
  setOwner(uid: number): void;
  setGroup(gid: number): void;
  setOffload(bits: number): void;
  /** [ring, slots]: once per handle. */
  readerViews(): [Buffer, Buffer];
  /** onBatch(count) per batch, lent in the views until it returns; onBatch(-1, error?) at the end. */
  startReader(onBatch: (count: number, error?: NativeError) => void, segment: boolean): void;
  stopReader(): void;
  setPaused(paused: boolean): void;
  setBackpressure(on: boolean): void;
  setRef(on: boolean): void;
  stats(): TunStats;
  close(): Promise<void>;
}

interface TunBinding {
  openTun(request: NativeOpenRequest): Promise<NativeTunHandle>;
}

const binding = native as unknown as TunBinding;

/** TUNSETIFF through the addon; a device-cgroup refusal comes back explained (tun-device-access.ts). */
async function openNative(request: NativeOpenRequest): Promise<NativeTunHandle> {
  try {
    return await binding.openTun(request);
  } catch (e) {
    throw explainTunOpenError(e);
  }
}

type OnEnd = ((error?: NativeError) => void) | undefined;

/** How a reader delivers packets: options of packets(), onPackets() and onBatches(). */
export interface ReadOptions {
  /**
   * A vnetHdr Tun: the reader thread turns every packet it reads into the wire packets it stands
   * for before JS sees it, so each batch entry is one wire packet (an IP packet, the virtio-net
   * header dropped): GSO super-packets split with every header and checksum set, partial
   * checksums completed, as segment() does. The work stays off the JS thread and nothing is
   * allocated per packet: batches are lent from the reader's ring as always. The limits then
   * count wire packets (queueLimit, stats().dropped); one super-packet's wire packets may be spread
   * over consecutive batches; a super-packet that does not fit in the queue's room is dropped whole
   * (or, with overflow 'backpressure', waits for room). Packets whose headers are not valid are
   * skipped and counted in stats().malformed. A consumer that coalesces what it reads
   * (writeCoalesced) wants a readBatch well above a super-packet's ~45 wire packets (say 1024): a
   * super-packet cut by a batch boundary is coalesced into two writes. Without vnetHdr the packets already are wire
   * packets and this changes nothing. Default false: super-packets as the kernel hands them over,
   * each after its virtio-net header.
   *
   * Restarting a reader with the other setting: packets the previous reader left queued come
   * first, in the form they were read in. onBatches() gets them in batches of their own whose
   * batch.segmented says which form (tun.segment(batch) gives wire packets either way);
   * packets() and onPackets() get them converted to the form asked for (split on the JS thread,
   * or each after an all-zero virtio-net header). A super-packet a segmenting reader held for
   * room when it was stopped is dropped and counted in stats().dropped.
   */
  segment?: boolean;
}

/** onBatches()' and onPackets()' options: ReadOptions, and onEnd (see onBatches). */
export interface ConsumerOptions extends ReadOptions {
  onEnd?: (error?: NativeError) => void;
}
type Consumer =
  | { kind: 'batches'; onBatch: (batch: PacketBatch) => void; onEnd: OnEnd }
  | { kind: 'callback'; onBatch: (batch: Buffer[]) => void; onEnd: OnEnd; segment: boolean }
  | { kind: 'iterator'; iterator: PacketIterator; segment: boolean };

const FLAG_MASK = IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
/** Batches larger than this are written straight from the caller's Buffers, not gathered. */
const GATHER_MAX_BYTES = 256 * 1024;

export class Tun {
  /** The kernel's name for the device (TUNGETIFF), e.g. 'tun3' when '%d' or no name was asked for. */
  readonly name: string;
  /** The device's index in its network namespace. */
  readonly ifindex: number;
  readonly mode: TunMode;
  readonly multiQueue: boolean;
  readonly vnetHdr: boolean;
  readonly packetInfo: boolean;

  readonly #handle: NativeTunHandle;
  readonly #request: NativeOpenRequest;
  #consumer: Consumer | undefined;
  #closing: Promise<void> | undefined;
  // The one PacketBatch over the reader's views, made on the first read.
  #batch: PacketBatch | undefined;
  // writeBatch's gather buffers, grown on demand up to GATHER_MAX_BYTES.
  #gatherBytes: Buffer = Buffer.alloc(0);
  #gatherLens: Uint32Array = new Uint32Array(0);
  #offload: Required<TunOffload> | null;
  // segment()'s and writeCoalesced()'s arenas, made on first use.
  #segments: PacketArena | undefined;
  #coalesced: PacketArena | undefined;
  // Leftovers of a reader in the other mode, segmented on the JS thread for a copying consumer
  // (#convert), and the malformed packets skipped doing it (added to stats().malformed).
  #leftovers: PacketArena | undefined;
  #leftoverMalformed = 0;

  private constructor(handle: NativeTunHandle, request: NativeOpenRequest) {
    const info = handle.info();
    this.#handle = handle;
    if (request.overflow === 'backpressure') handle.setBackpressure(true);
    this.name = info.name;
    this.ifindex = info.ifindex;
    this.mode = info.flags & IFF_TAP ? 'tap' : 'tun';
    this.multiQueue = (info.flags & IFF_MULTI_QUEUE) !== 0;
    this.vnetHdr = (info.flags & IFF_VNET_HDR) !== 0;
    this.packetInfo = (info.flags & IFF_NO_PI) === 0;
    this.#offload = this.vnetHdr ? offloadFromBits(Math.max(0, info.offload)) : null;
    // What openQueue() repeats: the device's actual flags, in the same namespace.
    this.#request = { ...request, name: info.name, flags: info.flags & FLAG_MASK & ~IFF_PERSIST };
    delete this.#request.persist;
    delete this.#request.owner;
    delete this.#request.group;
    delete this.#request.offload;
    delete this.#request.mtu;
  }

  /**
   * Creates a device, or attaches to an existing one by name (a persistent device nobody holds, or
   * another queue of a multi-queue device). With `netns`, all of it happens inside that namespace,
   * off the JS thread.
   */
  static async open(opts?: TunOpenOptions): Promise<Tun> {
    const { request } = resolveOpenOptions(opts, netnsPath);
    const handle = await openNative(request);
    return new Tun(handle, request);
  }

  /** Another queue of this multi-queue device, in the same namespace, with the same flags. */
  async openQueue(): Promise<Tun> {
    const what = `open another queue of ${this.#label()}`;
    if (this.closed) throw nativeError('EBADF', 'ioctl(TUNSETIFF)', what, 'the handle is closed');
    if (!this.multiQueue) {
      throw nativeError('EINVAL', 'ioctl(TUNSETIFF)', what, 'it is a single-queue device (create it with multiQueue: true)');
    }
    const handle = await openNative(this.#request);
    return new Tun(handle, this.#request);
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * The packets, one Buffer each, as an async iterator; starts the reader. Leaving the loop stops
   * the reader. Ends when the Tun is closed; throws a NativeError (ENODEV) if the device is deleted
   * under it. One consumer at a time (packets() or onPackets()).
   */
  packets(options?: ReadOptions): AsyncIterableIterator<Buffer> {
    const segment = this.#segmentOption(options);
    this.#checkCanRead();
    const iterator: PacketIterator = new PacketIterator(
      {
        pause: (paused) => this.#handle.setPaused(paused),
        detach: () => this.#detach(consumer),
      },
      this.#request.readBatch,
    );
    const consumer: Consumer = { kind: 'iterator', iterator, segment };
    this.#attach(consumer, segment);
    return iterator;
  }

  /**
   * The fastest way to read: calls `onBatch` once per native batch (up to readBatch packets) with
   * the packets lent in place, no allocation or copy per batch or per packet. The batch and its
   * packets are valid only until `onBatch` returns (the same PacketBatch object comes back with
   * the next batch): copy what you keep (batch.copy(i), batch.copyAll(), Buffer.from(...)).
   * Starts the reader; `onEnd` is called once if the reader ends by itself (with the error; ENODEV
   * when the device was deleted) or when the Tun is closed (without). Returns stop(), which stops
   * the reader. One consumer at a time (onBatches(), onPackets() or packets()).
   *
   * The second argument is `onEnd`, or options: `{ onEnd, segment }`. With `segment: true` on a
   * vnetHdr Tun the batches hold wire packets, split on the reader thread (ReadOptions.segment;
   * batch.segmented says so): the fastest way to see every packet of an offloaded device.
   */
  onBatches(onBatch: (batch: PacketBatch) => void, onEnd?: (error?: NativeError) => void): () => void;
  onBatches(onBatch: (batch: PacketBatch) => void, options?: ConsumerOptions): () => void;
  onBatches(onBatch: (batch: PacketBatch) => void, endOrOptions?: ((error?: NativeError) => void) | ConsumerOptions): () => void {
    if (typeof onBatch !== 'function') throw invalidArg('onBatches expects a callback', 'type');
    const { onEnd, segment } = this.#consumerOptions('onBatches', endOrOptions);
    this.#checkCanRead();
    const consumer: Consumer = { kind: 'batches', onBatch, onEnd };
    this.#attach(consumer, segment);
    return () => this.#detach(consumer);
  }

  /**
   * Calls `onBatch` once per native batch (up to readBatch packets), each packet a Buffer of its
   * own (the batch copied once); starts the reader. `onEnd` is called once if the reader ends by
   * itself (with the error; ENODEV when the device was deleted) or when the Tun is closed
   * (without). Returns stop(), which stops the reader. The second argument is `onEnd`, or
   * options `{ onEnd, segment }` (ReadOptions.segment: wire packets from a vnetHdr Tun).
   */
  onPackets(onBatch: (batch: Buffer[]) => void, onEnd?: (error?: NativeError) => void): () => void;
  onPackets(onBatch: (batch: Buffer[]) => void, options?: ConsumerOptions): () => void;
  onPackets(onBatch: (batch: Buffer[]) => void, endOrOptions?: ((error?: NativeError) => void) | ConsumerOptions): () => void {
    if (typeof onBatch !== 'function') throw invalidArg('onPackets expects a callback', 'type');
    const { onEnd, segment } = this.#consumerOptions('onPackets', endOrOptions);
    this.#checkCanRead();
    const consumer: Consumer = { kind: 'callback', onBatch, onEnd, segment };
    this.#attach(consumer, segment);
    return () => this.#detach(consumer);
  }

  /** Writes one packet (or frame, for tap); resolves once the kernel has it. */
  write(packet: Buffer): Promise<void> {
    try {
      this.#handle.writeSync(packet);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Writes one packet synchronously (write(2) on a TUN fd never waits). */
  writeSync(packet: Buffer): void {
    this.#handle.writeSync(packet);
  }

  /**
   * Writes many packets in one crossing into native code, one write(2) each. Returns how many were
   * written; like sendmmsg(2), throws only if the first one fails (a later failure stops the batch
   * and shows in the count; writing the rest again reports its error).
   */
  writeBatch(packets: Buffer[]): number {
    if (!Array.isArray(packets)) throw invalidArg('writeBatch expects an array of Buffers', 'type');
    const count = packets.length;
    // Small packets (the common case) are gathered into one reused buffer: copying them costs
    // about 25 ns each, looking each one up through N-API about 150 ns. Big ones go as they are.
    let total = 0;
    for (let i = 0; i < count; i++) {
      const p = packets[i] as Uint8Array;
      if (!ArrayBuffer.isView(p) || p.BYTES_PER_ELEMENT !== 1) {
        throw invalidArg(`writeBatch: element ${i} is not a Buffer or Uint8Array (nothing was written)`, 'type');
      }
      total += p.byteLength;
    }
    if (total > GATHER_MAX_BYTES) return this.#handle.writeBatch(packets);
    if (this.#gatherBytes.length < total) this.#gatherBytes = Buffer.allocUnsafeSlow(Math.max(total, 2 * this.#gatherBytes.length));
    if (this.#gatherLens.length < count) this.#gatherLens = new Uint32Array(Math.max(count, 2 * this.#gatherLens.length));
    const bytes = this.#gatherBytes;
    const lens = this.#gatherLens;
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const p = packets[i] as Uint8Array;
      bytes.set(p, offset);
      lens[i] = p.byteLength;
      offset += p.byteLength;
    }
    return this.#handle.writePacked(bytes, lens, count);
  }

  /**
   * The fastest way to write: `count` packets back to back in `bytes` (packet i is the
   * `lengths[i]` bytes after packet i-1), one write(2) each, in one crossing into native code with
   * no per-packet look-ups. Returns how many were written; like writeBatch, throws only if the
   * first one fails, and throws without writing any if the lengths add up to more than `bytes`.
   * `count` defaults to lengths.length.
   */
  writePacked(bytes: Uint8Array, lengths: Uint32Array, count: number = lengths.length): number {
    if (!(bytes instanceof Uint8Array)) throw invalidArg('writePacked expects a Buffer or Uint8Array of packets', 'type');
    if (!(lengths instanceof Uint32Array)) throw invalidArg('writePacked expects a Uint32Array of lengths', 'type');
    if (!Number.isInteger(count) || count < 0 || count > lengths.length) {
      throw invalidArg(`writePacked: count must be a whole number in 0..${lengths.length} (the lengths given)`, 'range');
    }
    return this.#handle.writePacked(bytes, lengths, count);
  }

  /**
   * Writes every packet of a list (a PacketBatch lent by another Tun's reader, a PacketArena, or
   * any { buffer, offsets, lengths, count }) in one crossing, one write(2) each, without copying:
   * forwarding a batch from one Tun to another. Returns how many were written; like writeBatch,
   * throws only if the first one fails, and throws without writing any if a packet lies outside
   * the buffer.
   */
  writeList(list: PacketList): number {
    if (typeof list !== 'object' || list === null || !(list.buffer instanceof Uint8Array)) {
      throw invalidArg('writeList expects a packet list ({ buffer, offsets, lengths, count })', 'type');
    }
    return this.#handle.writeVectors(list.buffer, list.offsets, list.lengths, list.count);
  }

  /**
   * The offloads set on this fd (what the kernel may hand this reader unsegmented and without
   * checksums); null without vnetHdr. With offload: 'auto', uso4/uso6 say whether the kernel took
   * UDP segmentation offload.
   */
  get offload(): Readonly<Required<TunOffload>> | null {
    return this.#offload;
  }

  /**
   * The wire packets a list read from this Tun stands for (see segment() in offload.ts): GSO
   * super-packets split into segments with every header and checksum set, partial checksums
   * completed, virtio-net headers gone. Without vnetHdr, or for a batch a segmenting reader lent
   * (batch.segmented), the packets are already wire packets and the list comes back as it is.
   * The result lives in an arena of this Tun, valid until the next segment() call. Reading with
   * `{ segment: true }` does this work on the reader thread instead (ReadOptions.segment).
   */
  segment(list: PacketList): PacketList {
    if (!this.vnetHdr || (list instanceof PacketBatch && list.segmented)) return list;
    this.#checkIpOffload('segment');
    this.#segments ??= new PacketArena();
    return segment(list, this.#segments);
  }

  /**
   * Writes wire packets (no virtio-net headers) with as few writes as GRO allows: runs of one TCP
   * flow (and UDP flows, when the kernel took uso4/uso6 on this fd) go as one super-packet each,
   * the rest one by one with an empty header. Without vnetHdr, one write per packet. Returns the
   * number of writes made; throws only if the first one fails.
   */
  writeCoalesced(list: PacketList): number {
    if (!this.vnetHdr) return this.writeList(list);
    this.#checkIpOffload('writeCoalesced');
    this.#coalesced ??= new PacketArena();
    const out = coalesce(list, { udp: this.#offload?.uso4 === true }, this.#coalesced);
    return this.#handle.writeVectors(out.buffer, out.offsets, out.lengths, out.count);
  }

  setPersist(on: boolean): void {
    if (typeof on !== 'boolean') throw invalidArg('setPersist expects a boolean', 'type');
    this.#handle.setPersist(on);
  }

  setOwner(uid: number): void {
    this.#handle.setOwner(validateId('owner', uid));
  }

  setGroup(gid: number): void {
    this.#handle.setGroup(validateId('group', gid));
  }

  setOffload(offload: TunOffload): void {
    const bits = offloadBits(offload);
    if (!this.vnetHdr) {
      throw nativeError('EINVAL', 'ioctl(TUNSETOFFLOAD)', `set offloads on ${this.#label()}`, 'it was opened without vnetHdr, which offloads need');
    }
    this.#handle.setOffload(bits);
    this.#offload = offloadFromBits(bits);
  }

  stats(): TunStats {
    const stats = this.#handle.stats();
    stats.malformed += this.#leftoverMalformed;
    return stats;
  }

  /** An active reader keeps the process alive (the default). */
  ref(): void {
    this.#handle.setRef(true);
  }

  /** An active reader no longer keeps the process alive. */
  unref(): void {
    this.#handle.setRef(false);
  }

  /**
   * Stops the reader (a pending packets() iteration completes) and closes the fd; a device that is
   * not persistent goes away with its last fd. Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    const consumer = this.#consumer;
    this.#consumer = undefined;
    this.#closing = this.#handle.close();
    this.#end(consumer, undefined);
    return this.#closing;
  }

  // Segmenting and coalescing work on IP packets right after the virtio-net header.
  #checkIpOffload(what: string): void {
    if (this.mode !== 'tun' || this.packetInfo) {
      throw invalidArg(`${what} works on IP packets after a virtio-net header: a tun device without packetInfo, not ${this.#label()}${this.packetInfo ? ' with packet info' : ''}`);
    }
  }

  #label(): string {
    return `${this.mode} device '${this.name}'`;
  }

  #checkCanRead(): void {
    if (this.closed) throw nativeError('EBADF', 'read', `read from ${this.#label()}`, 'the handle is closed');
    if (this.#consumer) {
      throw new Error(`a reader is already active on ${this.#label()}; stop it (or leave its loop) before starting another`);
    }
  }

  // Validates ReadOptions; true when the reader thread is to segment (a vnetHdr Tun).
  #segmentOption(options: ReadOptions | undefined): boolean {
    if (options === undefined) return false;
    if (typeof options !== 'object' || options === null) throw invalidArg('read options must be an object ({ segment })', 'type');
    if (options.segment !== undefined && typeof options.segment !== 'boolean') throw invalidArg('read option segment must be a boolean', 'type');
    if (options.segment !== true || !this.vnetHdr) return false;
    this.#checkIpOffload('a segmenting reader');
    return true;
  }

  #consumerOptions(what: string, endOrOptions: ((error?: NativeError) => void) | ConsumerOptions | undefined): { onEnd: OnEnd; segment: boolean } {
    if (endOrOptions === undefined || typeof endOrOptions === 'function') return { onEnd: endOrOptions, segment: false };
    if (typeof endOrOptions !== 'object' || endOrOptions === null) throw invalidArg(`${what}: the second argument is onEnd or options ({ onEnd, segment })`, 'type');
    const { onEnd } = endOrOptions;
    if (onEnd !== undefined && typeof onEnd !== 'function') throw invalidArg(`${what}: onEnd must be a function`, 'type');
    return { onEnd, segment: this.#segmentOption(endOrOptions) };
  }

  #attach(consumer: Consumer, segment: boolean): void {
    this.#readerBatch();
    this.#consumer = consumer;
    this.#handle.setPaused(false);
    try {
      this.#handle.startReader(this.#onNative, segment);
    } catch (e) {
      this.#consumer = undefined;
      throw e;
    }
  }

  #detach(consumer: Consumer): void {
    if (this.#consumer !== consumer) return;
    this.#consumer = undefined;
    this.#handle.stopReader();
  }

  #end(consumer: Consumer | undefined, error: NativeError | undefined): void {
    if (!consumer) return;
    if (consumer.kind === 'iterator') consumer.iterator.end(error);
    else consumer.onEnd?.(error);
  }

  // A batch a previous reader in the other mode left queued (restarted with the other `segment`),
  // copied in the form this consumer asked for: a Buffer carries no flag, so handing it over as it
  // is would pass super-packets with virtio-net headers off as wire packets, or the reverse.
  // Wire packets wanted: split here, on the JS thread (only leftovers, at most queueLimit, take
  // this path). Packets as the kernel hands them over wanted: each wire packet after an all-zero
  // virtio-net header, which is exactly how the kernel hands over a packet with no offload
  // pending (its checksums are complete: the reader thread completed them).
  #convert(batch: PacketBatch, wantSegmented: boolean): Buffer[] {
    if (wantSegmented) {
      const stats = { invalid: 0 };
      const out = segment(batch, (this.#leftovers ??= new PacketArena()), stats);
      this.#leftoverMalformed += stats.invalid;
      return out.copyAll();
    }
    const packets = new Array<Buffer>(batch.count);
    for (let i = 0; i < batch.count; i++) {
      const start = batch.offsets[i] as number;
      const length = batch.lengths[i] as number;
      const out = Buffer.alloc(VNET_HDR_LEN + length);
      batch.buffer.copy(out, VNET_HDR_LEN, start, start + length);
      packets[i] = out;
    }
    return packets;
  }

  // The batch the reader lends; the addon's views are fetched once per handle.
  #readerBatch(): PacketBatch {
    if (!this.#batch) {
      const [ring, slots] = this.#handle.readerViews();
      this.#batch = new PacketBatch(ring, slots, this.#request.readBatch);
    }
    return this.#batch;
  }

  // Called by the addon once per batch (its packets lent in the batch views until this returns),
  // and once with -1 when the reader ends by itself. Never throws into native code: an exception
  // from user code is rethrown on the next tick, where it is an ordinary uncaught exception.
  readonly #onNative = (count: number, error?: NativeError): void => {
    const batch = this.#batch as PacketBatch;
    try {
      const consumer = this.#consumer;
      if (count < 0) {
        this.#consumer = undefined;
        this.#handle.stopReader();
        this.#end(consumer, error);
        return;
      }
      if (!consumer) return;
      batch.setCount(count);
      if (consumer.kind === 'batches') consumer.onBatch(batch);
      else {
        const packets = batch.segmented === consumer.segment ? batch.copyAll() : this.#convert(batch, consumer.segment);
        if (consumer.kind === 'iterator') consumer.iterator.push(packets);
        else consumer.onBatch(packets);
      }
    } catch (e) {
      process.nextTick(() => {
        throw e;
      });
    } finally {
      batch.setCount(0);
    }
  };
}
