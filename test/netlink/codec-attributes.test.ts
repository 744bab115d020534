/**
 * The lossless attribute machinery: unknown, repeated and oddly shaped attributes survive a
 * decode/encode round trip byte for byte; typed fields hold only what re-encodes identically;
 * edited objects encode as edited; bad values fail with NetlinkEncodeError naming the field.
 * Messages here are assembled by hand, byte by byte, independently of the encoder.
 */
import { describe, expect, it } from '@jest/globals';
import {
  MAX_NEST_DEPTH,
  NetlinkDecodeError,
  NetlinkEncodeError,
  NetlinkWriter,
  decodeAttrTree,
  decodeMessages,
  encodeMessage,
  encodeMessages,
  writeLinkMessage,
  writeNeighbourMessage,
  writeRouteMessage,
  writeRuleMessage,
  type LinkMessage,
  type MessageBodies,
  type MessageKind,
  type RouteMessage,
  type RtnlMessage,
} from '../../netlink/codec/index.js';
import { ROUTE_ATTRS } from '../../netlink/codec/route.js';
import * as C from '../../netlink/constants/index.js';
import { hexBuffers, loadFixture } from '../fixtures/netlink/fixtures.js';

// ---- hand assembly --------------------------------------------------------------------------
const u16 = (v: number): Buffer => Buffer.from([v & 0xff, v >> 8]);
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
function attr(type: number, payload: Buffer | number[] | string): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : Buffer.from(payload);
  const head = Buffer.concat([u16(4 + data.length), u16(type), data]);
  return Buffer.concat([head, Buffer.alloc((4 - (head.length % 4)) % 4)]);
}
function msg(type: number, payload: Buffer, flags = 0, seq = 1): Buffer {
  return Buffer.concat([u32(16 + payload.length), u16(type), u16(flags), u32(seq), u32(0), payload]);
}
const ifinfomsg = (ifindex = 7): Buffer => Buffer.concat([Buffer.from([0, 0]), u16(1), u32(ifindex), u32(0x1003), u32(0)]);
const rtmsg = (family = C.AF_INET, dstLen = 24): Buffer => Buffer.concat([Buffer.from([family, dstLen, 0, 0, 100, 116, 0, 1]), u32(0)]);

function only<K extends MessageKind>(buf: Buffer, kind: K): MessageBodies[K] {
  const msgs = decodeMessages(buf);
  expect(msgs).toHaveLength(1);
  expect(msgs[0]!.kind).toBe(kind);
  return msgs[0]!.body as MessageBodies[K];
}
const roundTrip = (buf: Buffer): string => encodeMessages(decodeMessages(buf)).toString('hex');

// ---------------------------------------------------------------------------------------------

describe('unknown and repeated attributes', () => {
  it('keeps an unknown attribute as type + bytes, in place', () => {
    const buf = msg(C.RTM_NEWLINK, Buffer.concat([ifinfomsg(), attr(C.IFLA_IFNAME, 'tk0\0'), attr(999, [1, 2, 3]), attr(C.IFLA_MTU, u32(1400))]));
    const link = only(buf, 'link');
    expect(link).toMatchObject({ ifname: 'tk0', mtu: 1400, attrOrder: [C.IFLA_IFNAME, 999, C.IFLA_MTU] });
    expect(link.rawAttrs).toEqual([{ type: 999, data: Buffer.from([1, 2, 3]) }]);
    expect(roundTrip(buf)).toBe(buf.toString('hex'));
  });

  it('types the first of two same attributes and keeps the second raw', () => {
    const buf = msg(C.RTM_NEWLINK, Buffer.concat([ifinfomsg(), attr(C.IFLA_MTU, u32(1400)), attr(C.IFLA_MTU, u32(9000))]));
    const link = only(buf, 'link');
    expect(link.mtu).toBe(1400);
    expect(link.rawAttrs).toEqual([{ type: C.IFLA_MTU, data: u32(9000) }]);
    expect(roundTrip(buf)).toBe(buf.toString('hex'));
  });

  it('keeps flag bits of unknown and nested attributes', () => {
    const nested = C.NLA_F_NESTED | 900;
    const buf = msg(C.RTM_NEWLINK, Buffer.concat([ifinfomsg(), attr(nested, attr(1, u32(5))), attr(C.NLA_F_NET_BYTEORDER | 901, u32(6))]));
    expect(only(buf, 'link').attrOrder).toEqual([nested, C.NLA_F_NET_BYTEORDER | 901]);
    expect(roundTrip(buf)).toBe(buf.toString('hex'));
  });
});

describe('typed fields hold only what re-encodes identically', () => {
  const cases: [string, Buffer][] = [
    ['a u32 of 8 bytes', attr(C.IFLA_MTU, Buffer.concat([u32(1), u32(2)]))],
    ['a u32 with NLA_F_NET_BYTEORDER', attr(C.IFLA_MTU | C.NLA_F_NET_BYTEORDER, u32(1500))],
    ['a string without its NUL', attr(C.IFLA_IFNAME, 'tk0')],
    ['a string with an inner NUL', attr(C.IFLA_IFNAME, 'tk\0x\0')],
    ['a string of invalid UTF-8', attr(C.IFLA_IFALIAS, Buffer.from([0xff, 0xfe, 0x41, 0]))],
    ['a boolean of value 2', attr(C.IFLA_CARRIER, [2])],
    ['an empty string attribute', attr(C.IFLA_QDISC, [])],
    ['a nest whose last inner attribute is unpadded', Buffer.concat([u16(4 + 5), u16(C.IFLA_LINKINFO), attr(C.IFLA_INFO_KIND, 'v').subarray(0, 5), Buffer.alloc(3)])],
    ['tun data that is not attributes', attr(C.IFLA_LINKINFO, Buffer.concat([attr(C.IFLA_INFO_KIND, 'tun\0'), attr(C.IFLA_INFO_DATA, [1, 2, 3, 4, 5, 6])]))],
  ];
  /** Every raw attribute anywhere in a decoded object. */
  function rawsIn(o: unknown): unknown[] {
    if (o === null || typeof o !== 'object' || o instanceof Uint8Array) return [];
    const own = Array.isArray((o as { rawAttrs?: unknown[] }).rawAttrs) ? (o as { rawAttrs: unknown[] }).rawAttrs : [];
    return [...own, ...Object.entries(o).flatMap(([k, v]) => (k === 'rawAttrs' ? [] : rawsIn(v)))];
  }
  it.each(cases)('%s stays raw and round-trips', (_name, bad) => {
    const buf = msg(C.RTM_NEWLINK, Buffer.concat([ifinfomsg(), bad]));
    expect(rawsIn(only(buf, 'link'))).toHaveLength(1);
    expect(roundTrip(buf)).toBe(buf.toString('hex'));
  });

  it('accepts valid UTF-8 beyond ASCII, and a real U+FFFD', () => {
    const buf = msg(C.RTM_NEWLINK, Buffer.concat([ifinfomsg(), attr(C.IFLA_IFALIAS, Buffer.from('tunkeeper:é\ufffd😀\0', 'utf8'))]));
    expect(only(buf, 'link').ifalias).toBe('tunkeeper:é\ufffd😀');
    expect(roundTrip(buf)).toBe(buf.toString('hex'));
  });

  it('an address of 5 bytes is not an IP address', () => {
    const buf = msg(C.RTM_NEWROUTE, Buffer.concat([rtmsg(), attr(C.RTA_DST, [198, 18, 0, 0, 1])]));
    const r = only(buf, 'route');
    expect(r.dst).toBeUndefined();
    expect(r.rawAttrs).toEqual([{ type: C.RTA_DST, data: Buffer.from([198, 18, 0, 0, 1]) }]);
    expect(roundTrip(buf)).toBe(buf.toString('hex'));
  });

  it('decodes big-endian fields (ports, tunnel id) and structs', () => {
    const rule = Buffer.concat([
      Buffer.from([C.AF_INET, 0, 0, 0, 0, 0, 0, C.FR_ACT_TO_TBL]),
      u32(0),
      attr(C.FRA_TUN_ID, Buffer.from('0000000000000abc', 'hex')),
      attr(C.FRA_UID_RANGE, Buffer.concat([u32(1000), u32(2000)])),
      attr(C.FRA_SPORT_RANGE, Buffer.concat([u16(80), u16(88)])),
    ]);
    const buf = msg(C.RTM_NEWRULE, rule);
    expect(only(buf, 'rule')).toMatchObject({ tunId: 0xabcn, uidRange: { start: 1000, end: 2000 }, sportRange: { start: 80, end: 88 } });
    expect(roundTrip(buf)).toBe(buf.toString('hex'));
    const neigh = msg(C.RTM_NEWNEIGH, Buffer.concat([Buffer.from([C.AF_BRIDGE, 0, 0, 0]), u32(3), u16(C.NUD_PERMANENT), Buffer.from([0, 0]), attr(C.NDA_PORT, [0x12, 0xb5])]));
    expect(only(neigh, 'neighbour').port).toBe(4789);
    expect(roundTrip(neigh)).toBe(neigh.toString('hex'));
  });
});

describe('attribute order', () => {
  it('is omitted when the wire order is the table order', () => {
    const buf = msg(C.RTM_NEWROUTE, Buffer.concat([rtmsg(), attr(C.RTA_TABLE, u32(100)), attr(C.RTA_DST, [198, 18, 0, 0]), attr(C.RTA_OIF, u32(3))]));
    expect(only(buf, 'route').attrOrder).toBeUndefined();
  });
  it('is recorded when it differs, and replayed', () => {
    const buf = msg(C.RTM_NEWROUTE, Buffer.concat([rtmsg(), attr(C.RTA_OIF, u32(3)), attr(C.RTA_DST, [198, 18, 0, 0]), attr(C.RTA_TABLE, u32(100))]));
    expect(only(buf, 'route').attrOrder).toEqual([C.RTA_OIF, C.RTA_DST, C.RTA_TABLE]);
    expect(roundTrip(buf)).toBe(buf.toString('hex'));
  });
  it('is recorded when a known nest carries a flag the table does not default to', () => {
    const buf = msg(C.RTM_NEWROUTE, Buffer.concat([rtmsg(), attr(C.RTA_METRICS | C.NLA_F_NESTED, attr(C.RTAX_MTU, u32(1400)))]));
    const r = only(buf, 'route');
    expect(r.metrics).toEqual({ mtu: 1400 });
    expect(r.attrOrder).toEqual([C.RTA_METRICS | C.NLA_F_NESTED]);
    expect(roundTrip(buf)).toBe(buf.toString('hex'));
  });
});

describe('editing decoded objects', () => {
  const dump = hexBuffers(loadFixture('routes-v6').datagrams).flatMap((d) => decodeMessages(d));
  const v6 = dump.find((m) => m.kind === 'route' && m.body.dst === '2001:db8:20::') as Extract<RtnlMessage, { kind: 'route' }>;
  const encode = (r: RouteMessage): RouteMessage => {
    const w = new NetlinkWriter();
    writeRouteMessage(w, { type: C.RTM_NEWROUTE, flags: 0 }, r);
    return only(w.view(), 'route');
  };
  const strip = ({ attrOrder: _o, rawAttrs: _r, ...rest }: RouteMessage): Partial<RouteMessage> => rest;

  it('a changed field is encoded with its new value, in place', () => {
    expect(v6.body.attrOrder).toBeDefined();
    const out = encode({ ...v6.body, metric: 77 });
    expect(out).toEqual({ ...v6.body, metric: 77 });
  });
  it('a removed field disappears, a removed raw attribute too', () => {
    const { gateway: _g, ...noGateway } = v6.body;
    expect(strip(encode(noGateway))).toEqual(strip(noGateway as RouteMessage));
  });
  it('an added field is appended after the recorded order', () => {
    const out = encode({ ...v6.body, mark: 5 });
    expect(out.mark).toBe(5);
    expect(out.attrOrder).toEqual([...v6.body.attrOrder!, C.RTA_MARK]);
  });
  it('a hand-built object is written in table order', () => {
    const w = new NetlinkWriter();
    writeRouteMessage(w, { type: C.RTM_NEWROUTE, flags: 0 }, { family: C.AF_INET, dstLen: 24, oif: 3, dst: '198.18.0.0', table: 1000 });
    const bytes = w.view();
    expect(bytes.subarray(28).toString('hex')).toBe(
      Buffer.concat([attr(C.RTA_TABLE, u32(1000)), attr(C.RTA_DST, [198, 18, 0, 0]), attr(C.RTA_OIF, u32(3))]).toString('hex'),
    );
  });
});

describe('the route table accessors', () => {
  it('read and write exactly the key of each field (they must match the table)', () => {
    const access = ROUTE_ATTRS.access!;
    ROUTE_ATTRS.fields.forEach((f, i) => {
      const o: Record<string, unknown> = {};
      access.set(o, i, 'x');
      expect(Object.keys(o)).toEqual([f.key]);
      expect(access.get({ [f.key]: 'y' }, i)).toBe('y');
    });
  });
});

describe('encode errors name the offending field', () => {
  const w = new NetlinkWriter();
  const cases: [string, () => void][] = [
    ['route.protocol', () => writeRouteMessage(w, { type: C.RTM_NEWROUTE, flags: 0 }, { protocol: 300 })],
    ['route.dst', () => writeRouteMessage(w, { type: C.RTM_NEWROUTE, flags: 0 }, { dst: '198.18.0' })],
    ['route.metric', () => writeRouteMessage(w, { type: C.RTM_NEWROUTE, flags: 0 }, { metric: -1 })],
    ['route.metrics.mtu', () => writeRouteMessage(w, { type: C.RTM_NEWROUTE, flags: 0 }, { metrics: { mtu: 1.5 } })],
    ['route.multipath[0].hops', () => writeRouteMessage(w, { type: C.RTM_NEWROUTE, flags: 0 }, { multipath: [{ flags: 0, hops: 256, ifindex: 1 }] })],
    ['route.via.address', () => writeRouteMessage(w, { type: C.RTM_NEWROUTE, flags: 0 }, { via: { family: C.AF_INET6, address: 'x:y' } })],
    ['link.ifname', () => writeLinkMessage(w, { type: C.RTM_NEWLINK, flags: 0 }, { ifname: 'a\0b' })],
    ['link.ifalias', () => writeLinkMessage(w, { type: C.RTM_NEWLINK, flags: 0 }, { ifalias: 'lone \ud800' })],
    ['link.address', () => writeLinkMessage(w, { type: C.RTM_NEWLINK, flags: 0 }, { address: '02:00:zz' })],
    ['link.linkInfo.tun.pi', () => writeLinkMessage(w, { type: C.RTM_NEWLINK, flags: 0 }, { linkInfo: { kind: 'tun', tun: { pi: 1 as unknown as boolean } } })],
    ['link.rawAttrs', () => writeLinkMessage(w, { type: C.RTM_NEWLINK, flags: 0 }, { rawAttrs: [{ type: 70000, data: Buffer.alloc(1) }] })],
    ['rule.tunId', () => writeRuleMessage(w, { type: C.RTM_NEWRULE, flags: 0 }, { tunId: 5 as unknown as bigint })],
    ['neighbour.lladdr', () => writeNeighbourMessage(w, { type: C.RTM_NEWNEIGH, flags: 0 }, { lladdr: 7 as unknown as string })],
    ['header.type', () => writeRouteMessage(w, { type: 0x10000, flags: 0 }, {})],
  ];
  it.each(cases)('%s', (field, fn) => {
    let caught: unknown;
    try {
      fn();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(NetlinkEncodeError);
    expect((caught as NetlinkEncodeError).field).toBe(field);
  });
});

describe('tun link data', () => {
  it('a hand-built tun link encodes and decodes to itself', () => {
    const link: LinkMessage = {
      family: 0,
      linkType: C.ARPHRD_NONE,
      ifindex: 9,
      flags: C.IFF_UP,
      change: 0,
      ifname: 'tk-edge0',
      mtu: 1420,
      ifalias: 'tunkeeper:edge',
      linkInfo: { kind: 'tun', tun: { type: C.TUN_TYPE_TUN, owner: 1000, pi: false, vnetHdr: true, persist: true, multiQueue: false } },
    };
    const out = only(encodeMessage({ kind: 'link', header: { type: C.RTM_NEWLINK, flags: 0 }, body: link }), 'link');
    expect(out).toEqual(link);
  });
  it('other kinds keep IFLA_INFO_DATA as a one-level list of raw attributes', () => {
    const bridge = hexBuffers(loadFixture('links').datagrams)
      .flatMap((d) => decodeMessages(d))
      .find((m) => m.kind === 'link' && m.body.ifname === 'tk-br0') as Extract<RtnlMessage, { kind: 'link' }>;
    expect(bridge.body.linkInfo?.kind).toBe('bridge');
    expect(bridge.body.linkInfo?.data?.length).toBeGreaterThan(10);
    expect(bridge.body.linkInfo?.tun).toBeUndefined();
  });
});

describe('generic attribute trees', () => {
  function nest(depth: number): Buffer {
    let inner = attr(1, u32(42));
    for (let i = 0; i < depth; i++) inner = attr(C.NLA_F_NESTED | 2, inner);
    return inner;
  }
  it('decode nested attributes', () => {
    const tree = decodeAttrTree(nest(2));
    expect(tree).toEqual([{ type: C.NLA_F_NESTED | 2, children: [{ type: C.NLA_F_NESTED | 2, children: [{ type: 1, data: u32(42) }] }] }]);
  });
  it('refuse nesting deeper than the bound', () => {
    expect(() => decodeAttrTree(nest(MAX_NEST_DEPTH))).not.toThrow();
    expect(() => decodeAttrTree(nest(MAX_NEST_DEPTH + 1))).toThrow(NetlinkDecodeError);
    expect(() => decodeAttrTree(nest(3), 0, undefined, 2)).toThrow(/nested deeper than 2/);
  });
  it('a deeply nested unknown attribute inside a message stays raw and harmless', () => {
    const buf = msg(C.RTM_NEWLINK, Buffer.concat([ifinfomsg(), nest(500)]));
    expect(roundTrip(buf)).toBe(buf.toString('hex'));
  });
});
