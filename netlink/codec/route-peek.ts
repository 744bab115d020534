/**
 * RoutePeek: a look at a route message's bytes before any object is made of it — its struct
 * rtmsg, then (only if asked) the few attributes a filter may test: RTA_TABLE, RTA_OIF, RTA_DST,
 * and whether RTA_PREFSRC or RTA_MULTIPATH are there.
 *
 * Why: a full relist of a table with 100k foreign routes decoded every one into an object with
 * strings, to keep a handful (~100 ms and tens of MiB a pass). A filter that peeks first decodes
 * only its candidates (controller/observe/prefilter.ts). One peek is reused for every message.
 *
 * What it promises, so a filter can say "no" safely: where `unusual` is false, `oif`, `table`
 * and the destination are what decodeRouteMessage types (first occurrence, exact size, no flag
 * bits). `unusual` is set for anything the full decoder might read otherwise or reject: damaged
 * framing, a flagged or repeated RTA_DST, a flagged or odd-sized RTA_OIF or RTA_TABLE.
 */
import { NetlinkDecodeError } from './errors.js';
import { rdU32 } from './bytes.js';
import { formatIp } from './ip.js';
import { AttrWalker } from './walker.js';
import { RTA_DST, RTA_MULTIPATH, RTA_OIF, RTA_PREFSRC, RTA_TABLE, RTMSG_LEN } from '../constants/route.js';

const EMPTY = Buffer.alloc(0);

export class RoutePeek {
  // struct rtmsg
  family = 0;
  dstLen = 0;
  srcLen = 0;
  tos = 0;
  /** rtm_table (the low 8 bits; see `table`). */
  headerTable = 0;
  protocol = 0;
  scope = 0;
  type = 0;
  /** RTM_F_* flags. */
  flags = 0;
  // After attributes():
  /** The effective table: RTA_TABLE when present, else rtm_table (routeTable). */
  table = 0;
  oif: number | undefined;
  /** RTA_PREFSRC is present (its value is not read). */
  prefsrc = false;
  /** RTA_MULTIPATH is present. */
  multipath = false;
  /** RTA_DST is present (a route without one is a default route). */
  hasDst = false;
  /** Something the full decoder might read otherwise, or reject (see the module comment). */
  unusual = false;

  #buf: Buffer = EMPTY;
  #start = 0;
  #end = 0;
  #dstAt = 0;
  #dstBytes = 0;
  readonly #w = new AttrWalker();

  /** Reads struct rtmsg of the route payload buf[start, end); false when the payload is too short for it. */
  header(buf: Buffer, start: number, end: number): boolean {
    this.#buf = buf;
    this.#start = start;
    this.#end = end;
    if (end - start < RTMSG_LEN) return false;
    this.family = buf[start]!;
    this.dstLen = buf[start + 1]!;
    this.srcLen = buf[start + 2]!;
    this.tos = buf[start + 3]!;
    this.headerTable = buf[start + 4]!;
    this.protocol = buf[start + 5]!;
    this.scope = buf[start + 6]!;
    this.type = buf[start + 7]!;
    this.flags = rdU32(buf, start + 8);
    return true;
  }

  /** Walks the attributes of the route header() read. */
  attributes(): this {
    this.table = this.headerTable;
    this.oif = undefined;
    this.prefsrc = this.multipath = this.hasDst = this.unusual = false;
    let seen = 0;
    try {
      const w = this.#w.reset(this.#buf, this.#start + RTMSG_LEN, this.#end);
      while (w.next()) {
        switch (w.type) {
          case RTA_DST:
            if ((seen & 1) !== 0 || w.flags !== 0) this.unusual = true;
            else {
              this.hasDst = true;
              this.#dstAt = w.offset;
              this.#dstBytes = w.length;
            }
            seen |= 1;
            break;
          case RTA_OIF: {
            const v = (seen & 2) === 0 && w.flags === 0 ? w.u32() : undefined;
            if (v === undefined && (seen & 2) === 0) this.unusual = true;
            if ((seen & 2) === 0) this.oif = v;
            seen |= 2;
            break;
          }
          case RTA_TABLE: {
            const v = (seen & 4) === 0 && w.flags === 0 ? w.u32() : undefined;
            if (v === undefined && (seen & 4) === 0) this.unusual = true;
            if (v !== undefined) this.table = v;
            seen |= 4;
            break;
          }
          case RTA_PREFSRC:
            this.prefsrc = true;
            break;
          case RTA_MULTIPATH:
            this.multipath = true;
            break;
          default:
        }
      }
    } catch (e) {
      if (!(e instanceof NetlinkDecodeError)) throw e;
      this.unusual = true;
    }
    return this;
  }

  /** RTA_DST's payload size in bytes (0 when absent). */
  get dstSize(): number {
    return this.hasDst ? this.#dstBytes : 0;
  }

  /**
   * The destination when RTA_DST holds 4 bytes, as the address's value in a signed 32-bit
   * integer (`value | 0`: it stays a small integer, where an unsigned one above 2^31 would be a
   * boxed heap number — an allocation per route in a 100k-route table); else undefined.
   */
  dst4(): number | undefined {
    return this.hasDst && this.#dstBytes === 4 ? this.#buf.readInt32BE(this.#dstAt) : undefined;
  }

  /** The destination as the codec spells it (4 or 16 bytes); undefined when absent or of another size. */
  dstText(): string | undefined {
    return this.hasDst ? formatIp(this.#buf, this.#dstAt, this.#dstBytes) : undefined;
  }
}
