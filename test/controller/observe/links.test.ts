/**
 * observe/links.ts reads ObservedLinks straight from link dump bytes (netlink's LinkFieldReader,
 * over AttrWalker); it must answer exactly what toObservedLink(decodeLinkMessage(...)) answers —
 * the same object, or the same NetlinkDecodeError — on real kernel dumps (captured fixtures and a
 * live namespace with tun, tap, veth, bridge links), on hand-made tun messages with odd
 * attributes, and on all of those mutated at random. The reader's own fields are held to the
 * codec's typed fields the same way.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { decodeObservedLink, observedLinkDump } from '../../../controller/observe/links.js';
import { toObservedLink } from '../../../controller/observe/convert.js';
import { LinkFieldReader, NetlinkDecodeError, Rtnl, codec, constants as C, linkDump } from '../../../netlink/index.js';

const { NetlinkWriter, decodeLinkMessage, writeLinkMessage } = codec;
type LinkMessageInit = codec.LinkMessageInit;
import { fixtureNames, hexBuffers, loadFixture } from '../../fixtures/netlink/fixtures.js';
import { withNetns } from '../../helpers/netns.js';
import { describeKernel } from '../../helpers/tiers.js';

const FUZZ_RUNS = Number(process.env.TUNKEEPER_FUZZ_RUNS ?? 300);

type Outcome = unknown;

function run(f: () => unknown): Outcome {
  try {
    return { ok: f() ?? null };
  } catch (e) {
    if (e instanceof NetlinkDecodeError) return { threw: 'NetlinkDecodeError', message: e.message, offset: e.offset };
    throw e;
  }
}

/** Both readings of the link message payload buf[start, end). */
function both(buf: Buffer, start: number, end: number): [Outcome, Outcome] {
  return [run(() => toObservedLink(decodeLinkMessage(buf, start, end))), run(() => decodeObservedLink(buf, start, end))];
}

const reader = new LinkFieldReader();

/** The reader's fields and the codec's typed fields they stand for, of the payload buf[start, end). */
function bothFields(buf: Buffer, start: number, end: number): [Outcome, Outcome] {
  const codecFields = run(() => {
    const m = decodeLinkMessage(buf, start, end);
    const t = m.linkInfo?.tun;
    const tun = t === undefined ? undefined : { type: t.type, owner: t.owner, group: t.group, pi: t.pi, vnetHdr: t.vnetHdr, persist: t.persist, multiQueue: t.multiQueue };
    return [m.family, m.linkType, m.ifindex, m.flags, m.ifname, m.mtu, m.txqlen, m.address, m.ifalias, m.linkInfo?.kind, tun];
  });
  const readerFields = run(() => {
    const f = reader.read(buf, start, end);
    return [f.family, f.linkType, f.ifindex, f.flags, f.ifname, f.mtu, f.txqlen, f.address, f.ifalias, f.kind, f.tun === undefined ? undefined : { ...f.tun }];
  });
  return [codecFields, readerFields];
}

/** [payload start, end) of every RTM_NEWLINK message in a datagram. */
function linkPayloads(d: Buffer): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let off = 0; d.length - off >= C.NLMSG_HDRLEN; ) {
    const len = d.readUInt32LE(off);
    if (len < C.NLMSG_HDRLEN || len > d.length - off) break;
    if (d.readUInt16LE(off + 4) === C.RTM_NEWLINK) out.push([off + C.NLMSG_HDRLEN, off + len]);
    off += (len + 3) & ~3;
  }
  return out;
}

/** One link message payload as its own Buffer. */
function payloadOf(link: LinkMessageInit): Buffer {
  const w = new NetlinkWriter(4096);
  writeLinkMessage(w, { type: C.RTM_NEWLINK, flags: 0, seq: 1 }, link);
  const msg = Buffer.from(w.view());
  return Buffer.from(msg.subarray(C.NLMSG_HDRLEN, msg.readUInt32LE(0)));
}

/** The payload with the length of the attribute at `path` (types, outermost first) changed by `delta`. */
function nudgeLength(payload: Buffer, path: number[], delta: number): Buffer {
  const b = Buffer.from(payload);
  let [start, end] = [16, b.length];
  for (let depth = 0; depth < path.length; depth++) {
    let pos = start;
    while (pos + 4 <= end && (b.readUInt16LE(pos + 2) & 0x3fff) !== path[depth]) pos += (b.readUInt16LE(pos) + 3) & ~3;
    if (pos + 4 > end) throw new Error(`no attribute ${path[depth]}`);
    if (depth === path.length - 1) {
      b.writeUInt16LE(b.readUInt16LE(pos) + delta, pos);
      return b;
    }
    [start, end] = [pos + 4, pos + b.readUInt16LE(pos)];
  }
  return b;
}

const tunLink = (tun: Record<string, unknown>, extra: Partial<LinkMessageInit> = {}): LinkMessageInit => ({
  family: 0,
  linkType: 65534,
  ifindex: 7,
  flags: 0x1003,
  change: 0,
  ifname: 'tk-x0',
  mtu: 1400,
  txqlen: 500,
  ifalias: 'tunkeeper:x',
  linkInfo: { kind: 'tun', tun: tun as never },
  ...extra,
});

const handMade: Buffer[] = [
  payloadOf(tunLink({ type: 1, pi: false, vnetHdr: true, persist: true, multiQueue: false, numQueues: 0, numDisabledQueues: 0 })),
  payloadOf(tunLink({ type: 2, owner: 1000, group: 100, pi: true, vnetHdr: false, persist: true, multiQueue: true })),
  payloadOf(tunLink({ type: 2 }, { address: '02:00:00:00:00:AA' as string, ifalias: '' })),
  // The kind after the data: the codec keeps the data raw then.
  payloadOf(tunLink({ type: 1 }, { linkInfo: { kind: 'tun', tun: { type: 1, persist: true } as never, attrOrder: [C.IFLA_INFO_DATA | C.NLA_F_NESTED, C.IFLA_INFO_KIND] } })),
  // Repeats and flag bits: only the first occurrence is typed, never a flagged one.
  payloadOf(tunLink({ type: 1, persist: true }, { rawAttrs: [{ type: C.IFLA_MTU, data: Uint8Array.of(1, 2, 3, 4) }, { type: C.IFLA_IFNAME, data: Buffer.from('other\0') }], attrOrder: [C.IFLA_IFNAME, C.IFLA_MTU, C.IFLA_MTU, C.IFLA_IFNAME, C.IFLA_LINKINFO] })),
  payloadOf(tunLink({ type: 1 }, { ifname: undefined as never, rawAttrs: [{ type: C.IFLA_IFNAME | 0x4000, data: Buffer.from('flagged\0') }], attrOrder: [C.IFLA_IFNAME | 0x4000, C.IFLA_MTU] })),
  // Typed fields only hold what re-encodes identically: wrong lengths and values stay raw.
  payloadOf(tunLink({ type: 1, persist: true }, { mtu: undefined as never, txqlen: undefined as never, rawAttrs: [{ type: C.IFLA_MTU, data: new Uint8Array(8) }, { type: C.IFLA_TXQLEN, data: Uint8Array.of(1, 0) }], attrOrder: [C.IFLA_IFNAME, C.IFLA_MTU, C.IFLA_TXQLEN, C.IFLA_LINKINFO] })),
  payloadOf(tunLink({ type: 1, pi: true, rawAttrs: [{ type: C.IFLA_TUN_PERSIST, data: Uint8Array.of(2) }, { type: C.IFLA_TUN_OWNER, data: Uint8Array.of(1, 0) }], attrOrder: [C.IFLA_TUN_TYPE, C.IFLA_TUN_PI, C.IFLA_TUN_PERSIST, C.IFLA_TUN_OWNER] })),
  payloadOf(tunLink({ rawAttrs: [{ type: C.IFLA_TUN_TYPE, data: Uint8Array.of(2, 0, 0, 0) }], attrOrder: [C.IFLA_TUN_TYPE], persist: true })),
  payloadOf(tunLink({ type: 2 }, { ifalias: undefined as never, rawAttrs: [{ type: C.IFLA_IFALIAS | 0x8000, data: Buffer.from('tunkeeper:y\0') }], attrOrder: [C.IFLA_IFNAME, C.IFLA_IFALIAS | 0x8000, C.IFLA_LINKINFO] })),
  // A link info nest that ends inside its last attribute's padding is not canonical: kept raw.
  nudgeLength(payloadOf({ family: 0, linkType: 1, ifindex: 4, flags: 0, change: 0, ifname: 'br9', linkInfo: { kind: 'bridge' } }), [C.IFLA_LINKINFO], -1),
  nudgeLength(payloadOf(tunLink({ type: 2, persist: true })), [C.IFLA_LINKINFO], -4),
  // The same for the tun data inside it: kept raw, so no tun info.
  nudgeLength(payloadOf(tunLink({ type: 2, persist: true, multiQueue: true })), [C.IFLA_LINKINFO, C.IFLA_INFO_DATA], -1),
  payloadOf({ family: 0, linkType: 1, ifindex: 3, flags: 0, change: 0, ifname: 'veth0', mtu: 1500, address: 'aa:bb:cc:dd:ee:ff', linkInfo: { kind: 'veth', data: [{ type: 1, data: Uint8Array.of(0, 0, 0, 0) }] } }),
];

const fixtureLinks: Buffer[] = fixtureNames().flatMap((n) => {
  const fx = loadFixture(n);
  return [...hexBuffers(fx.datagrams), ...hexBuffers(fx.dumps)].flatMap((d) => linkPayloads(d).map(([s, e]) => Buffer.from(d.subarray(s, e))));
});

const corpus = [...fixtureLinks, ...handMade];

describe('observed links read from the bytes', () => {
  it('equal toObservedLink(decodeLinkMessage()) on captured kernel dumps and hand-made tun messages', () => {
    expect(fixtureLinks.length).toBeGreaterThan(3);
    let withTun = 0;
    for (const p of corpus) {
      const [a, b] = both(p, 0, p.length);
      expect(b).toEqual(a);
      const [x, y] = bothFields(p, 0, p.length);
      expect(y).toEqual(x);
      if ((b as { ok?: { tun?: unknown } }).ok?.tun !== undefined) withTun++;
    }
    expect(withTun).toBeGreaterThanOrEqual(5);
  });

  it('equal it on randomly damaged messages: the same link, or the same NetlinkDecodeError', () => {
    const mutation = fc.oneof(
      fc.record({ op: fc.constant('flip' as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ op: fc.constant('u16' as const), pos: fc.nat().map((n) => n & ~1), value: fc.oneof(fc.constantFrom(0, 1, 3, 4, 5, 8, 0x4001, 0x8012, 0xffff), fc.integer({ min: 0, max: 0xffff })) }),
      fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
      // Attribute headers sit on 4-byte boundaries: nudge a length there by a little.
      fc.record({ op: fc.constant('len' as const), pos: fc.nat().map((n) => n & ~3), delta: fc.constantFrom(-5, -4, -3, -1, 1, 3, 4, 8) }),
      fc.record({ op: fc.constant('byte' as const), pos: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    );
    fc.assert(
      fc.property(fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 4 }), (which, muts) => {
        let b = Buffer.from(corpus[which % corpus.length]!);
        for (const m of muts) {
          if (b.length < 2) break;
          if (m.op === 'flip') b[m.pos % b.length]! ^= 1 << m.bit;
          else if (m.op === 'u16') b.writeUInt16LE(m.value, m.pos % (b.length - 1));
          else if (m.op === 'byte') b[m.pos % b.length] = m.value;
          else if (m.op === 'len') {
            const at = (16 + m.pos) % (b.length - 1) & ~3;
            b.writeUInt16LE((b.readUInt16LE(at) + m.delta) & 0xffff, at);
          }
          else b = b.subarray(0, m.at % b.length);
        }
        const [x, y] = both(b, 0, b.length);
        expect(y).toEqual(x);
        const [f, g] = bothFields(b, 0, b.length);
        expect(g).toEqual(f);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describeKernel('observed links from a live link dump', () => {
  it('equal the codec path for tun, tap, multi-queue, veth, bridge and loopback links', async () => {
    await withNetns(async (ns) => {
      await ns.ip('tuntap', 'add', 'dev', 'tk-t0', 'mode', 'tun');
      await ns.ip('tuntap', 'add', 'dev', 'tk-t1', 'mode', 'tap', 'user', '1000', 'group', '100', 'multi_queue', 'vnet_hdr');
      await ns.ip('tuntap', 'add', 'dev', 'tk-t2', 'mode', 'tun', 'pi');
      await ns.ip('link', 'set', 'tk-t0', 'alias', 'tunkeeper:t0', 'mtu', '1400', 'up');
      await ns.ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
      await ns.ip('link', 'add', 'br0', 'type', 'bridge');
      await ns.ip('link', 'set', 'v1', 'master', 'br0');
      await Rtnl.with({ netns: ns.path }, async (rtnl) => {
        const spec = linkDump({});
        const pairs = await rtnl.dump({ ...spec, decode: (buf, s, e) => both(buf, s, e), keep: undefined });
        expect(pairs.length).toBe(7);
        for (const [a, b] of pairs) expect(b).toEqual(a);
        const links = (await rtnl.dump(observedLinkDump())).filter((l) => l !== null);
        const t1 = links.find((l) => l.ifname === 'tk-t1');
        expect(t1).toMatchObject({ kind: 'tun', tun: { mode: 'tap', owner: 1000, group: 100, multiQueue: true, vnetHdr: true, packetInfo: false, persist: true } });
        expect(links.find((l) => l.ifname === 'tk-t0')).toMatchObject({ kind: 'tun', alias: 'tunkeeper:t0', mtu: 1400, up: true, tun: { mode: 'tun' } });
        expect(links.find((l) => l.ifname === 'tk-t2')?.tun?.packetInfo).toBe(true);
        expect(links.find((l) => l.ifname === 'v0')?.macAddress).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      });
    });
  });
});
