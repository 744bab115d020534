/**
 * AttrWalker, RoutePeek: golden bytes assembled by hand (independently of the encoder) — typed
 * getters, flag bits, nests, padding, unknown types passed over, and damaged framing failing with
 * the same NetlinkDecodeError (message and offset) as the full decoder's attribute walk.
 */
import { describe, expect, it } from '@jest/globals';
import { AttrWalker, NetlinkDecodeError, RoutePeek, decodeAttrTree, forEachMessage } from '../../netlink/codec/index.js';
import * as C from '../../netlink/constants/index.js';

/** One attribute: header, payload, zero padding to 4 bytes (unless `pad` is false). */
function attr(type: number, payload: number[] | Buffer, pad = true): Buffer {
  const data = Buffer.from(payload);
  const head = Buffer.alloc(4);
  head.writeUInt16LE(4 + data.length, 0);
  head.writeUInt16LE(type, 2);
  const padding = pad ? (4 - (data.length & 3)) & 3 : 0;
  return Buffer.concat([head, data, Buffer.alloc(padding)]);
}
const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');

interface Seen {
  type: number;
  flags: number;
  offset: number;
  length: number;
}

/** Every attribute the walker visits over buf[start, end). */
function walk(buf: Buffer, start = 0, end = buf.length): Seen[] {
  const out: Seen[] = [];
  const w = new AttrWalker().reset(buf, start, end);
  while (w.next()) out.push({ type: w.type, flags: w.flags, offset: w.offset, length: w.length });
  return out;
}

function decodeError(f: () => unknown): { message: string; offset: number } | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    if (e instanceof NetlinkDecodeError) return { message: e.message, offset: e.offset };
    throw e;
  }
}

describe('AttrWalker', () => {
  it('reads each typed getter at its exact size, and nothing at any other size', () => {
    const buf = Buffer.concat([
      attr(1, [0xab]),
      attr(2, [0x34, 0x12]),
      attr(3, le32(0xfedcba98)),
      attr(4, le32(-2 >>> 0)),
      attr(5, [1, 2, 3, 4, 5, 6, 7, 8]),
      attr(6, cstr('tk-eth0')),
      attr(7, [1]),
      attr(8, [0x02, 0x00, 0x5e, 0x10, 0x00, 0xaa]),
      attr(9, [198, 51, 100, 7]),
      attr(10, [0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 1]),
    ]);
    const w = new AttrWalker().reset(buf, 0, buf.length);
    const got: unknown[] = [];
    while (w.next()) {
      switch (w.type) {
        case 1:
          got.push(w.u8(), w.u16(), w.u32());
          break;
        case 2:
          got.push(w.u16(), w.u8());
          break;
        case 3:
          got.push(w.u32(), w.u32be(), w.u64());
          break;
        case 4:
          got.push(w.s32(), w.u32());
          break;
        case 5:
          got.push(w.u64(), w.u32());
          break;
        case 6:
          got.push(w.string(), w.bytes());
          break;
        case 7:
          got.push(w.bool8());
          break;
        case 8:
          got.push(w.mac());
          break;
        case 9:
        case 10:
          got.push(w.ip());
          break;
      }
    }
    expect(got).toEqual([
      0xab,
      undefined,
      undefined,
      0x1234,
      undefined,
      0xfedcba98,
      0x98badcfe,
      undefined,
      -2,
      0xfffffffe,
      0x0807060504030201n,
      undefined,
      'tk-eth0',
      cstr('tk-eth0'),
      true,
      '02:00:5e:10:00:aa',
      '198.51.100.7',
      '2001:db8::1',
    ]);
    expect(w.exact).toBe(true);
  });

  it('strings and booleans: only what re-encodes identically', () => {
    const buf = Buffer.concat([attr(1, Buffer.from('no-nul')), attr(2, Buffer.from('a\0b\0')), attr(3, [0xff, 0xfe, 0]), attr(4, [2]), attr(5, [])]);
    const w = new AttrWalker().reset(buf, 0, buf.length);
    const got: unknown[] = [];
    while (w.next()) got.push(w.type <= 3 ? w.string() : w.bool8());
    expect(got).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('masks the flag bits off the type and reports them', () => {
    const buf = Buffer.concat([attr(C.IFLA_LINKINFO | C.NLA_F_NESTED, []), attr(7 | C.NLA_F_NET_BYTEORDER, [0, 80]), attr(0x3fff, [])]);
    const w = new AttrWalker().reset(buf, 0, buf.length);
    const got: unknown[] = [];
    while (w.next()) got.push([w.type, w.rawType, w.nested, w.netByteOrder, w.flags]);
    expect(got).toEqual([
      [C.IFLA_LINKINFO, C.IFLA_LINKINFO | C.NLA_F_NESTED, true, false, C.NLA_F_NESTED],
      [7, 7 | C.NLA_F_NET_BYTEORDER, false, true, C.NLA_F_NET_BYTEORDER],
      [0x3fff, 0x3fff, false, false, 0],
    ]);
  });

  it('steps over padding and unknown types, and walks nests (into a reused walker)', () => {
    const tunData = Buffer.concat([attr(C.IFLA_TUN_TYPE, [2]), attr(999, [9, 9, 9]), attr(C.IFLA_TUN_OWNER, le32(1000))]);
    const info = Buffer.concat([attr(C.IFLA_INFO_KIND, cstr('tun')), attr(C.IFLA_INFO_DATA | C.NLA_F_NESTED, tunData)]);
    const buf = Buffer.concat([attr(C.IFLA_IFNAME, cstr('tk0')), attr(500, [1]), attr(C.IFLA_LINKINFO | C.NLA_F_NESTED, info), attr(C.IFLA_MTU, le32(1400))]);
    const outer = new AttrWalker().reset(buf, 0, buf.length);
    const inner = new AttrWalker();
    const data = new AttrWalker();
    const found: Record<string, unknown> = {};
    while (outer.next()) {
      if (outer.type === C.IFLA_IFNAME) found.ifname = outer.string();
      if (outer.type === C.IFLA_MTU) found.mtu = outer.u32();
      if (outer.type !== C.IFLA_LINKINFO) continue;
      expect(outer.nestedWalker(inner)).toBe(inner);
      while (inner.next()) {
        if (inner.type === C.IFLA_INFO_KIND) found.kind = inner.string();
        if (inner.type !== C.IFLA_INFO_DATA) continue;
        inner.nestedWalker(data);
        while (data.next()) {
          if (data.type === C.IFLA_TUN_TYPE) found.tunType = data.u8();
          if (data.type === C.IFLA_TUN_OWNER) found.owner = data.u32();
        }
        found.dataExact = data.exact;
      }
    }
    expect(found).toEqual({ ifname: 'tk0', kind: 'tun', tunType: 2, owner: 1000, mtu: 1400, dataExact: true });
    // The unknown type 500 and 999 were visited and passed over, at their padded offsets.
    expect(walk(buf).map((a) => [a.type, a.offset, a.length])).toEqual([
      [C.IFLA_IFNAME, 4, 4],
      [500, 12, 1],
      [C.IFLA_LINKINFO, 20, info.length],
      [C.IFLA_MTU, 24 + info.length, 4],
    ]);
  });

  it('an unpadded last attribute ends the list but not exactly (the codec keeps such a nest raw)', () => {
    const buf = Buffer.concat([attr(1, le32(5)), attr(2, [1, 2, 3], false)]);
    expect(buf.length).toBe(15);
    const w = new AttrWalker().reset(buf, 0, buf.length);
    expect(walk(buf).map((a) => a.type)).toEqual([1, 2]);
    while (w.next());
    expect(w.exact).toBe(false);
    const padded = Buffer.concat([attr(1, le32(5)), attr(2, [1, 2, 3])]);
    const v = new AttrWalker().reset(padded, 0, padded.length);
    while (v.next());
    expect(v.exact).toBe(true);
  });

  it('throws NetlinkDecodeError for damaged framing, as the full decoder does', () => {
    const good = Buffer.concat([attr(1, le32(5)), attr(2, cstr('x'))]);
    const cases: Array<[string, Buffer]> = [
      ['truncated header', good.subarray(0, 8 + 2)],
      ['length past the end', (() => {
        const b = Buffer.from(good);
        b.writeUInt16LE(40, 8);
        return b;
      })()],
      ['length shorter than the header', (() => {
        const b = Buffer.from(good);
        b.writeUInt16LE(3, 8);
        return b;
      })()],
      ['truncated payload', good.subarray(0, good.length - 3)],
    ];
    for (const [name, b] of cases) {
      const mine = decodeError(() => walk(b));
      expect({ name, mine }).toEqual({ name, mine: decodeError(() => decodeAttrTree(b)) });
      expect(mine).toBeDefined();
    }
    expect(decodeError(() => walk(good.subarray(0, 13)))).toEqual({
      message: 'netlink decode error at byte 8: attribute type 2 has length 6, past the end of its container (5 bytes left)',
      offset: 8,
    });
    expect(decodeError(() => walk(Buffer.concat([good, Buffer.from([1, 0])])))?.message).toMatch(/2 stray bytes where an attribute header/);
  });

  it('bounds nesting depth', () => {
    let nest = attr(1, le32(1));
    for (let i = 0; i < 20; i++) nest = attr(1 | C.NLA_F_NESTED, nest);
    let w = new AttrWalker().reset(nest, 0, nest.length);
    const go = (): void => {
      for (;;) {
        expect(w.next()).toBe(true);
        w = w.nestedWalker();
      }
    };
    expect(decodeError(go)?.message).toMatch(/nested deeper than 16 levels/);
  });
});

describe('RoutePeek', () => {
  /** struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags. */
  const rtmsg = (family: number, dstLen: number, table: number, protocol: number): Buffer => Buffer.from([family, dstLen, 0, 0, table, protocol, 0, 1, 0, 0, 0, 0]);

  it('reads struct rtmsg, then the key attributes', () => {
    const b = Buffer.concat([rtmsg(C.AF_INET, 24, 252, 3), attr(C.RTA_TABLE, le32(1000)), attr(C.RTA_DST, [198, 51, 100, 0]), attr(C.RTA_OIF, le32(7)), attr(C.RTA_PREFSRC, [192, 0, 2, 1])]);
    const p = new RoutePeek();
    expect(p.header(b, 0, b.length)).toBe(true);
    expect([p.family, p.dstLen, p.headerTable, p.protocol, p.type]).toEqual([C.AF_INET, 24, 252, 3, 1]);
    p.attributes();
    expect([p.table, p.oif, p.prefsrc, p.multipath, p.unusual, p.hasDst, p.dstSize, p.dst4(), p.dstText()]).toEqual([1000, 7, true, false, false, true, 4, 0xc6336400 | 0, '198.51.100.0']);
    expect(p.header(b, 0, 11)).toBe(false);
  });

  it('calls unusual what the decoder may read otherwise: flags, repeats, odd sizes, damage', () => {
    const base = rtmsg(C.AF_INET6, 64, 254, 3);
    const dst6 = [0x20, 0x01, 0x0d, 0xb8, 0, 2, ...new Array<number>(10).fill(0)];
    const unusual = (...attrs: Buffer[]): boolean => {
      const b = Buffer.concat([base, ...attrs]);
      const p = new RoutePeek();
      p.header(b, 0, b.length);
      return p.attributes().unusual;
    };
    expect(unusual(attr(C.RTA_DST, dst6), attr(C.RTA_OIF, le32(2)))).toBe(false);
    expect(unusual(attr(C.RTA_DST | C.NLA_F_NET_BYTEORDER, dst6))).toBe(true);
    expect(unusual(attr(C.RTA_DST, dst6), attr(C.RTA_DST, dst6))).toBe(true);
    expect(unusual(attr(C.RTA_OIF, [2, 0]))).toBe(true);
    expect(unusual(attr(C.RTA_TABLE, [1, 0, 0, 0, 0, 0, 0, 0]))).toBe(true);
    expect(unusual(attr(C.RTA_DST, dst6).subarray(0, 10))).toBe(true);
  });
});

describe('forEachMessage', () => {
  it('visits each message header, and says so when the framing is damaged', () => {
    const msg = (type: number, seq: number, payload: number): Buffer => {
      const b = Buffer.alloc(16 + payload);
      b.writeUInt32LE(b.length, 0);
      b.writeUInt16LE(type, 4);
      b.writeUInt16LE(0x2, 6);
      b.writeUInt32LE(seq, 8);
      return b;
    };
    const d = Buffer.concat([msg(C.RTM_NEWLINK, 1, 16), msg(C.RTM_NEWROUTE, 2, 12)]);
    const seen: number[][] = [];
    expect(forEachMessage(d, (off, len, type, flags, seq) => seen.push([off, len, type, flags, seq]))).toBe(true);
    expect(seen).toEqual([
      [0, 32, C.RTM_NEWLINK, 2, 1],
      [32, 28, C.RTM_NEWROUTE, 2, 2],
    ]);
    const bad = Buffer.from(d);
    bad.writeUInt32LE(100, 32);
    seen.length = 0;
    expect(forEachMessage(bad, (off) => seen.push([off]))).toBe(false);
    expect(seen).toEqual([[0]]);
  });
});
