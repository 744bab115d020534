/**
 * Hand-built netlink bytes for the socket tests: a few requests and just enough parsing to check
 * the kernel's answers. Deliberately minimal — the real codec lives in netlink/.
 */
import type { NetlinkSocket } from '../../tun-native/index.js';
import type { NativeError } from '../../tun-native/index.js';

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
/** In an NLMSG_ERROR: the echoed request was cut to its header (NETLINK_CAP_ACK). */
export const NLM_F_CAPPED = 0x100;
/** In an NLMSG_ERROR / NLMSG_DONE: extended-ack TLVs follow. */
export const NLM_F_ACK_TLVS = 0x200;
export const NLMSGERR_ATTR_MSG = 1;

export const RTM_NEWLINK = 16;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_NEWROUTE = 24;
export const RTM_GETROUTE = 26;
export const RTM_NEWNEXTHOP = 104;
export const RTM_NEWMULTICAST = 56;

export const RTNLGRP_LINK = 1;
export const RTNLGRP_IPV4_IFADDR = 5;
export const RTNLGRP_IPV4_ROUTE = 7;
export const RTNLGRP_NEXTHOP = 32;
/** IPv4 multicast group joins on interfaces (RTM_NEWMULTICAST); only reachable by NETLINK_ADD_MEMBERSHIP. */
export const RTNLGRP_IPV4_MCADDR = 37;

const IFLA_IFNAME = 3;
const RTA_DST = 1;
const RTA_OIF = 4;
const AF_INET = 2;

const align4 = (n: number): number => (n + 3) & ~3;

export function nlmsg(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const len = 16 + payload.length;
  const b = Buffer.alloc(align4(len));
  b.writeUInt32LE(len, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq, 8);
  b.writeUInt32LE(0, 12);
  payload.copy(b, 16);
  return b;
}

/** struct ifinfomsg (16 bytes); `change` lets a test put a bogus value in the header. */
export function ifinfomsg(opts: { index?: number; change?: number } = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(opts.index ?? 0, 4);
  b.writeUInt32LE(opts.change ?? 0, 12);
  return b;
}

export function rtattr(type: number, data: Buffer): Buffer {
  const b = Buffer.alloc(align4(4 + data.length));
  b.writeUInt16LE(4 + data.length, 0);
  b.writeUInt16LE(type, 2);
  data.copy(b, 4);
  return b;
}

function ipv4(addr: string): Buffer {
  return Buffer.from(addr.split('.').map(Number));
}

/** struct rtmsg (12 bytes) for AF_INET. */
export function rtmsg(opts: { dstLen?: number; table?: number; protocol?: number; scope?: number; type?: number } = {}): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(AF_INET, 0);
  b.writeUInt8(opts.dstLen ?? 0, 1);
  b.writeUInt8(opts.table ?? 0, 4);
  b.writeUInt8(opts.protocol ?? 0, 5);
  b.writeUInt8(opts.scope ?? 0, 6);
  b.writeUInt8(opts.type ?? 0, 7);
  return b;
}

/** RTM_NEWROUTE for dst/len out of `ifindex` in the main table, scope link, proto 116. */
export function newRoute(seq: number, dst: string, dstLen: number, ifindex: number, flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL): Buffer {
  const oif = Buffer.alloc(4);
  oif.writeUInt32LE(ifindex, 0);
  const body = Buffer.concat([
    rtmsg({ dstLen, table: 254, protocol: 116, scope: 253, type: 1 }),
    rtattr(RTA_DST, ipv4(dst)),
    rtattr(RTA_OIF, oif),
  ]);
  return nlmsg(RTM_NEWROUTE, flags, seq, body);
}

export function linkDump(seq: number, header: { index?: number; change?: number } = {}): Buffer {
  return nlmsg(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, ifinfomsg(header));
}

export function routeDump(seq: number): Buffer {
  return nlmsg(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, rtmsg());
}

export interface RawMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

export function splitMessages(datagram: Buffer): RawMsg[] {
  const out: RawMsg[] = [];
  let off = 0;
  while (off + 16 <= datagram.length) {
    const len = datagram.readUInt32LE(off);
    if (len < 16 || off + len > datagram.length) throw new Error(`malformed netlink message at ${off} (len ${len})`);
    out.push({
      type: datagram.readUInt16LE(off + 4),
      flags: datagram.readUInt16LE(off + 6),
      seq: datagram.readUInt32LE(off + 8),
      pid: datagram.readUInt32LE(off + 12),
      payload: datagram.subarray(off + 16, off + len),
    });
    off += align4(len);
  }
  return out;
}

function attrs(buf: Buffer): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4) break;
    m.set(buf.readUInt16LE(off + 2) & 0x3fff, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return m;
}

export interface AckInfo {
  /** 0 for an ack, else -errno. */
  error: number;
  /** Bytes of the original request echoed back (16 = header only). */
  echoedLength: number;
  /** NLMSGERR_ATTR_MSG, when the kernel gave one. */
  extAckMsg?: string;
}

/** NLMSG_ERROR: int error, the echoed request (header only when capped), then ext-ack TLVs. */
export function parseAck(m: RawMsg): AckInfo {
  const error = m.payload.readInt32LE(0);
  const origLen = m.payload.readUInt32LE(4);
  const echoedLength = error === 0 || m.flags & NLM_F_CAPPED ? 16 : origLen;
  const info: AckInfo = { error, echoedLength };
  if (m.flags & NLM_F_ACK_TLVS) {
    const msg = attrs(m.payload.subarray(4 + align4(echoedLength))).get(NLMSGERR_ATTR_MSG);
    if (msg) info.extAckMsg = msg.toString('utf8').replace(/\0+$/, '');
  }
  return info;
}

/** NLMSG_DONE of a dump: int status (0 or -errno), then ext-ack TLVs when flagged. */
export function parseDone(m: RawMsg): AckInfo {
  const error = m.payload.length >= 4 ? m.payload.readInt32LE(0) : 0;
  const info: AckInfo = { error, echoedLength: 0 };
  if (m.flags & NLM_F_ACK_TLVS) {
    const msg = attrs(m.payload.subarray(4)).get(NLMSGERR_ATTR_MSG);
    if (msg) info.extAckMsg = msg.toString('utf8').replace(/\0+$/, '');
  }
  return info;
}

/** IFLA_IFNAME of an RTM_NEWLINK. */
export function linkName(m: RawMsg): string | undefined {
  return attrs(m.payload.subarray(16)).get(IFLA_IFNAME)?.toString('utf8').replace(/\0+$/, '');
}

/** The address family byte that starts rtmsg, ifaddrmsg and friends. */
export function family(m: RawMsg): number {
  return m.payload.readUInt8(0);
}

/** "a.b.c.d/len" of an AF_INET RTM_NEWROUTE (undefined for other families or no RTA_DST). */
export function routeDst(m: RawMsg): string | undefined {
  if (m.payload.readUInt8(0) !== AF_INET) return undefined;
  const dst = attrs(m.payload.subarray(12)).get(RTA_DST);
  return dst ? `${[...dst].join('.')}/${m.payload.readUInt8(1)}` : undefined;
}

/**
 * Everything a started socket delivers, recorded for assertions. `until` resolves once a
 * condition holds (checked after each delivery); hangs are caught by jest's global timeout.
 */
export class Recorder {
  readonly datagrams: Buffer[] = [];
  readonly messages: RawMsg[] = [];
  dataCalls = 0;
  overflows = 0;
  readonly errors: NativeError[] = [];
  #waiters: { cond: () => boolean; resolve: () => void }[] = [];

  constructor(readonly socket: NetlinkSocket) {
    socket.start({
      data: (datagrams) => {
        this.dataCalls++;
        for (const d of datagrams) {
          this.datagrams.push(d);
          this.messages.push(...splitMessages(d));
        }
        this.#check();
      },
      overflow: () => {
        this.overflows++;
        this.#check();
      },
      error: (err) => {
        this.errors.push(err);
        this.#check();
      },
    });
  }

  until(cond: () => boolean): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ cond, resolve }));
  }

  /** Messages answering request `seq` (a dump's parts, its DONE, or an ack). */
  answers(seq: number): RawMsg[] {
    return this.messages.filter((m) => m.seq === seq);
  }

  /** Resolves when request `seq` is finished: an NLMSG_ERROR, or the NLMSG_DONE of a dump. */
  async finished(seq: number): Promise<RawMsg[]> {
    await this.until(() => this.answers(seq).some((m) => m.type === NLMSG_ERROR || m.type === NLMSG_DONE));
    return this.answers(seq);
  }

  #check(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.cond()) return true;
      w.resolve();
      return false;
    });
  }
}
