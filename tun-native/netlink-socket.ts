/**
 * The AF_NETLINK socket: raw datagrams in and out, nothing decoded. The rtnetlink codec, the
 * request/ack/dump client and the Monitor (netlink/) are built on this.
 *
 * Receiving is integrated with the event loop (a libuv poll on the fd, no thread per socket):
 * every wake-up drains what the kernel has queued — up to one bounded batch, the rest follows on
 * the next turn of the loop — and delivers it in ONE `data` call, in order, one Buffer per
 * datagram. The Buffers of a big batch (a dump) are views of one native block that the kernel
 * wrote into directly: no copy is made on the way to JavaScript. Keeping any one of them keeps
 * that block alive, so copy what you retain for long (a decoder normally retains nothing).
 */
import { NativeError } from './errors.js';
import { native } from './native.js';
import { netnsPath } from './netns.js';

/** NETLINK_ROUTE (rtnetlink). */
export const NETLINK_ROUTE = 0;

export interface NetlinkSocketOptions {
  /** Netlink family, default NETLINK_ROUTE (0). */
  protocol?: number;
  /** Multicast groups (RTNLGRP_*) to join, any number including > 32 (NETLINK_ADD_MEMBERSHIP). */
  groups?: number[];
  /**
   * Receive buffer in bytes, default 4 MiB: SO_RCVBUFFORCE when permitted (CAP_NET_ADMIN), else
   * SO_RCVBUF (capped by net.core.rmem_max); 0 keeps the kernel default. The kernel doubles it;
   * `rcvbuf` reports the result.
   */
  rcvbuf?: number;
  /** Send buffer in bytes (kernel default if unset). One send() may carry at most this minus 32 bytes. */
  sndbuf?: number;
  /** NETLINK_EXT_ACK: errors carry the kernel's text and the offending attribute. Default true. */
  extAck?: boolean;
  /** NETLINK_GET_STRICT_CHK: dump requests are validated and filtered by the kernel. Default true. */
  strictCheck?: boolean;
  /** NETLINK_CAP_ACK: error acks do not echo the whole request back. Default true. */
  capAck?: boolean;
  /** Network namespace name (/run/netns/NAME) or path: the socket is created inside it, for good. */
  netns?: string;
  /**
   * Drop datagrams whose sender is not the kernel (port id != 0), default true: on rtnetlink only
   * the kernel speaks, anything else is another process impersonating it. Turn off for families
   * where user space multicasts (e.g. NETLINK_KOBJECT_UEVENT).
   */
  kernelOnly?: boolean;
}

export interface NetlinkHandlers {
  /** Everything drained in one wake-up, in order; each Buffer is one datagram (may hold many nlmsgs). */
  data(datagrams: Buffer[]): void;
  /** ENOBUFS on receive: the kernel dropped messages for this socket. The socket stays usable. */
  overflow(): void;
  /** Any other receive error (the socket stays open; receiving continues on the next wake-up). */
  error(err: NativeError): void;
}

/** Socket flags the kernel accepted (an old kernel may not know some; nothing fails then). */
export interface NetlinkFeatures {
  readonly extAck: boolean;
  readonly strictCheck: boolean;
  readonly capAck: boolean;
}

interface NativeNetlinkHandle {
  readonly portId: number;
  readonly rcvbuf: number;
  readonly sndbuf: number;
  readonly features: NetlinkFeatures;
  /** ends[i] is the offset just past datagram i of the batch being delivered. */
  readonly ends: Uint32Array;
  readonly closed: boolean;
  send(data: Uint8Array): void;
  start(onData: (batch: Buffer, count: number) => void, onOverflow: () => void, onError: (err: NativeError) => void): void;
  stop(): void;
  addMembership(group: number): void;
  dropMembership(group: number): void;
  memberships(): number[];
  ref(): void;
  unref(): void;
  close(): void;
}

interface NetlinkBinding {
  openNetlinkSocket(opts: {
    protocol: number;
    groups: number[];
    rcvbuf: number;
    sndbuf: number;
    extAck: boolean;
    strictCheck: boolean;
    capAck: boolean;
    kernelOnly: boolean;
    netns?: string;
  }): Promise<NativeNetlinkHandle>;
}

const binding = native as unknown as NetlinkBinding;

const DEFAULT_RCVBUF = 4 << 20;

function checkInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`netlink socket option ${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

export class NetlinkSocket {
  /** The port id (nl_pid) the kernel assigned: replies to this socket's requests carry it. */
  readonly portId: number;
  /** Effective SO_RCVBUF as the kernel reports it (twice what was asked, the kernel's bookkeeping). */
  readonly rcvbuf: number;
  /** Effective SO_SNDBUF. A send() larger than this minus 32 bytes fails with EMSGSIZE. */
  readonly sndbuf: number;
  /** Which of extAck / strictCheck / capAck are in effect. */
  readonly features: NetlinkFeatures;

  readonly #handle: NativeNetlinkHandle;

  private constructor(handle: NativeNetlinkHandle) {
    this.#handle = handle;
    this.portId = handle.portId;
    this.rcvbuf = handle.rcvbuf;
    this.sndbuf = handle.sndbuf;
    this.features = handle.features;
  }

  /** Creates, configures and binds the socket (off the JS thread; inside `netns` if given). */
  static async open(opts: NetlinkSocketOptions = {}): Promise<NetlinkSocket> {
    const groups = [...new Set(opts.groups ?? [])].map((g) => checkInteger('groups[]', g, 1, 0xffffffff));
    const handle = await binding.openNetlinkSocket({
      protocol: checkInteger('protocol', opts.protocol ?? NETLINK_ROUTE, 0, 31),
      groups,
      rcvbuf: checkInteger('rcvbuf', opts.rcvbuf ?? DEFAULT_RCVBUF, 0, 0x7fffffff),
      sndbuf: checkInteger('sndbuf', opts.sndbuf ?? 0, 0, 0x7fffffff),
      extAck: opts.extAck ?? true,
      strictCheck: opts.strictCheck ?? true,
      capAck: opts.capAck ?? true,
      kernelOnly: opts.kernelOnly ?? true,
      ...(opts.netns !== undefined ? { netns: netnsPath(opts.netns) } : {}),
    });
    return new NetlinkSocket(handle);
  }

  get closed(): boolean {
    return this.#handle.closed;
  }

  /**
   * Sends `data` to the kernel in one sendmsg. It may hold many concatenated netlink messages:
   * the kernel processes them in order before send() returns and queues one answer per message
   * that asks for it (NLM_F_ACK, or an error), plus dump output.
   *
   * Bound what is in flight: those answers land in this socket's receive buffer, and when it is
   * full the kernel drops them (the socket then reports overflow()). A client that pipelines
   * thousands of requests — in one buffer or many sends — before reading their acks will lose
   * acks; it must cap outstanding requests (by count and by expected answer size, well under
   * `rcvbuf`). One datagram is also capped by the send buffer (EMSGSIZE above `sndbuf` - 32).
   * Throws NativeError (EBADF once closed).
   */
  send(data: Uint8Array): void {
    this.#handle.send(data);
  }

  /**
   * Begins receiving on the event loop. Calling it again while started replaces the handlers.
   * A started socket is kept alive and keeps the process alive (see unref()).
   */
  start(h: NetlinkHandlers): void {
    const ends = this.#handle.ends;
    const onData = (batch: Buffer, count: number): void => {
      if (count === 1) {
        h.data([batch]);
        return;
      }
      const datagrams = new Array<Buffer>(count);
      let start = 0;
      for (let i = 0; i < count; i++) {
        const end = ends[i]!;
        datagrams[i] = batch.subarray(start, end);
        start = end;
      }
      h.data(datagrams);
    };
    this.#handle.start(
      onData,
      () => h.overflow(),
      (err) => h.error(err),
    );
  }

  /** Stops receiving; queued and later datagrams wait in the socket until start() again. */
  stop(): void {
    this.#handle.stop();
  }

  /** Joins a multicast group (NETLINK_ADD_MEMBERSHIP); groups above 32 are fine. */
  addMembership(group: number): void {
    this.#handle.addMembership(group);
  }

  dropMembership(group: number): void {
    this.#handle.dropMembership(group);
  }

  /** The groups this socket belongs to, ascending (NETLINK_LIST_MEMBERSHIPS). */
  memberships(): number[] {
    return this.#handle.memberships();
  }

  /** A started socket keeps the process alive (the default). */
  ref(): void {
    this.#handle.ref();
  }

  /** Lets the process exit while this socket is started. */
  unref(): void {
    this.#handle.unref();
  }

  /**
   * Stops receiving and closes the fd; idempotent. Nothing is delivered after close(), even from
   * inside a handler of the same wake-up. An unreachable socket is closed when collected, and
   * every socket when the environment (process, worker) ends.
   */
  close(): void {
    this.#handle.close();
  }
}
