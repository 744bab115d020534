/**
 * A fake rtnetlink socket for unit tests: the real client (Rtnl) and the real Monitor run on it
 * unchanged, against a scripted kernel — a function from each request to its answers.
 *
 * It behaves the way the kernel's socket does where the client depends on it:
 *   - every message of one send() is handled in order; answers are queued and delivered
 *     asynchronously, in batches, like the native socket does;
 *   - a request without NLM_F_ACK gets no ack, only an error if it fails (an `ack` answer of the
 *     handler is dropped then); control messages (NLMSG_NOOP...) never reach the handler and are
 *     acked when they ask for it — the client's barrier after each send relies on both;
 *   - acks and errors each travel in their own datagram; dump output is packed several
 *     messages per datagram and ends with NLMSG_DONE (optionally flagged NLM_F_DUMP_INTR);
 *   - the receive buffer is finite: answers that do not fit are DROPPED and the next delivery
 *     reports overflow() first (ENOBUFS), exactly the failure an unbounded pipeline meets.
 *     Like the kernel, dump output waits for room instead (it is never dropped);
 *   - a send() larger than the send buffer fails with EMSGSIZE.
 * And it can misbehave on purpose: answers after a delay (an async handler), reordered
 * datagrams, injected overflows and multicast events.
 */
import { decodeMessages, encodeMessage, writeMessage, type RtnlMessage, type RtnlMessageInit } from '../codec/messages.js';
import type { NlMsgHeader } from '../codec/header.js';
import { NetlinkWriter } from '../codec/writer.js';
import type { LinkMessageInit } from '../codec/link.js';
import type { AddressMessageInit } from '../codec/address.js';
import type { RouteMessageInit } from '../codec/route.js';
import type { NeighbourMessageInit } from '../codec/neighbour.js';
import type { RuleMessageInit } from '../codec/rule.js';
import { NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, NLMSG_MIN_TYPE } from '../constants/netlink.js';
import { RTM_NEWADDR, RTM_NEWLINK, RTM_NEWNEIGH, RTM_NEWROUTE, RTM_NEWRULE } from '../constants/rtnetlink.js';
import type { NetlinkHandlers, NetlinkTransport } from '../client-transport.js';
import { constants as osConstants } from 'node:os';

/** One message the client sent. */
export interface FakeRequest {
  readonly header: NlMsgHeader;
  /** The decoded message (kind, header, body). */
  readonly message: RtnlMessage;
  /** Its bytes. */
  readonly bytes: Buffer;
  /** NLM_F_DUMP set. */
  readonly dump: boolean;
  /** NLM_F_ACK set. */
  readonly ack: boolean;
}

/** The kind of object a dump or reply carries. */
export type FakeObject =
  | { kind: 'link'; body: LinkMessageInit }
  | { kind: 'address'; body: AddressMessageInit }
  | { kind: 'route'; body: RouteMessageInit }
  | { kind: 'neighbour'; body: NeighbourMessageInit }
  | { kind: 'rule'; body: RuleMessageInit };

export type FakeAnswer =
  /** NLMSG_ERROR with errno 0. */
  | { kind: 'ack' }
  /** NLMSG_ERROR with an errno (number or name) and optional ext-ack text. */
  | { kind: 'error'; errno: number | string; extAck?: string; offset?: number }
  /** A dump's output: the objects (NLM_F_MULTI), then NLMSG_DONE (status errno, default 0). */
  | { kind: 'dump'; objects: FakeObject[]; interrupted?: boolean; perDatagram?: number; errno?: number | string; extAck?: string }
  /** One data message answering a GET, with the request's seq. */
  | { kind: 'reply'; object: FakeObject }
  /** Datagrams sent as they are (their headers are not touched). */
  | { kind: 'raw'; datagrams: Buffer[] }
  /** No answer at all (a lost answer). */
  | { kind: 'none' };

export type FakeHandler = (req: FakeRequest) => FakeAnswer | FakeAnswer[] | undefined | Promise<FakeAnswer | FakeAnswer[] | undefined>;

export interface FakeSocketOptions {
  /** The scripted kernel. Default: ack every request, empty dumps. */
  handler?: FakeHandler;
  /** Effective receive buffer in bytes (default 425984, the kernel's doubled default). */
  rcvbuf?: number;
  /** Effective send buffer in bytes (default 425984). */
  sndbuf?: number;
  /** Receive-buffer bytes one queued answer datagram costs on top of its length (default 768, ~ the kernel's skb overhead). */
  truesizeOverhead?: number;
  /** Most datagrams handed over per data() call (default 64). */
  batchSize?: number;
  /** Delivery delay in ms (default 0: the next turn of the event loop). */
  latencyMs?: number;
  /** Shuffle the order of answers to different requests within each delivery (seeded, repeatable). */
  reorder?: boolean | { seed: number };
  /** Dump messages per datagram when an answer does not say (default 8). */
  dumpPerDatagram?: number;
  portId?: number;
}

interface Queued {
  datagram: Buffer;
  seq: number;
  /** Counted against the receive buffer (dump output is not: the kernel waits for room). */
  charge: number;
  /** The ack of a control message: nothing sent before it may be delivered after it. */
  fence?: boolean;
}

const ERRNO = osConstants.errno as Record<string, number>;

function toErrno(e: number | string): number {
  if (typeof e === 'number') return e;
  const n = ERRNO[e];
  if (n === undefined) throw new Error(`fake socket: unknown errno name ${e}`);
  return n;
}

const NEW_TYPE: Record<FakeObject['kind'], number> = {
  link: RTM_NEWLINK,
  address: RTM_NEWADDR,
  route: RTM_NEWROUTE,
  neighbour: RTM_NEWNEIGH,
  rule: RTM_NEWRULE,
};

/** An error like the native socket's (code + errno). */
function sysError(code: string, syscall: string): Error {
  const e = new Error(`${syscall} failed: ${code}`) as Error & { code: string; errno: number; syscall: string };
  e.code = code;
  e.errno = ERRNO[code] ?? 0;
  e.syscall = syscall;
  return e;
}

export class FakeNetlinkSocket implements NetlinkTransport {
  readonly rcvbuf: number;
  readonly sndbuf: number;
  readonly portId: number;
  /** Every request received, in order (control messages such as the client's barriers excluded). */
  readonly requests: FakeRequest[] = [];
  /** Control messages (type < NLMSG_MIN_TYPE, e.g. NLMSG_NOOP barriers) received. */
  controlMessages = 0;
  /** Byte size of every send() call. */
  readonly sends: number[] = [];
  /** Most answer datagrams queued at once (the receive-buffer pressure the client caused). */
  peakQueued = 0;
  /** Most receive-buffer bytes charged at once. */
  peakCharged = 0;
  /** Answer datagrams dropped for lack of room. */
  dropped = 0;
  /** Most requests sent but not yet answered to the client at any moment. */
  peakOutstanding = 0;

  handler: FakeHandler;
  readonly #truesize: number;
  readonly #batchSize: number;
  readonly #latency: number;
  readonly #dumpPerDatagram: number;
  #rng: (() => number) | undefined;
  #h: NetlinkHandlers | undefined;
  #queue: Queued[] = [];
  #charged = 0;
  #overflowPending = false;
  #deliveryScheduled = false;
  #closed = false;
  #refed = true;
  /** Seqs of requests whose final answer (ack, error, done) has not been delivered. */
  readonly #outstanding = new Set<number>();
  #pendingHandlers = 0;
  /** Answers still being computed by async handlers (a barrier's ack waits for them). */
  readonly #pending = new Set<Promise<unknown>>();

  constructor(opts: FakeSocketOptions = {}) {
    this.handler = opts.handler ?? (() => undefined);
    this.rcvbuf = opts.rcvbuf ?? 425984;
    this.sndbuf = opts.sndbuf ?? 425984;
    this.portId = opts.portId ?? 4242;
    this.#truesize = opts.truesizeOverhead ?? 768;
    this.#batchSize = Math.max(1, opts.batchSize ?? 64);
    this.#latency = opts.latencyMs ?? 0;
    this.#dumpPerDatagram = Math.max(1, opts.dumpPerDatagram ?? 8);
    if (opts.reorder !== undefined && opts.reorder !== false) {
      let s = (typeof opts.reorder === 'object' ? opts.reorder.seed : 1) >>> 0 || 1;
      this.#rng = () => {
        // xorshift32: repeatable shuffles, so a failing test fails the same way again.
        s ^= s << 13;
        s >>>= 0;
        s ^= s >>> 17;
        s ^= s << 5;
        s >>>= 0;
        return s / 0x100000000;
      };
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether the owner asked to keep the process alive (ref) or not (unref). */
  get refed(): boolean {
    return this.#refed;
  }

  send(data: Uint8Array): void {
    if (this.#closed) throw sysError('EBADF', 'sendmsg');
    if (data.length > this.sndbuf - 32) throw sysError('EMSGSIZE', 'sendmsg');
    const bytes = Buffer.from(data);
    this.sends.push(bytes.length);
    let messages: RtnlMessage[];
    try {
      messages = decodeMessages(bytes);
    } catch {
      throw sysError('EINVAL', 'sendmsg');
    }
    let off = 0;
    for (const message of messages) {
      const h = message.header;
      const req: FakeRequest = {
        header: h,
        message,
        bytes: bytes.subarray(off, off + h.length),
        dump: (h.flags & NLM_F_DUMP) === NLM_F_DUMP,
        ack: (h.flags & NLM_F_ACK) !== 0,
      };
      off += (h.length + 3) & ~3;
      if (h.type < NLMSG_MIN_TYPE) {
        // The kernel acks control messages itself (netlink_rcv_skb), when asked — after every
        // answer to what was sent before it: the client's barriers rely on that order, which the
        // kernel gives and which delays and reordering here must not break.
        this.controlMessages++;
        if (req.ack) {
          this.#outstanding.add(h.seq);
          const queueAck = () => {
            if (!this.#closed) this.#queueAnswers(req, { kind: 'ack' }, true);
          };
          if (this.#pending.size === 0) queueAck();
          else void Promise.allSettled([...this.#pending]).then(queueAck);
        }
        continue;
      }
      this.requests.push(req);
      this.#outstanding.add(h.seq);
      this.#answer(req);
    }
    this.peakOutstanding = Math.max(this.peakOutstanding, this.#outstanding.size);
  }

  start(h: NetlinkHandlers): void {
    this.#h = h;
    this.#schedule();
  }

  close(): void {
    this.#closed = true;
    this.#h = undefined;
    this.#queue = [];
    this.#charged = 0;
  }

  ref(): void {
    this.#refed = true;
  }

  unref(): void {
    this.#refed = false;
  }

  /** Answers still being computed by an async handler. */
  get pendingHandlers(): number {
    return this.#pendingHandlers;
  }

  /** Queues a multicast datagram (seq 0, as the kernel's notifications) of the given objects. */
  emit(op: 'new' | 'del', ...objects: FakeObject[]): void {
    const w = new NetlinkWriter(1024);
    for (const o of objects) {
      const type = NEW_TYPE[o.kind] + (op === 'del' ? 1 : 0);
      writeMessage(w, { kind: o.kind, header: { type, flags: 0, seq: 0, pid: 0 }, body: o.body } as RtnlMessageInit);
    }
    this.#push({ datagram: w.toBuffer(), seq: 0, charge: this.#truesize + w.pos });
  }

  /** Queues raw datagrams (charged against the receive buffer like any answer). */
  emitRaw(...datagrams: Buffer[]): void {
    for (const d of datagrams) this.#push({ datagram: Buffer.from(d), seq: 0, charge: this.#truesize + d.length });
  }

  /** Makes the next delivery report ENOBUFS, as if the kernel had dropped something. */
  injectOverflow(): void {
    this.#overflowPending = true;
    this.#schedule();
  }

  /** Resolves when every answer computed so far has been delivered (for tests). */
  async drained(): Promise<void> {
    for (let i = 0; i < 10000; i++) {
      if (this.#queue.length === 0 && this.#pendingHandlers === 0 && !this.#deliveryScheduled && !this.#overflowPending) return;
      await new Promise((r) => setTimeout(r, Math.max(1, this.#latency)));
    }
    throw new Error('fake socket: never drained');
  }

  #answer(req: FakeRequest): void {
    let out: ReturnType<FakeHandler>;
    try {
      out = this.handler(req);
    } catch (e) {
      out = { kind: 'error', errno: 'EINVAL', extAck: `fake handler threw: ${e instanceof Error ? e.message : String(e)}` };
    }
    if (out instanceof Promise) {
      this.#pendingHandlers++;
      const done = out.then(
        (answers) => {
          this.#pendingHandlers--;
          if (!this.#closed) this.#queueAnswers(req, answers);
        },
        (e: unknown) => {
          this.#pendingHandlers--;
          if (!this.#closed) this.#queueAnswers(req, { kind: 'error', errno: 'EINVAL', extAck: `fake handler failed: ${e instanceof Error ? e.message : String(e)}` });
        },
      );
      this.#pending.add(done);
      void done.then(() => this.#pending.delete(done));
      return;
    }
    this.#queueAnswers(req, out);
  }

  #queueAnswers(req: FakeRequest, out: FakeAnswer | FakeAnswer[] | undefined, fence = false): void {
    const h = req.header;
    const answers: FakeAnswer[] = out === undefined ? (req.dump ? [{ kind: 'dump', objects: [] }] : req.ack ? [{ kind: 'ack' }] : []) : Array.isArray(out) ? out : [out];
    const header = (type: number, flags: number) => ({ type, flags, seq: h.seq, pid: this.portId });
    let queued = 0;
    for (const a of answers) {
      // Like netlink_rcv_skb: success is acked only when the request asked for it.
      if (a.kind === 'ack' && !req.ack) continue;
      if (a.kind !== 'none') queued++;
      switch (a.kind) {
        case 'ack':
        case 'error': {
          const errno = a.kind === 'ack' ? 0 : toErrno(a.errno);
          const body: RtnlMessageInit = {
            kind: 'error',
            header: header(NLMSG_ERROR, 0),
            body: { errno, request: { ...h } },
          };
          if (a.kind === 'error' && (a.extAck !== undefined || a.offset !== undefined)) {
            body.body.extAck = {};
            if (a.extAck !== undefined) body.body.extAck.message = a.extAck;
            if (a.offset !== undefined) body.body.extAck.offset = a.offset;
          }
          const d = encodeMessage(body);
          this.#push({ datagram: d, seq: h.seq, charge: this.#truesize + d.length, fence });
          break;
        }
        case 'reply': {
          const d = encodeMessage({ kind: a.object.kind, header: header(NEW_TYPE[a.object.kind], 0), body: a.object.body } as RtnlMessageInit);
          this.#push({ datagram: d, seq: h.seq, charge: this.#truesize + d.length });
          break;
        }
        case 'dump': {
          const per = Math.max(1, a.perDatagram ?? this.#dumpPerDatagram);
          const intr = a.interrupted === true ? NLM_F_DUMP_INTR : 0;
          const w = new NetlinkWriter(4096);
          for (let i = 0; i < a.objects.length; i++) {
            const o = a.objects[i]!;
            // The kernel flags the message being written when it notices the change; here the last one.
            const flags = NLM_F_MULTI | (i === a.objects.length - 1 ? intr : 0);
            writeMessage(w, { kind: o.kind, header: header(NEW_TYPE[o.kind], flags), body: o.body } as RtnlMessageInit);
            if ((i + 1) % per === 0) {
              this.#push({ datagram: w.toBuffer(), seq: h.seq, charge: 0 });
              w.reset();
            }
          }
          const done: RtnlMessageInit = { kind: 'done', header: header(NLMSG_DONE, NLM_F_MULTI | intr), body: { errno: a.errno === undefined ? 0 : toErrno(a.errno) } };
          if (a.extAck !== undefined) done.body.extAck = { message: a.extAck };
          writeMessage(w, done);
          this.#push({ datagram: w.toBuffer(), seq: h.seq, charge: 0 });
          break;
        }
        case 'raw':
          for (const d of a.datagrams) this.#push({ datagram: Buffer.from(d), seq: h.seq, charge: this.#truesize + d.length });
          break;
        case 'none':
          this.#outstanding.delete(h.seq);
          break;
        default:
          throw new Error(`fake socket: unknown answer kind ${(a as { kind: string }).kind}`);
      }
    }
    if (queued === 0) this.#outstanding.delete(h.seq);
  }

  #push(q: Queued): void {
    if (this.#closed) return;
    if (q.charge > 0 && this.#charged + q.charge > this.rcvbuf) {
      // The kernel's netlink_unicast to a full socket: the answer is gone, ENOBUFS is reported.
      this.dropped++;
      this.#overflowPending = true;
      if (q.seq !== 0) this.#outstanding.delete(q.seq);
      this.#schedule();
      return;
    }
    this.#charged += q.charge;
    this.#queue.push(q);
    this.peakQueued = Math.max(this.peakQueued, this.#queue.length);
    this.peakCharged = Math.max(this.peakCharged, this.#charged);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#deliveryScheduled || this.#h === undefined || this.#closed) return;
    if (this.#queue.length === 0 && !this.#overflowPending) return;
    this.#deliveryScheduled = true;
    const deliver = () => {
      this.#deliveryScheduled = false;
      this.#deliver();
    };
    if (this.#latency > 0) setTimeout(deliver, this.#latency);
    else setImmediate(deliver);
  }

  #deliver(): void {
    const h = this.#h;
    if (h === undefined || this.#closed) return;
    if (this.#overflowPending) {
      this.#overflowPending = false;
      h.overflow();
      if (this.#closed || this.#h === undefined) return;
    }
    let batch = this.#queue.splice(0, this.#batchSize);
    if (batch.length === 0) return;
    for (const q of batch) this.#charged -= q.charge;
    if (this.#rng !== undefined) batch = this.#shuffle(batch);
    for (const q of batch) {
      if (q.seq !== 0 && isFinal(q.datagram)) this.#outstanding.delete(q.seq);
    }
    h.data(batch.map((q) => q.datagram));
    this.#schedule();
  }

  /**
   * Shuffles whole requests' answers, keeping each request's own datagrams in order and every
   * fence (a barrier's ack) after everything queued before it.
   */
  #shuffle(batch: Queued[]): Queued[] {
    const out: Queued[] = [];
    let run: Queued[] = [];
    for (const q of batch) {
      if (q.fence === true) {
        out.push(...this.#shuffleRun(run), q);
        run = [];
      } else {
        run.push(q);
      }
    }
    out.push(...this.#shuffleRun(run));
    return out;
  }

  #shuffleRun(batch: Queued[]): Queued[] {
    const groups = new Map<number, Queued[]>();
    for (const q of batch) {
      const key = q.seq === 0 ? -1 - groups.size : q.seq;
      const g = groups.get(key);
      if (g === undefined) groups.set(key, [q]);
      else g.push(q);
    }
    const list = [...groups.values()];
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.floor(this.#rng!() * (i + 1));
      [list[i], list[j]] = [list[j]!, list[i]!];
    }
    return list.flat();
  }
}

/** Whether a datagram ends a request's answers (an ack/error or NLMSG_DONE). */
function isFinal(d: Buffer): boolean {
  let off = 0;
  let last = -1;
  while (off + 16 <= d.length) {
    last = d.readUInt16LE(off + 4);
    const len = d.readUInt32LE(off);
    if (len < 16) break;
    off += (len + 3) & ~3;
  }
  return last === NLMSG_ERROR || last === NLMSG_DONE;
}

// ---- answer helpers ----

export const fakeAck = (): FakeAnswer => ({ kind: 'ack' });

export function fakeError(errno: number | string, extAck?: string): FakeAnswer {
  return extAck === undefined ? { kind: 'error', errno } : { kind: 'error', errno, extAck };
}

export function fakeDump(objects: FakeObject[], opts: { interrupted?: boolean; perDatagram?: number; errno?: number | string; extAck?: string } = {}): FakeAnswer {
  return { kind: 'dump', objects, ...opts };
}

export function fakeReply(object: FakeObject): FakeAnswer {
  return { kind: 'reply', object };
}

/** An answer after `ms` milliseconds. */
export function fakeDelay(ms: number, answer: FakeAnswer | FakeAnswer[]): Promise<FakeAnswer | FakeAnswer[]> {
  return new Promise((resolve) => setTimeout(() => resolve(answer), ms));
}
