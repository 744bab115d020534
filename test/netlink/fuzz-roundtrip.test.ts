/**
 * Property tests: random valid objects of every message family survive encode → decode, and the
 * bytes are stable (encode ∘ decode ∘ encode = encode).
 * FUZZ_RUNS keeps CI to a few seconds; raise it (or set TUNKEEPER_FUZZ_RUNS) to search harder.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  decodeMessages,
  encodeMessage,
  formatIPv4,
  formatIPv6,
  formatMac,
  type RawAttr,
  type RtnlMessageInit,
} from '../../netlink/codec/index.js';
import * as C from '../../netlink/constants/index.js';
import { canonicalJson } from '../fixtures/netlink/fixtures.js';

const FUZZ_RUNS = Number(process.env.TUNKEEPER_FUZZ_RUNS ?? 100);

// ---- value arbitraries ------------------------------------------------------------------------
const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const s32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const bytes = (max = 24): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b));
const ipv4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => formatIPv4(b, 0));
// Zero groups are frequent in real IPv6 addresses: bias towards them to exercise '::'.
const ipv6 = fc
  .tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), u8)
  .map(([b, mask]) => {
    const buf = Buffer.from(b);
    for (let g = 0; g < 8; g++) if (mask & (1 << g)) buf.writeUInt16BE(0, 2 * g);
    return formatIPv6(buf, 0);
  });
const ip = fc.oneof(ipv4, ipv6);
const mac = fc.uint8Array({ maxLength: 20 }).map((b) => formatMac(b, 0, b.length));
const text = fc.string({ unit: 'grapheme', maxLength: 24 }).filter((s) => !s.includes('\0'));
/** Raw attributes of types no table knows (the tables stop well below 200). */
const rawAttrs = fc.array(fc.record({ type: fc.integer({ min: 200, max: 0x3fff }), data: bytes() }), { maxLength: 3 });

/** fc.record with every key optional (each present or absent at random). */
function optional<T extends Record<string, unknown>>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<Partial<T>> {
  return fc.record(model, { requiredKeys: [] }) as fc.Arbitrary<Partial<T>>;
}
function withRaw<T extends object>(arb: fc.Arbitrary<T>): fc.Arbitrary<T & { rawAttrs?: RawAttr[] }> {
  return fc.tuple(arb, fc.option(rawAttrs, { nil: undefined })).map(([o, raw]) => (raw && raw.length ? { ...o, rawAttrs: raw } : o));
}

// ---- message arbitraries ----------------------------------------------------------------------
const tun = optional({
  type: u8,
  owner: u32,
  group: u32,
  pi: fc.boolean(),
  vnetHdr: fc.boolean(),
  persist: fc.boolean(),
  multiQueue: fc.boolean(),
  numQueues: u32,
  numDisabledQueues: u32,
});
const linkInfo = fc.oneof(
  fc.record({ kind: fc.constant('tun'), tun: withRaw(tun) }, { requiredKeys: ['kind'] }),
  optional({ kind: text.filter((k) => k !== 'tun'), data: rawAttrs, slaveKind: text, slaveData: rawAttrs }),
);
const link = fc.tuple(
  fc.record({ family: u8, linkType: u16, ifindex: s32, flags: u32, change: u32 }),
  withRaw(
    optional({
      ifname: text,
      mtu: u32,
      minMtu: u32,
      maxMtu: u32,
      txqlen: u32,
      operstate: u8,
      linkmode: u8,
      group: u32,
      master: u32,
      link: u32,
      carrier: fc.boolean(),
      protoDown: fc.boolean(),
      ifalias: text,
      qdisc: text,
      address: mac,
      broadcast: mac,
      permAddress: mac,
      linkNetnsid: s32,
      extMask: u32,
      altIfname: text,
      linkInfo: linkInfo,
    }),
  ),
);

const address = fc.tuple(
  fc.record({ family: u8, prefixLen: u8, flags: u8, scope: u8, ifindex: u32 }),
  withRaw(
    optional({
      address: ip,
      local: ip,
      label: text,
      broadcast: ipv4,
      anycast: ip,
      multicast: ip,
      extendedFlags: u32,
      rtPriority: u32,
      targetNetnsid: s32,
      proto: u8,
      cacheInfo: fc.record({ preferred: u32, valid: u32, created: u32, updated: u32 }),
    }),
  ),
);

const via = fc.oneof(
  fc.record({ family: fc.constant(C.AF_INET), address: ipv4 }),
  fc.record({ family: fc.constant(C.AF_INET6), address: ipv6 }),
);
const nexthop = fc.tuple(
  fc.record({ flags: u8, hops: u8, ifindex: s32 }),
  withRaw(optional({ gateway: ip, via, flow: u32, encapType: u16, encap: bytes(), newdst: bytes() })),
);
const metrics = withRaw(
  optional({ lock: u32, mtu: u32, window: u32, rtt: u32, advmss: u32, hoplimit: u32, initcwnd: u32, features: u32, rtoMin: u32, quickack: u32, ccAlgo: text }),
);
const route = fc.tuple(
  fc.record({ family: u8, dstLen: u8, srcLen: u8, tos: u8, headerTable: u8, protocol: u8, scope: u8, type: u8, flags: u32 }),
  withRaw(
    optional({
      table: u32,
      dst: ip,
      src: ip,
      iif: u32,
      oif: u32,
      gateway: ip,
      via,
      metric: u32,
      prefsrc: ip,
      metrics,
      multipath: fc.array(nexthop.map(([f, a]) => ({ ...f, ...a })), { maxLength: 4 }),
      flow: u32,
      cacheInfo: fc.record({ clntref: u32, lastuse: u32, expires: u32, error: u32, used: u32, id: u32, ts: u32, tsage: u32 }),
      mark: u32,
      newdst: bytes(),
      pref: u8,
      encapType: u16,
      encap: bytes(),
      expires: u32,
      uid: u32,
      ttlPropagate: u8,
      ipProto: u8,
      sport: u16,
      dport: u16,
      nhId: u32,
    }),
  ),
);

const neighbour = fc.tuple(
  fc.record({ family: u8, ifindex: s32, state: u16, flags: u8, type: u8 }),
  withRaw(
    optional({
      dst: ip,
      lladdr: mac,
      cacheInfo: fc.record({ confirmed: u32, used: u32, updated: u32, refcnt: u32 }),
      probes: u32,
      vlan: u16,
      port: u16,
      vni: u32,
      outIfindex: u32,
      master: u32,
      linkNetnsid: s32,
      protocol: u8,
      nhId: u32,
      flagsExt: u32,
    }),
  ),
);

const range16 = fc.record({ start: u16, end: u16 });
const rule = fc.tuple(
  fc.record({ family: u8, dstLen: u8, srcLen: u8, tos: u8, headerTable: u8, action: u8, flags: u32 }),
  withRaw(
    optional({
      dst: ip,
      src: ip,
      iifname: text,
      oifname: text,
      goto: u32,
      priority: u32,
      fwmark: u32,
      fwmask: u32,
      flow: u32,
      tunId: fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
      suppressIfgroup: u32,
      suppressPrefixlen: u32,
      table: u32,
      l3mdev: u8,
      uidRange: fc.record({ start: u32, end: u32 }),
      protocol: u8,
      ipProto: u8,
      sportRange: range16,
      dportRange: range16,
    }),
  ),
);

const header = (types: number[]): fc.Arbitrary<{ type: number; flags: number; seq: number; pid: number }> =>
  fc.record({ type: fc.constantFrom(...types), flags: u16, seq: u32, pid: u32 });

const extAck = withRaw(optional({ message: text, offset: u32, cookie: bytes(), policy: bytes(), missingType: u32, missingNest: u32 }));
const errno = fc.integer({ min: -0x7fffffff, max: 0x80000000 });

const message: fc.Arbitrary<RtnlMessageInit> = fc.oneof(
  fc.tuple(header([C.RTM_NEWLINK, C.RTM_DELLINK, C.RTM_GETLINK, C.RTM_SETLINK]), link).map(([h, [f, a]]) => ({ kind: 'link' as const, header: h, body: { ...f, ...a } })),
  fc.tuple(header([C.RTM_NEWADDR, C.RTM_DELADDR]), address).map(([h, [f, a]]) => ({ kind: 'address' as const, header: h, body: { ...f, ...a } })),
  fc.tuple(header([C.RTM_NEWROUTE, C.RTM_DELROUTE, C.RTM_GETROUTE]), route).map(([h, [f, a]]) => ({ kind: 'route' as const, header: h, body: { ...f, ...a } })),
  fc.tuple(header([C.RTM_NEWNEIGH, C.RTM_DELNEIGH]), neighbour).map(([h, [f, a]]) => ({ kind: 'neighbour' as const, header: h, body: { ...f, ...a } })),
  fc.tuple(header([C.RTM_NEWRULE, C.RTM_DELRULE]), rule).map(([h, [f, a]]) => ({ kind: 'rule' as const, header: h, body: { ...f, ...a } })),
  fc
    .tuple(header([C.NLMSG_ERROR]), errno, fc.record({ length: fc.constant(16), type: u16, flags: u16, seq: u32, pid: u32 }), fc.option(extAck, { nil: undefined }))
    .map(([h, e, request, ack]) => ({
      kind: 'error' as const,
      header: { ...h, flags: h.flags & ~(C.NLM_F_CAPPED | C.NLM_F_ACK_TLVS) },
      body: ack === undefined ? { errno: e, request } : { errno: e, request, extAck: ack },
    })),
  fc.tuple(header([C.NLMSG_DONE]), errno, fc.option(extAck, { nil: undefined })).map(([h, e, ack]) => ({
    kind: 'done' as const,
    header: { ...h, flags: h.flags & ~C.NLM_F_ACK_TLVS },
    body: ack === undefined ? { errno: e } : { errno: e, extAck: ack },
  })),
);

// ---- the property ------------------------------------------------------------------------------

/** Removes attrOrder everywhere (decoding adds it when raw attributes are present). */
function withoutOrder(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutOrder);
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (k !== 'attrOrder') out[k] = withoutOrder(x);
  return out;
}

describe('encode → decode round trip (property)', () => {
  it('every family, random valid objects', () => {
    fc.assert(
      fc.property(message, (m) => {
        const bytes = encodeMessage(m);
        const decoded = decodeMessages(bytes);
        expect(decoded).toHaveLength(1);
        const [d] = decoded;
        expect(d!.kind).toBe(m.kind);
        expect(d!.header).toMatchObject({ type: m.header.type, seq: m.header.seq, pid: m.header.pid, length: bytes.length });
        expect(canonicalJson(withoutOrder(d!.body))).toBe(canonicalJson(withoutOrder(m.body)));
        expect(encodeMessage(d!)).toEqual(bytes);
      }),
      { numRuns: FUZZ_RUNS * 2 },
    );
  });

  it('many messages in one buffer decode in order', () => {
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 5 }), (msgs) => {
        const bytes = Buffer.concat(msgs.map((m) => encodeMessage(m)));
        const decoded = decodeMessages(bytes);
        expect(decoded.map((d) => d.kind)).toEqual(msgs.map((m) => m.kind));
        expect(Buffer.concat(decoded.map((d) => encodeMessage(d)))).toEqual(bytes);
      }),
      { numRuns: Math.ceil(FUZZ_RUNS / 2) },
    );
  });
});
