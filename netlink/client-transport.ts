/**
 * The narrow interface the client and the Monitor need from a netlink socket: send raw bytes,
 * receive raw datagrams, learn of overflows, close. tun-native's NetlinkSocket has exactly this
 * shape; so does the fake socket in ./testing, which lets the controller's unit tests run the
 * real client against a scripted kernel.
 */
import { NetlinkSocket, type NetlinkHandlers, type NetlinkSocketOptions } from '../tun-native/netlink-socket.js';

export type { NetlinkHandlers, NetlinkSocketOptions };

export interface NetlinkTransport {
  /** Effective receive buffer in bytes (what the kernel counts queued answers against). */
  readonly rcvbuf: number;
  /** Effective send buffer in bytes: one send() may carry at most this minus 32 bytes. */
  readonly sndbuf: number;
  /** One datagram of back-to-back netlink messages; answers are queued before it returns. */
  send(data: Uint8Array): void;
  /** Starts delivering received datagrams (in order) to the handlers. */
  start(h: NetlinkHandlers): void;
  /** Idempotent; nothing is delivered afterwards. */
  close(): void;
  /** Lets the process exit while started (optional). */
  unref?(): void;
  /** Keeps the process alive while started (optional). */
  ref?(): void;
}

/** Opens the real socket (inside `netns` when given). */
export function openNetlinkTransport(opts: NetlinkSocketOptions): Promise<NetlinkTransport> {
  return NetlinkSocket.open(opts);
}
