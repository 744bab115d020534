/**
 * Which request each sequence number in flight belongs to, without an object per request.
 *
 * The scheduler hands out sequence numbers consecutively while it writes a job's requests one
 * after the other, so what is in flight is a short list of runs ("segments"): job J, requests
 * i..i+n, sent as seq s..s+n. An answer's seq finds its segment by a scan that almost always stops
 * at the first one (the kernel answers in order), and its request by subtraction. Programming
 * 65k routes then costs a handful of segments instead of 65k map entries and their garbage.
 */
import type { BatchResult, RtnlRequest } from './ops/request.js';
import { ACK_BUDGET } from './ops/request.js';

export interface RequestJob {
  readonly kind: 'requests';
  readonly requests: readonly RtnlRequest[];
  /** Next request to send. */
  next: number;
  /** Requests not yet settled. */
  remaining: number;
  /** Filled as requests settle; a hole means "not settled yet". */
  readonly results: BatchResult[];
  /** Data replies (GET requests), by request index. */
  replies?: Map<number, unknown[]>;
  readonly resolve: (results: BatchResult[]) => void;
}

export interface Segment {
  readonly job: RequestJob;
  readonly firstSeq: number;
  readonly firstIndex: number;
  /** Requests in the run. */
  count: number;
  /** Of those, not yet settled. */
  open: number;
}

export function budgetOf(req: RtnlRequest): number {
  return req.replyBudget ?? ACK_BUDGET;
}

export class InFlightTable {
  #segs: Segment[] = [];
  #head = 0;
  /** The segment the scheduler is extending (undefined: the next add starts a new one). */
  #tail: Segment | undefined;
  /** Requests sent and not yet settled. */
  count = 0;
  /** Receive-buffer bytes their answers may take. */
  budget = 0;

  /** Records request `index` of `job`, sent with `seq`. */
  add(job: RequestJob, index: number, seq: number): void {
    const t = this.#tail;
    if (t !== undefined && t.job === job && t.firstIndex + t.count === index && ((t.firstSeq + t.count) >>> 0) === seq) {
      t.count++;
      t.open++;
    } else {
      const s: Segment = { job, firstSeq: seq, firstIndex: index, count: 1, open: 1 };
      this.#segs.push(s);
      this.#tail = s;
    }
    this.count++;
    this.budget += budgetOf(job.requests[index]!);
  }

  /** Makes the next add start a new segment (a request was skipped, or a send boundary). */
  cut(): void {
    this.#tail = undefined;
  }

  /** The segment holding `seq`, if its request is still unsettled; the request is find's index. */
  find(seq: number): Segment | undefined {
    const segs = this.#segs;
    for (let i = this.#head; i < segs.length; i++) {
      const s = segs[i]!;
      const off = (seq - s.firstSeq) >>> 0;
      if (off < s.count) {
        return s.open > 0 && s.job.results[s.firstIndex + off] === undefined ? s : undefined;
      }
    }
    return undefined;
  }

  /** Index of the request sent with `seq` in segment s. */
  static indexOf(s: Segment, seq: number): number {
    return s.firstIndex + ((seq - s.firstSeq) >>> 0);
  }

  /** Accounts for one settled request of segment s (the caller has stored its result). */
  release(s: Segment, index: number): void {
    s.open--;
    this.count--;
    this.budget -= budgetOf(s.job.requests[index]!);
    if (s.open === 0) this.#compact();
  }

  /** Every unsettled request in flight, oldest first (for failing them all). */
  unsettled(): Array<[Segment, number]> {
    const out: Array<[Segment, number]> = [];
    for (let i = this.#head; i < this.#segs.length; i++) {
      const s = this.#segs[i]!;
      if (s.open === 0) continue;
      for (let k = 0; k < s.count; k++) if (s.job.results[s.firstIndex + k] === undefined) out.push([s, s.firstIndex + k]);
    }
    return out;
  }

  /**
   * The unsettled requests sent with seqs in [first, first + span) (seq arithmetic mod 2^32),
   * oldest first.
   */
  unsettledInRange(first: number, span: number): Array<[Segment, number]> {
    const out: Array<[Segment, number]> = [];
    for (let i = this.#head; i < this.#segs.length; i++) {
      const s = this.#segs[i]!;
      if (s.open === 0) continue;
      for (let k = 0; k < s.count; k++) {
        if (((s.firstSeq + k - first) >>> 0) >= span) continue;
        if (s.job.results[s.firstIndex + k] === undefined) out.push([s, s.firstIndex + k]);
      }
    }
    return out;
  }

  #compact(): void {
    const segs = this.#segs;
    while (this.#head < segs.length && segs[this.#head]!.open === 0) {
      if (segs[this.#head] === this.#tail) this.#tail = undefined;
      this.#head++;
    }
    if (this.#head === segs.length) {
      segs.length = 0;
      this.#head = 0;
    } else if (this.#head > 64 && this.#head * 2 > segs.length) {
      segs.splice(0, this.#head);
      this.#head = 0;
    }
  }
}
