/**
 * Rtnl: the rtnetlink request/ack/dump client.
 *
 * One socket, one scheduler. Work is queued in order and sent pipelined: as many requests as the
 * receive buffer can hold the answers of go out in ONE send() (written back to back into one
 * reused buffer), and the window refills as answers come back. Answers are matched to requests
 * by sequence number. By default a request does not ask for an ack: the kernel answers the ones
 * that fail (always, with errno and ext-ack), and each send ends with an NLMSG_NOOP that does ask
 * for one — a barrier: the kernel answers a send's messages in order, so once the barrier's ack
 * is in, every request before it without an error succeeded (`ackEach` asks an ack of every
 * request instead). A dump runs alone (the kernel runs one dump per socket at a time) and
 * completes only on NLMSG_DONE; if any part of it carried NLM_F_DUMP_INTR it is run again, a
 * bounded number of times, and an interrupted result is never returned.
 *
 * Why the window is counted in receive-buffer bytes: the kernel charges each queued answer its
 * skb truesize (~830 bytes for a 36-byte ack or error) and silently drops answers once the buffer
 * is full, reporting only ENOBUFS — then every request in flight is failed as "outcome unknown",
 * never reported as a success. The window assumes every request may fail and be answered.
 */
import { decodeDoneMessage, decodeErrorMessage } from './codec/ack.js';
import { NetlinkWriter } from './codec/writer.js';
import type { AddressMessage } from './codec/address.js';
import type { LinkMessage } from './codec/link.js';
import type { NeighbourMessage } from './codec/neighbour.js';
import type { RouteMessage } from './codec/route.js';
import type { RuleMessage } from './codec/rule.js';
import { NLM_F_ACK, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_NOOP } from './constants/netlink.js';
import { openNetlinkTransport, type NetlinkTransport } from './client-transport.js';
import {
  addressDump,
  linkDump,
  neighbourDump,
  routeDump,
  ruleDump,
  type AddressFilter,
  type DumpSpec,
  type LinkFilter,
  type NeighbourFilter,
  type RouteFilter,
  type RuleFilter,
} from './client-dumps.js';
import { EBADF, ENOBUFS, ENODEV, EPROTO, ETIMEDOUT, EINVAL, NetlinkDumpInterruptedError, NetlinkRequestError, type NetlinkRequestErrorInit } from './errors.js';
import { ACK_BUDGET, type BatchResult, type RtnlRequest } from './ops/request.js';
import { InFlightTable, budgetOf, type RequestJob, type Segment } from './client-inflight.js';
import { addAddress, deleteAddress, replaceAddress, type AddressKey, type AddressSpec } from './ops/address.js';
import { deleteLink, getLink, setLink, type LinkRef, type LinkSetSpec } from './ops/link.js';
import { addRoute, deleteRoute, getRoute, replaceRoute, type RouteGetOptions, type RouteKey, type RouteSpec } from './ops/route.js';

export interface RtnlOptions {
  /** Network namespace name (/run/netns/NAME) or path: the socket is opened there. */
  netns?: string;
  /** Receive buffer to ask for, bytes (default 4 MiB, SO_RCVBUFFORCE when permitted). */
  rcvbuf?: number;
  /** Send buffer to ask for, bytes (default 1 MiB): bigger chunks, fewer send() calls. */
  sndbuf?: number;
  /** An already open transport (e.g. the fake socket of netlink/testing) instead of a real socket. */
  transport?: NetlinkTransport;
  /** How many times an interrupted dump (NLM_F_DUMP_INTR) is run before failing; default 5. */
  dumpAttempts?: number;
  /** Cap on requests in flight (default: as many as the receive buffer holds the answers of). */
  maxInFlight?: number;
  /**
   * Ask an ack of every request (NLM_F_ACK on each). Default false: requests go without
   * NLM_F_ACK, so the kernel answers only the ones that FAIL (it always reports errors), and each
   * send ends with an NLMSG_NOOP that does ask for an ack. The kernel handles a send's messages in
   * order and queues their answers in order, so when that ack arrives every request before it
   * that got no error has succeeded. Same information, one answer per send instead of one per
   * request: 65k route adds read 15 acks, not 65k datagrams.
   */
  ackEach?: boolean;
  /**
   * Fails what is in flight when the kernel has said nothing for this long (default 60 s; 0 never).
   * The kernel always answers; this guards against a transport that lost an answer.
   */
  timeoutMs?: number;
}

interface DumpJob {
  readonly kind: 'dump';
  readonly spec: DumpSpec<unknown>;
  attempts: number;
  seq: number;
  items: unknown[];
  interrupted: boolean;
  readonly resolve: (items: unknown[]) => void;
  readonly reject: (e: Error) => void;
}

type Job = RequestJob | DumpJob;

/** Bytes kept free in a chunk so the next message always fits without exceeding the send buffer. */
const CHUNK_MARGIN = 8192;
const MAX_CHUNK = 1 << 20;
const MAX_IN_FLIGHT = 8192;

export class Rtnl {
  readonly #t: NetlinkTransport;
  readonly #dumpAttempts: number;
  readonly #timeoutMs: number;
  /** Receive-buffer bytes the answers in flight may take. */
  #maxBudget: number;
  readonly #maxInFlight: number;
  readonly #maxChunk: number;
  readonly #writer = new NetlinkWriter(64 * 1024);

  readonly #queue: Job[] = [];
  #queueHead = 0;
  readonly #table = new InFlightTable();
  /** First seq and number of requests of the chunk being written. */
  #chunkFirst = 0;
  #chunkCount = 0;
  /** Requests in the chunk sent without NLM_F_ACK: a barrier must follow them. */
  #chunkSilent = 0;
  readonly #ackEach: boolean;
  /** Barriers sent and not yet acked: [seq, first seq covered, seqs covered], oldest first. */
  #barriers: Array<[number, number, number]> = [];
  #dump: DumpJob | undefined;
  #seq = 0;
  #pumpQueued = false;
  #closed = false;
  /** A started socket keeps the process alive until told otherwise. */
  #refed = true;
  #watchdog: NodeJS.Timeout | undefined;
  #lastProgress = 0;

  private constructor(t: NetlinkTransport, opts: RtnlOptions) {
    this.#t = t;
    this.#dumpAttempts = Math.max(1, opts.dumpAttempts ?? 5);
    this.#timeoutMs = opts.timeoutMs ?? 60_000;
    this.#ackEach = opts.ackEach === true;
    // Use three quarters of the buffer: the kernel's truesize per answer varies a little.
    this.#maxBudget = Math.max(ACK_BUDGET, Math.floor((t.rcvbuf * 3) / 4));
    this.#maxInFlight = Math.max(1, Math.min(opts.maxInFlight ?? MAX_IN_FLIGHT, MAX_IN_FLIGHT));
    this.#maxChunk = Math.max(4096, Math.min(MAX_CHUNK, t.sndbuf - 32) - CHUNK_MARGIN);
    this.#seq = (Math.random() * 0x7fffffff) >>> 0;
    this.#chunkFirst = Rtnl.#after(this.#seq);
    t.start({
      data: (datagrams) => this.#onData(datagrams),
      overflow: () => this.#onOverflow(),
      error: (err) => this.#onError(err),
    });
    this.#setRef(false);
  }

  /** Opens a client (its socket inside `netns` when given). */
  static async open(opts: RtnlOptions = {}): Promise<Rtnl> {
    const t =
      opts.transport ??
      (await openNetlinkTransport({
        ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
        rcvbuf: opts.rcvbuf ?? 4 << 20,
        sndbuf: opts.sndbuf ?? 1 << 20,
      }));
    return new Rtnl(t, opts);
  }

  /** Opens a client, runs fn with it, closes it however fn ends. */
  static async with<T>(opts: RtnlOptions, fn: (rtnl: Rtnl) => Promise<T>): Promise<T> {
    const rtnl = await Rtnl.open(opts);
    try {
      return await fn(rtnl);
    } finally {
      rtnl.close();
    }
  }

  /** Effective receive buffer of the socket (bytes). */
  get rcvbuf(): number {
    return this.#t.rcvbuf;
  }

  /** Requests sent whose answer has not arrived yet. */
  get inFlight(): number {
    return this.#table.count;
  }

  get closed(): boolean {
    return this.#closed;
  }

  // ---- dumps ----

  /** Links: all, or one by ifindex / ifname (then [] when it does not exist), or by kind / master. */
  async links(filter: LinkFilter = {}): Promise<LinkMessage[]> {
    if (filter.ifindex !== undefined || filter.ifname !== undefined) {
      const ref: LinkRef = {};
      if (filter.ifindex !== undefined) ref.ifindex = filter.ifindex;
      if (filter.ifname !== undefined) ref.ifname = filter.ifname;
      const link = await this.link(ref);
      const keep = linkDump({ ...(filter.kind !== undefined ? { kind: filter.kind } : {}), ...(filter.master !== undefined ? { master: filter.master } : {}) }).keep;
      if (link === undefined) return [];
      if (filter.ifname !== undefined && link.ifname !== filter.ifname) return [];
      return keep === undefined || keep(link) ? [link] : [];
    }
    return this.dump(linkDump(filter));
  }

  /** One link, or undefined when there is none with that index / name. */
  async link(ref: LinkRef): Promise<LinkMessage | undefined> {
    const [r] = await this.batch([getLink(ref)]);
    if (!r!.ok) {
      if (r!.error.errno === ENODEV) return undefined;
      throw r!.error;
    }
    return r!.replies?.[0] as LinkMessage | undefined;
  }

  /** Addresses, optionally of one link and/or one family. */
  addresses(filter: AddressFilter = {}): Promise<AddressMessage[]> {
    return this.dump(addressDump(filter));
  }

  /** Routes, optionally of one family / table / protocol / type / output link. */
  routes(filter: RouteFilter = {}): Promise<RouteMessage[]> {
    return this.dump(routeDump(filter));
  }

  neighbours(filter: NeighbourFilter = {}): Promise<NeighbourMessage[]> {
    return this.dump(neighbourDump(filter));
  }

  rules(filter: RuleFilter = {}): Promise<RuleMessage[]> {
    return this.dump(ruleDump(filter));
  }

  /** Runs any dump: the complete, consistent list, or a NetlinkRequestError. */
  dump<T>(spec: DumpSpec<T>): Promise<T[]> {
    if (this.#closed) return Promise.reject(this.#closedError(spec.operation, spec.target));
    return new Promise<T[]>((resolve, reject) => {
      const job: DumpJob = {
        kind: 'dump',
        spec: spec as DumpSpec<unknown>,
        attempts: 0,
        seq: 0,
        items: [],
        interrupted: false,
        resolve: resolve as (items: unknown[]) => void,
        reject,
      };
      this.#enqueue(job);
    });
  }

  // ---- requests ----

  /**
   * Sends every request pipelined — many per send(), bounded by the receive buffer — and
   * resolves with one result per request, in order, once all are answered. A failed request
   * does not stop the others and does not reject: its result holds the NetlinkRequestError.
   */
  batch(requests: readonly RtnlRequest[]): Promise<BatchResult[]> {
    const results = new Array<BatchResult>(requests.length);
    if (this.#closed) {
      requests.forEach((req, i) => (results[i] = failed(this.#closedError(req.operation, safeTarget(req)))));
      return Promise.resolve(results);
    }
    if (requests.length === 0) return Promise.resolve(results);
    return new Promise<BatchResult[]>((resolve) => {
      this.#enqueue({ kind: 'requests', requests, next: 0, remaining: requests.length, results, resolve });
    });
  }

  /** One request; rejects with its NetlinkRequestError. Concurrent calls are pipelined together. */
  async request(req: RtnlRequest): Promise<unknown[]> {
    const [r] = await this.batch([req]);
    if (!r!.ok) throw r!.error;
    return r!.replies ?? [];
  }

  async setLink(spec: LinkSetSpec): Promise<void> {
    await this.request(setLink(spec));
  }
  async deleteLink(ref: LinkRef): Promise<void> {
    await this.request(deleteLink(ref));
  }
  async addAddress(spec: AddressSpec): Promise<void> {
    await this.request(addAddress(spec));
  }
  async replaceAddress(spec: AddressSpec): Promise<void> {
    await this.request(replaceAddress(spec));
  }
  async deleteAddress(key: AddressKey): Promise<void> {
    await this.request(deleteAddress(key));
  }
  async addRoute(spec: RouteSpec): Promise<void> {
    await this.request(addRoute(spec));
  }
  async replaceRoute(spec: RouteSpec): Promise<void> {
    await this.request(replaceRoute(spec));
  }
  async deleteRoute(key: RouteKey): Promise<void> {
    await this.request(deleteRoute(key));
  }

  /**
   * The kernel's own route lookup for one destination, `ip route get DST [oif..] [fibmatch]`:
   * the route a packet to `dst` (address text, or its 4 or 16 bytes) would take, after policy
   * rules and longest-prefix match. Without fibMatch the answer is the resolved result, a host
   * route (/32, flagged RTM_F_CLONED; /128 for IPv6) with oif, gateway, prefsrc and the table the
   * rules chose; with fibMatch it is the FIB entry that matched: its real prefix, protocol,
   * scope, table and next hops. Rejects with a NetlinkRequestError carrying the kernel's errno
   * and ext-ack text (ENETUNREACH when nothing routes it, EHOSTUNREACH when no FIB entry matches
   * a lookup bound to a link, ENODEV for a missing IPv4 link...). Concurrent lookups are
   * pipelined together; getRoute() builds the request for a batch.
   */
  async getRoute(dst: string | Uint8Array, opts: RouteGetOptions = {}): Promise<RouteMessage> {
    const req = getRoute({ ...opts, dst });
    const [route] = await this.request(req);
    if (route === undefined) {
      throw new NetlinkRequestError({ errno: EPROTO, operation: req.operation, target: safeTarget(req), detail: 'the kernel acknowledged the lookup without a route in answer' });
    }
    return route as RouteMessage;
  }

  /** Closes the socket; everything pending fails with EBADF. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#t.close();
    this.#failAll((op, target) => this.#closedError(op, target));
    this.#stopWatchdog();
  }

  // ---- scheduling ----

  #enqueue(job: Job): void {
    this.#queue.push(job);
    this.#setRef(true);
    if (!this.#pumpQueued) {
      this.#pumpQueued = true;
      // Requests made in the same tick go out together in one send().
      queueMicrotask(() => {
        this.#pumpQueued = false;
        this.#pump();
      });
    }
  }

  /** The seq after `seq`, skipping 0 (the kernel's own notifications carry seq 0). */
  static #after(seq: number): number {
    const n = (seq + 1) >>> 0;
    return n === 0 ? 1 : n;
  }

  /** Sends what the window allows, in as few send() calls as possible. */
  #pump(): void {
    if (this.#closed) return;
    const w = this.#writer;
    const table = this.#table;
    w.reset();
    this.#chunkFirst = Rtnl.#after(this.#seq);
    this.#chunkCount = 0;
    this.#chunkSilent = 0;
    while (this.#queueHead < this.#queue.length && this.#dump === undefined) {
      const job = this.#queue[this.#queueHead]!;
      if (job.kind === 'dump') {
        // A dump runs alone: its output and pending acks would share the buffer.
        if (table.count > 0 || this.#chunkCount > 0) break;
        this.#queueHead++;
        this.#startDump(job);
        break;
      }
      let full = false;
      while (job.next < job.requests.length) {
        const req = job.requests[job.next]!;
        // Each barrier in flight will take an answer too; one more is needed for this chunk.
        const pending = table.budget + (this.#barriers.length + 1) * ACK_BUDGET;
        if (table.count > 0 && (pending + budgetOf(req) > this.#maxBudget || table.count + this.#barriers.length >= this.#maxInFlight)) {
          full = true;
          break;
        }
        if (w.pos >= this.#maxChunk) this.#flush();
        const index = job.next++;
        const seq = Rtnl.#after(this.#seq);
        const start = w.pos;
        try {
          req.write(w, seq);
        } catch (e) {
          // Not sent, seq not used: the run of seqs → requests must skip this one.
          w.pos = start;
          table.cut();
          this.#settle(job, index, failed(new NetlinkRequestError({ errno: EINVAL, operation: req.operation, target: safeTarget(req), detail: e instanceof Error ? e.message : String(e), cause: e })));
          continue;
        }
        if (!this.#ackEach && req.decodeReply === undefined) {
          // Errors are always answered; success is implied by the barrier after the chunk.
          w.buf.writeUInt16LE(w.buf.readUInt16LE(start + 6) & ~NLM_F_ACK, start + 6);
          this.#chunkSilent++;
        }
        this.#seq = seq;
        this.#chunkCount++;
        table.add(job, index, seq);
      }
      if (full) break;
      this.#queueHead++;
    }
    this.#flush();
    table.cut();
    this.#compactQueue();
    this.#updateIdle();
  }

  /** Sends the chunk written so far as one datagram (with its barrier). */
  #flush(): void {
    const w = this.#writer;
    if (w.pos === 0) return;
    let barrier = 0;
    if (this.#chunkSilent > 0) {
      barrier = this.#seq = Rtnl.#after(this.#seq);
      w.endMessage(w.beginMessage({ type: NLMSG_NOOP, flags: NLM_F_REQUEST | NLM_F_ACK, seq: barrier }));
      // Covers every seq from the chunk's first request to the barrier itself.
      this.#barriers.push([barrier, this.#chunkFirst, ((barrier - this.#chunkFirst) >>> 0) + 1]);
    }
    try {
      this.#t.send(w.view());
    } catch (e) {
      if (barrier !== 0) this.#barriers.pop();
      const errno = errnoOf(e);
      for (const [seg, index] of this.#table.unsettledInRange(this.#chunkFirst, ((this.#seq - this.#chunkFirst) >>> 0) + 1)) {
        const req = seg.job.requests[index]!;
        this.#finish(seg, index, failed(new NetlinkRequestError({ errno, operation: req.operation, target: safeTarget(req), detail: 'send failed', cause: e })));
      }
    }
    w.reset();
    this.#chunkFirst = Rtnl.#after(this.#seq);
    this.#chunkCount = 0;
    this.#chunkSilent = 0;
    this.#table.cut();
    this.#touch();
  }

  #startDump(job: DumpJob): void {
    job.attempts++;
    job.seq = this.#seq = Rtnl.#after(this.#seq);
    job.items = [];
    job.interrupted = false;
    this.#dump = job;
    const w = this.#writer;
    w.reset();
    try {
      job.spec.write(w, job.seq);
      this.#t.send(w.view());
    } catch (e) {
      this.#dump = undefined;
      w.reset();
      const errno = e instanceof Error && 'errno' in e && typeof e.errno === 'number' ? Math.abs(e.errno) : EINVAL;
      job.reject(new NetlinkRequestError({ errno, operation: job.spec.operation, target: job.spec.target, detail: e instanceof Error ? e.message : String(e), cause: e }));
      return;
    }
    w.reset();
    this.#touch();
  }

  #compactQueue(): void {
    if (this.#queueHead === this.#queue.length) {
      this.#queue.length = 0;
      this.#queueHead = 0;
    } else if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#queueHead);
      this.#queueHead = 0;
    }
  }

  // ---- receiving ----

  #onData(datagrams: Buffer[]): void {
    if (this.#closed) return;
    this.#touch();
    for (const d of datagrams) {
      const n = d.length;
      let off = 0;
      // Header fields are read in place: a 65k-route dump is 65k messages, and this loop must not
      // allocate per message for what it only routes by seq.
      while (n - off >= NLMSG_HDRLEN) {
        const len = d.readUInt32LE(off);
        if (len < NLMSG_HDRLEN || len > n - off) break; // cannot be attributed; see the watchdog
        this.#onMessage(d, off, len, d.readUInt16LE(off + 4), d.readUInt16LE(off + 6), d.readUInt32LE(off + 8));
        off += (len + 3) & ~3;
      }
    }
    // Refill when half the window is free, so each send() carries a big chunk.
    const t = this.#table;
    if (this.#dump === undefined && (t.count === 0 || t.budget + this.#barriers.length * ACK_BUDGET <= this.#maxBudget / 2)) this.#pump();
    else this.#updateIdle();
  }

  #onMessage(buf: Buffer, off: number, len: number, type: number, flags: number, seq: number): void {
    const dump = this.#dump;
    if (dump !== undefined && seq === dump.seq) {
      this.#onDumpMessage(dump, buf, off, len, type, flags);
      return;
    }
    if (type === NLMSG_ERROR && this.#barriers.length > 0 && this.#onBarrier(buf, off, len, seq)) return;
    const seg = this.#table.find(seq);
    if (seg === undefined) return; // late answer to something already failed, or not ours
    const index = InFlightTable.indexOf(seg, seq);
    const job = seg.job;
    const req = job.requests[index]!;
    if (type === NLMSG_ERROR) {
      // The common case, an ack, needs no decoding: its error field is 0.
      if (len >= NLMSG_HDRLEN + 4 && buf.readInt32LE(off + NLMSG_HDRLEN) === 0) {
        const replies = job.replies?.get(index);
        this.#finish(seg, index, replies === undefined ? OK : { ok: true, replies });
        return;
      }
      let result: BatchResult;
      try {
        const e = decodeErrorMessage(buf, off + NLMSG_HDRLEN, off + len, flags);
        const init: NetlinkRequestErrorInit = { errno: e.errno, operation: req.operation, target: safeTarget(req) };
        if (e.extAck?.message !== undefined) init.extAck = e.extAck.message;
        if (e.extAck?.offset !== undefined) init.extAckOffset = e.extAck.offset;
        result = failed(new NetlinkRequestError(init));
      } catch (e) {
        result = failed(new NetlinkRequestError({ errno: EPROTO, operation: req.operation, target: safeTarget(req), detail: 'undecodable answer', cause: e }));
      }
      this.#finish(seg, index, result);
      return;
    }
    if (type === NLMSG_DONE || req.decodeReply === undefined) return;
    try {
      const reply = req.decodeReply(buf, off, { length: len, type, flags, seq, pid: buf.readUInt32LE(off + 12) });
      if (reply !== undefined) {
        const replies = (job.replies ??= new Map());
        const list = replies.get(index);
        if (list === undefined) replies.set(index, [reply]);
        else list.push(reply);
      }
    } catch {
      // Kept out of the result; the ack still decides success.
    }
  }

  /** The ack of a barrier: every request it covers that is still unsettled succeeded. */
  #onBarrier(buf: Buffer, off: number, len: number, seq: number): boolean {
    const b = this.#barriers;
    let i = 0;
    while (i < b.length && b[i]![0] !== seq) i++;
    if (i === b.length) return false;
    const [, first, span] = b[i]!;
    b.splice(i, 1);
    const errno = len >= NLMSG_HDRLEN + 4 ? -buf.readInt32LE(off + NLMSG_HDRLEN) : EPROTO;
    for (const [seg, index] of this.#table.unsettledInRange(first, span)) {
      if (errno === 0) {
        const replies = seg.job.replies?.get(index);
        this.#finish(seg, index, replies === undefined ? OK : { ok: true, replies });
      } else {
        const req = seg.job.requests[index]!;
        this.#finish(seg, index, failed(new NetlinkRequestError({ errno, operation: req.operation, target: safeTarget(req), detail: 'the barrier after it failed; the outcome is unknown' })));
      }
    }
    return true;
  }

  #onDumpMessage(job: DumpJob, buf: Buffer, off: number, len: number, type: number, flags: number): void {
    if ((flags & NLM_F_DUMP_INTR) !== 0) job.interrupted = true;
    const spec = job.spec;
    if (type === spec.itemType) {
      try {
        const item = spec.decode(buf, off + NLMSG_HDRLEN, off + len);
        if (spec.keep === undefined || spec.keep(item)) job.items.push(item);
      } catch (e) {
        this.#endDump(job, new NetlinkRequestError({ errno: EPROTO, operation: spec.operation, target: spec.target, detail: 'undecodable dump message', cause: e }));
      }
      return;
    }
    if (type === NLMSG_DONE || type === NLMSG_ERROR) {
      let errno: number;
      let extAck: string | undefined;
      try {
        const m = type === NLMSG_DONE ? decodeDoneMessage(buf, off + NLMSG_HDRLEN, off + len, flags) : decodeErrorMessage(buf, off + NLMSG_HDRLEN, off + len, flags);
        errno = m.errno ?? 0;
        extAck = m.extAck?.message;
      } catch (e) {
        this.#endDump(job, new NetlinkRequestError({ errno: EPROTO, operation: spec.operation, target: spec.target, detail: 'undecodable end of dump', cause: e }));
        return;
      }
      if (errno !== 0 && spec.emptyOn?.includes(errno)) {
        job.items = [];
        errno = 0;
      }
      if (errno !== 0) {
        const init: NetlinkRequestErrorInit = { errno, operation: spec.operation, target: spec.target };
        if (extAck !== undefined) init.extAck = extAck;
        this.#endDump(job, new NetlinkRequestError(init));
        return;
      }
      if (type === NLMSG_ERROR) return; // an ack; the dump is not over
      this.#endDump(job, undefined);
    }
  }

  /** Ends the active dump: retries it when interrupted, else settles it. */
  #endDump(job: DumpJob, error: Error | undefined): void {
    if (this.#dump !== job) return;
    this.#dump = undefined;
    if (error === undefined && job.interrupted) {
      if (job.attempts < this.#dumpAttempts) {
        // Run it again at once, ahead of anything queued after it.
        job.items = [];
        this.#queue.splice(this.#queueHead, 0, job);
        this.#pump();
        return;
      }
      error = new NetlinkDumpInterruptedError(job.spec.operation, job.spec.target, job.attempts);
    }
    if (error !== undefined) job.reject(error);
    else job.resolve(job.items);
    job.items = [];
    this.#pump();
  }

  /** Settles a request that was in flight. */
  #finish(seg: Segment, index: number, result: BatchResult): void {
    this.#settle(seg.job, index, result);
    this.#table.release(seg, index);
  }

  #settle(job: RequestJob, index: number, result: BatchResult): void {
    job.results[index] = result;
    if (--job.remaining === 0) job.resolve(job.results);
  }

  /**
   * ENOBUFS: the kernel dropped answers for this socket. Which ones cannot be known, so every
   * request in flight fails with ENOBUFS ("outcome unknown": it may or may not have been
   * applied) and the window shrinks, since the estimate of what an answer costs was too low.
   */
  #onOverflow(): void {
    if (this.#closed) return;
    this.#maxBudget = Math.max(ACK_BUDGET, Math.floor(this.#maxBudget / 2));
    const detail = 'the answer was dropped (receive buffer overflow); the outcome is unknown';
    this.#failInFlight((operation, target) => new NetlinkRequestError({ errno: ENOBUFS, operation, target, detail }));
    // Dump output is never dropped (the kernel waits for room), but be safe: run it again.
    if (this.#dump !== undefined) this.#dump.interrupted = true;
    this.#pump();
  }

  #onError(err: Error): void {
    if (this.#closed) return;
    const errno = errnoOf(err);
    const make = (operation: string, target: string) => new NetlinkRequestError({ errno, operation, target, detail: 'socket receive error', cause: err });
    this.#failInFlight(make);
    const dump = this.#dump;
    if (dump !== undefined) this.#endDump(dump, make(dump.spec.operation, dump.spec.target));
    this.#pump();
  }

  #failInFlight(make: (operation: string, target: string) => NetlinkRequestError): void {
    this.#barriers = [];
    for (const [seg, index] of this.#table.unsettled()) {
      const req = seg.job.requests[index]!;
      this.#finish(seg, index, failed(make(req.operation, safeTarget(req))));
    }
  }

  /** Fails what is in flight and the active dump, and with `queued` everything waiting too. */
  #failAll(make: (operation: string, target: string) => NetlinkRequestError, queued = true): void {
    this.#failInFlight(make);
    const dump = this.#dump;
    this.#dump = undefined;
    if (dump !== undefined) dump.reject(make(dump.spec.operation, dump.spec.target));
    if (!queued) return;
    const waiting = this.#queue.slice(this.#queueHead);
    this.#queue.length = 0;
    this.#queueHead = 0;
    for (const job of waiting) {
      if (job.kind === 'dump') {
        job.reject(make(job.spec.operation, job.spec.target));
        continue;
      }
      while (job.next < job.requests.length) {
        const index = job.next++;
        const req = job.requests[index]!;
        this.#settle(job, index, failed(make(req.operation, safeTarget(req))));
      }
    }
  }

  #closedError(operation: string, target: string): NetlinkRequestError {
    return new NetlinkRequestError({ errno: EBADF, operation, target, detail: 'the netlink client is closed' });
  }

  // ---- liveness ----

  #busy(): boolean {
    return this.#table.count > 0 || this.#dump !== undefined || this.#queueHead < this.#queue.length;
  }

  /** An idle client does not keep the process alive; a busy one does, and is watched. */
  #updateIdle(): void {
    const busy = this.#busy();
    this.#setRef(busy);
    if (busy) this.#startWatchdog();
    else this.#stopWatchdog();
  }

  #setRef(on: boolean): void {
    if (on === this.#refed || this.#closed) return;
    this.#refed = on;
    if (on) this.#t.ref?.();
    else this.#t.unref?.();
  }

  #touch(): void {
    this.#lastProgress = performance.now();
  }

  #startWatchdog(): void {
    if (this.#watchdog !== undefined || this.#timeoutMs <= 0) return;
    const period = Math.max(10, Math.floor(this.#timeoutMs / 4));
    this.#watchdog = setInterval(() => {
      if (!this.#busy()) {
        this.#stopWatchdog();
        return;
      }
      if (performance.now() - this.#lastProgress < this.#timeoutMs) return;
      const detail = `no answer from the kernel for ${this.#timeoutMs} ms`;
      this.#failAll((operation, target) => new NetlinkRequestError({ errno: ETIMEDOUT, operation, target, detail }), false);
      this.#touch();
      this.#pump();
    }, period);
    this.#watchdog.unref();
  }

  #stopWatchdog(): void {
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog);
    this.#watchdog = undefined;
  }
}

/** The result of every request that succeeded without data replies: shared, allocation-free. */
const OK: BatchResult = Object.freeze({ ok: true });

function failed(error: NetlinkRequestError): BatchResult {
  return { ok: false, error };
}

function safeTarget(req: RtnlRequest): string {
  try {
    return req.target;
  } catch {
    return '';
  }
}

function errnoOf(e: unknown): number {
  if (e instanceof Error && 'errno' in e) {
    const n = (e as { errno: unknown }).errno;
    if (typeof n === 'number') return Math.abs(n);
  }
  return EPROTO;
}
