/**
 * ICMP and ICMPv6 echo ("ping") through one device, without raw sockets or CAP_NET_RAW: an
 * unprivileged ping socket (SOCK_DGRAM + IPPROTO_ICMP / IPPROTO_ICMPV6) created inside the
 * network namespace and bound to the device (SO_BINDTODEVICE), so the request leaves through that
 * device whatever the routing table prefers, and only a reply arriving on it counts.
 *
 *   const sock = await PingSocket.open({ netns: 'blue', family: 4, ifname: 'tk-edge0' });
 *   const { rttMs } = await sock.echo('192.0.2.254', { timeoutMs: 1000 });
 *   sock.close();
 *   // or once: await icmpEcho({ netns: 'blue', family: 4, to: '192.0.2.254', ifname: 'tk-edge0', timeoutMs: 1000 });
 *
 * The kernel assigns the echo identifier and delivers to the socket only the replies carrying it;
 * replies are matched to requests here by sequence number (and source address). Waiting costs
 * nothing: the fd is watched on the event loop only while an echo is outstanding.
 *
 * Needs the process's group inside net.ipv4.ping_group_range of that namespace (a fresh
 * namespace has "1 0": nobody; systemd sets "0 2147483647" on hosts). Otherwise open() rejects
 * with a NativeError EACCES whose `reason` is 'ping_group_range' and whose message quotes the
 * value and the fix.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { NativeError } from './errors.js';
import { native } from './native.js';
import { netnsPath } from './netns.js';
import { invalidArg, nativeError } from './tun-errors.js';

export type PingFamily = 4 | 6;

export interface PingSocketOptions {
  /** Network namespace name (/run/netns/NAME) or path: the socket is created inside it. */
  netns?: string;
  family: PingFamily;
  /** The device requests leave through and replies must arrive on. */
  ifname: string;
}

export interface EchoOptions {
  /** How long to wait for the reply, ms (a positive integer). */
  timeoutMs: number;
  /** Sequence number 0..65535; default: the socket's next one. */
  sequence?: number;
  /** Aborting rejects the echo at once with the signal's reason. */
  signal?: AbortSignal;
}

export interface EchoResult {
  /**
   * From send() to the reply reaching JavaScript, ms: includes the event loop's own delay, so it
   * is an upper bound on the network round trip, for reporting only.
   */
  rttMs: number;
  sequence: number;
}

export interface IcmpEchoOptions extends PingSocketOptions, EchoOptions {
  /** The address to ping, of `family`. */
  to: string;
}

/** No reply within the timeout. `code` is 'ETIMEDOUT' like the OS errors' codes, but it is no syscall's failure. */
export class IcmpEchoTimeoutError extends Error {
  override name = 'IcmpEchoTimeoutError';
  readonly code = 'ETIMEDOUT';
  constructor(
    readonly to: string,
    readonly ifname: string,
    readonly sequence: number,
    readonly timeoutMs: number,
  ) {
    super(`no echo reply from ${to} through ${ifname} within ${timeoutMs} ms (sequence ${sequence})`);
  }
}

export function isIcmpEchoTimeoutError(e: unknown): e is IcmpEchoTimeoutError {
  return e instanceof IcmpEchoTimeoutError;
}

/** The EACCES of a ping socket refused by net.ipv4.ping_group_range, with what open() read there. */
export function isPingGroupRangeError(e: unknown): e is NativeError & { reason: 'ping_group_range'; pingGroupRange?: string; gid: number } {
  return e instanceof NativeError && e.code === 'EACCES' && (e as unknown as { reason?: unknown }).reason === 'ping_group_range';
}

interface NativePingHandle {
  readonly ifindex: number;
  readonly closed: boolean;
  send(address: string, sequence: number, payload: Uint8Array): void;
  start(onReply: (sequence: number, from: string) => void, onError: (err: NativeError) => void): void;
  stop(): void;
  ref(): void;
  unref(): void;
  close(): void;
}

interface PingBinding {
  openPingSocket(opts: { family: PingFamily; ifname: string; netns?: string }): Promise<NativePingHandle>;
}

const binding = native as unknown as PingBinding;

// What IFNAMSIZ allows, and what the kernel refuses in a name (dev_valid_name).
const IFNAME = /^[^\s/:]{1,15}$/;
const MAX_TIMEOUT_MS = 0x7fffffff;
/** A recognisable payload: a capture of the probe's traffic says who sent it. */
const PAYLOAD = Buffer.from('tunkeeper probe\0', 'latin1');

function checkFamily(family: unknown): PingFamily {
  if (family !== 4 && family !== 6) throw invalidArg(`family must be 4 or 6, got ${String(family)}`, typeof family === 'number' ? 'range' : 'type');
  return family;
}

function checkIfname(ifname: unknown): string {
  if (typeof ifname !== 'string') throw invalidArg('ifname must be a device name (a string)', 'type');
  if (!IFNAME.test(ifname) || ifname === '.' || ifname === '..') throw invalidArg(`ifname must be a device name of 1 to 15 characters without spaces, '/' or ':', got ${JSON.stringify(ifname)}`);
  return ifname;
}

function checkAddress(to: unknown, family: PingFamily): string {
  if (typeof to !== 'string') throw invalidArg('to must be an IP address (a string)', 'type');
  const ok = family === 4 ? isIPv4(to) : isIPv6(to) && !to.includes('%');
  if (!ok) throw invalidArg(`to must be an IPv${family} address, got ${JSON.stringify(to)}`);
  return to;
}

function checkTimeout(ms: unknown): number {
  if (typeof ms !== 'number') throw invalidArg('timeoutMs must be a number of milliseconds', 'type');
  if (!Number.isInteger(ms) || ms < 1 || ms > MAX_TIMEOUT_MS) throw invalidArg(`timeoutMs must be an integer from 1 to ${MAX_TIMEOUT_MS}, got ${ms}`);
  return ms;
}

function checkSequence(seq: unknown): number {
  if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 0 || seq > 0xffff) throw invalidArg(`sequence must be an integer from 0 to 65535, got ${String(seq)}`);
  return seq;
}

/** Canonical text of an address, so a reply's source compares with what was asked. */
function canonical(address: string, family: PingFamily): string {
  if (family === 4) return address;
  const u = new URL(`http://[${address}]/`);
  return u.hostname.slice(1, -1);
}

interface Pending {
  to: string;
  sentAt: number;
  resolve(r: EchoResult): void;
  reject(e: unknown): void;
  cleanup(): void;
}

export class PingSocket {
  readonly family: PingFamily;
  readonly ifname: string;
  /** The device's ifindex in the socket's namespace (at open). */
  readonly ifindex: number;

  readonly #handle: NativePingHandle;
  readonly #pending = new Map<number, Pending>();
  #next: number;

  private constructor(handle: NativePingHandle, family: PingFamily, ifname: string) {
    this.#handle = handle;
    this.family = family;
    this.ifname = ifname;
    this.ifindex = handle.ifindex;
    this.#next = Math.floor(Math.random() * 0x10000);
  }

  /** Creates the socket inside `netns` (off the JS thread) and binds it to the device. */
  static async open(opts: PingSocketOptions): Promise<PingSocket> {
    if (opts === null || typeof opts !== 'object') throw invalidArg('PingSocket.open expects an options object', 'type');
    const family = checkFamily(opts.family);
    const ifname = checkIfname(opts.ifname);
    const handle = await binding.openPingSocket({ family, ifname, ...(opts.netns !== undefined ? { netns: netnsPath(opts.netns) } : {}) });
    return new PingSocket(handle, family, ifname);
  }

  get closed(): boolean {
    return this.#handle.closed;
  }

  /**
   * One echo request to `to`; resolves on its reply, rejects with IcmpEchoTimeoutError when none
   * came within timeoutMs, with a NativeError when the kernel refused to send it (ENETUNREACH,
   * ENETDOWN, EHOSTUNREACH...) or the socket failed, or with the signal's reason when aborted.
   */
  echo(to: string, opts: EchoOptions): Promise<EchoResult> {
    const address = checkAddress(to, this.family);
    if (opts === null || typeof opts !== 'object') throw invalidArg('echo expects options with timeoutMs', 'type');
    const timeoutMs = checkTimeout(opts.timeoutMs);
    const sequence = opts.sequence === undefined ? this.#nextSequence() : checkSequence(opts.sequence);
    if (this.closed) return Promise.reject(nativeError('EBADF', 'sendto', `send an echo request to ${address} through ${this.ifname}`, 'the socket is closed'));
    if (this.#pending.has(sequence)) throw invalidArg(`sequence ${sequence} already has an echo outstanding on this socket`);
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);

    return new Promise<EchoResult>((resolve, reject) => {
      const signal = opts.signal;
      const onAbort = (): void => {
        pending.cleanup();
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        pending.cleanup();
        reject(new IcmpEchoTimeoutError(address, this.ifname, sequence, timeoutMs));
      }, timeoutMs);
      const pending: Pending = {
        to: canonical(address, this.family),
        sentAt: performance.now(),
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          if (this.#pending.get(sequence) === pending) this.#pending.delete(sequence);
          if (this.#pending.size === 0) this.#stopReceiving();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(sequence, pending);
      try {
        this.#startReceiving();
        pending.sentAt = performance.now();
        this.#handle.send(address, sequence, PAYLOAD);
      } catch (e) {
        pending.cleanup();
        reject(e);
      }
    });
  }

  /** Closes the fd; outstanding echoes reject with EBADF. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.#handle.close();
    const err = nativeError('EBADF', 'recvfrom', `wait for an echo reply through ${this.ifname}`, 'the socket was closed');
    for (const p of [...this.#pending.values()]) {
      p.cleanup();
      p.reject(err);
    }
  }

  #nextSequence(): number {
    for (let i = 0; i < 0x10000; i++) {
      const s = this.#next;
      this.#next = (this.#next + 1) & 0xffff;
      if (!this.#pending.has(s)) return s;
    }
    throw invalidArg('all 65536 sequence numbers have an echo outstanding on this socket');
  }

  #startReceiving(): void {
    if (this.#pending.size !== 1) return;
    this.#handle.start(
      (sequence, from) => this.#onReply(sequence, from),
      (err) => this.#onError(err),
    );
  }

  #stopReceiving(): void {
    if (!this.#handle.closed) this.#handle.stop();
  }

  #onReply(sequence: number, from: string): void {
    const p = this.#pending.get(sequence);
    // A late reply (after its timeout) or one from another address is not an answer.
    if (p === undefined || canonical(from, this.family) !== p.to) return;
    const rttMs = performance.now() - p.sentAt;
    p.cleanup();
    p.resolve({ rttMs, sequence });
  }

  #onError(err: NativeError): void {
    for (const p of [...this.#pending.values()]) {
      p.cleanup();
      p.reject(err);
    }
  }
}

/** One echo on a socket of its own, closed afterwards. */
export async function icmpEcho(opts: IcmpEchoOptions): Promise<EchoResult> {
  if (opts === null || typeof opts !== 'object') throw invalidArg('icmpEcho expects an options object', 'type');
  const family = checkFamily(opts.family);
  checkAddress(opts.to, family);
  checkTimeout(opts.timeoutMs);
  if (opts.sequence !== undefined) checkSequence(opts.sequence);
  const sock = await PingSocket.open(opts);
  try {
    return await sock.echo(opts.to, opts);
  } finally {
    sock.close();
  }
}
