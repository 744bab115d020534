/**
 * Packets as Buffers of their own, and the pull-based packet iterator.
 *
 * Buffer.from(ab, off, len) and buf.subarray() cost about 100 ns per packet in Node 20 (argument
 * checks, species lookup); constructing a Uint8Array subclass whose prototype is Buffer.prototype
 * costs about half that, and is what Node's own FastBuffer is: `instanceof Buffer`,
 * Buffer.isBuffer() and every Buffer method work on it, and its `constructor` is Buffer like any
 * other Buffer's.
 */

class PacketBuffer extends Uint8Array {}
Object.setPrototypeOf(PacketBuffer.prototype, Buffer.prototype);
Object.defineProperty(PacketBuffer.prototype, 'constructor', { value: Buffer, writable: true, configurable: true });

/** A Buffer over `length` bytes of `memory` at `offset` (no copy). */
export function bufferView(memory: ArrayBuffer, offset: number, length: number): Buffer {
  return new PacketBuffer(memory, offset, length) as unknown as Buffer;
}

interface Waiter {
  resolve: (r: IteratorResult<Buffer>) => void;
  reject: (e: unknown) => void;
}

/** What the iterator needs from its Tun: pausing native deliveries, and letting go of the reader. */
export interface PacketSource {
  pause(paused: boolean): void;
  detach(): void;
}

/**
 * The AsyncIterableIterator of Tun.packets(). It buffers at most about one batch in JS: when a
 * delivered batch leaves `highWater` packets waiting, it pauses native deliveries, and resumes
 * them when the consumer has taken everything. While paused, packets wait in the native queue
 * (bounded: beyond queueLimit they are dropped and counted), never in an unbounded JS array.
 */
export class PacketIterator implements AsyncIterableIterator<Buffer> {
  private batches: Buffer[][] = [];
  private head = 0; // index into batches[0]
  private buffered = 0;
  private paused = false;
  private finished = false;
  private failure: Error | undefined;
  // next() calls waiting for packets, oldest first (callers may call next() without awaiting).
  private waiters: Waiter[] = [];

  constructor(
    private readonly source: PacketSource,
    private readonly highWater: number,
  ) {}

  /** A native batch (from the Tun). */
  push(packets: Buffer[]): void {
    if (this.finished || packets.length === 0) return;
    let i = 0;
    while (i < packets.length && this.waiters.length > 0) {
      (this.waiters.shift() as Waiter).resolve({ value: packets[i++] as Buffer, done: false });
    }
    if (i < packets.length) {
      this.batches.push(i === 0 ? packets : packets.slice(i));
      this.buffered += packets.length - i;
    }
    if (this.buffered >= this.highWater && !this.paused) {
      this.paused = true;
      this.source.pause(true);
    }
  }

  /** The reader ended (error) or the Tun was closed (no error). Buffered packets are still served. */
  end(error?: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = error;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) this.settle(w);
  }

  next(): Promise<IteratorResult<Buffer>> {
    if (this.buffered > 0) {
      const batch = this.batches[0] as Buffer[];
      const value = batch[this.head++] as Buffer;
      this.buffered--;
      if (this.head === batch.length) {
        this.batches.shift();
        this.head = 0;
      }
      if (this.buffered === 0 && this.paused && !this.finished) {
        this.paused = false;
        this.source.pause(false);
      }
      return Promise.resolve({ value, done: false });
    }
    return new Promise((resolve, reject) => {
      if (this.finished) this.settle({ resolve, reject });
      else this.waiters.push({ resolve, reject });
    });
  }

  /** Leaving a for-await loop (break, return, throw) ends the iteration and frees the reader. */
  return(): Promise<IteratorResult<Buffer>> {
    if (!this.finished) {
      this.finished = true;
      this.source.detach();
    }
    this.batches = [];
    this.buffered = 0;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return this;
  }

  private settle(w: Waiter): void {
    if (this.failure) {
      const err = this.failure;
      this.failure = undefined; // reported once; afterwards the iterator is simply done
      w.reject(err);
    } else {
      w.resolve({ value: undefined, done: true });
    }
  }
}
