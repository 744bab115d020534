/**
 * Golden bytes of RTM_GETROUTE lookups: writeRouteGetRequest must write exactly what iproute2's
 * `ip -d route get ...` sends.
 *
 * How the bytes were taken (iproute2 6.1.0, kernel 6.18): in a scratch namespace with
 *   lo (1), tk-v1 (2) and tk-v0 (3), a veth pair; 192.0.2.1/24 and 2001:db8:1::1/64 on tk-v0,
 *   ip netns exec NS strace -e trace=sendmsg -e write=3 ip -d route get ...
 * and the hex dump of the first sendmsg() on the rtnetlink socket (fd 3) kept verbatim as RAW.
 * Each case also spells the same bytes out field by field (uapi linux/netlink.h struct nlmsghdr,
 * linux/rtnetlink.h struct rtmsg and struct rtattr, all little-endian except addresses), and the
 * test checks that the spelled-out form IS the captured one, so the annotation cannot drift.
 *
 * `ip` sends NLM_F_REQUEST alone (rtnl_talk with an answer buffer asks no ack); the client's
 * request adds NLM_F_ACK, which client-route-get.test.ts checks on the wire.
 */
import { describe, expect, it } from '@jest/globals';
import { NetlinkWriter, decodeMessages, writeRouteGetRequest, type RouteGetQuery } from '../../netlink/codec/index.js';
import * as C from '../../netlink/constants/index.js';

interface GoldenCase {
  /** The command captured. */
  ip: string;
  /** The same request for writeRouteGetRequest. */
  query: RouteGetQuery;
  /** The strace hex dump, verbatim. */
  raw: string;
  /** The same bytes, field by field. */
  fields: Array<[hex: string, meaning: string]>;
}

// Shared pieces of the spelled-out form.
const hdr = (len: string, seq: string): Array<[string, string]> => [
  [len, 'nlmsg_len'],
  ['1a00', 'nlmsg_type RTM_GETROUTE (26)'],
  ['0100', 'nlmsg_flags NLM_F_REQUEST'],
  [seq, 'nlmsg_seq (as ip chose it)'],
  ['00000000', 'nlmsg_pid 0 (the kernel)'],
];
const rtmsg = (family: string, dstLen: string, srcLen: string, flags: string, flagsMeaning: string): Array<[string, string]> => [
  [family, family === '02' ? 'rtm_family AF_INET' : 'rtm_family AF_INET6'],
  [dstLen, `rtm_dst_len ${parseInt(dstLen, 16)}`],
  [srcLen, `rtm_src_len ${parseInt(srcLen, 16)}`],
  ['00', 'rtm_tos 0'],
  ['00', 'rtm_table 0 (strict checking refuses any other)'],
  ['00', 'rtm_protocol 0'],
  ['00', 'rtm_scope 0'],
  ['00', 'rtm_type 0'],
  [flags, `rtm_flags ${flagsMeaning}`],
];
const DST4: Array<[string, string]> = [
  ['0800', 'rta_len 8'],
  ['0100', 'rta_type RTA_DST'],
  ['c6336407', '198.51.100.7'],
];
const DST6: Array<[string, string]> = [
  ['1400', 'rta_len 20'],
  ['0100', 'rta_type RTA_DST'],
  ['20010db8000100000000000000000007', '2001:db8:1::7'],
];
const OIF3: Array<[string, string]> = [
  ['0800', 'rta_len 8'],
  ['0400', 'rta_type RTA_OIF'],
  ['03000000', 'ifindex 3 (tk-v0)'],
];
const SEQ = '287e166b';

const CASES: GoldenCase[] = [
  {
    ip: 'ip -d route get 198.51.100.7',
    query: { dst: '198.51.100.7' },
    raw: '240000001a000100277e166b0000000002200000000000000010000008000100c6336407',
    fields: [...hdr('24000000', '277e166b'), ...rtmsg('02', '20', '00', '00100000', 'RTM_F_LOOKUP_TABLE'), ...DST4],
  },
  {
    ip: 'ip -d route get 198.51.100.7 oif tk-v0',
    query: { dst: '198.51.100.7', oif: 3 },
    raw: '2c0000001a000100287e166b0000000002200000000000000010000008000100c63364070800040003000000',
    fields: [...hdr('2c000000', SEQ), ...rtmsg('02', '20', '00', '00100000', 'RTM_F_LOOKUP_TABLE'), ...DST4, ...OIF3],
  },
  {
    ip: 'ip -d route get 198.51.100.7 fibmatch',
    query: { dst: '198.51.100.7', fibMatch: true },
    raw: '240000001a000100287e166b0000000002200000000000000030000008000100c6336407',
    fields: [...hdr('24000000', SEQ), ...rtmsg('02', '20', '00', '00300000', 'RTM_F_LOOKUP_TABLE | RTM_F_FIB_MATCH'), ...DST4],
  },
  {
    ip: 'ip -d route get 198.51.100.7 oif tk-v0 fibmatch',
    query: { dst: '198.51.100.7', oif: 3, fibMatch: true },
    raw: '2c0000001a000100287e166b0000000002200000000000000030000008000100c63364070800040003000000',
    fields: [...hdr('2c000000', SEQ), ...rtmsg('02', '20', '00', '00300000', 'RTM_F_LOOKUP_TABLE | RTM_F_FIB_MATCH'), ...DST4, ...OIF3],
  },
  {
    ip: 'ip -d route get 2001:db8:1::7',
    query: { dst: '2001:db8:1::7' },
    raw: '300000001a000100287e166b000000000a80000000000000000000001400010020010db8000100000000000000000007',
    fields: [...hdr('30000000', SEQ), ...rtmsg('0a', '80', '00', '00000000', '0 (IPv6 refuses RTM_F_LOOKUP_TABLE)'), ...DST6],
  },
  {
    ip: 'ip -d route get 2001:db8:1::7 oif tk-v0',
    query: { dst: '2001:db8:1::7', oif: 3 },
    raw: '380000001a000100287e166b000000000a80000000000000000000001400010020010db80001000000000000000000070800040003000000',
    fields: [...hdr('38000000', SEQ), ...rtmsg('0a', '80', '00', '00000000', '0'), ...DST6, ...OIF3],
  },
  {
    ip: 'ip -d route get 2001:db8:1::7 fibmatch',
    query: { dst: '2001:db8:1::7', fibMatch: true },
    raw: '300000001a000100287e166b000000000a80000000000000002000001400010020010db8000100000000000000000007',
    fields: [...hdr('30000000', SEQ), ...rtmsg('0a', '80', '00', '00200000', 'RTM_F_FIB_MATCH'), ...DST6],
  },
  {
    ip: 'ip -d route get 2001:db8:1::7 oif tk-v0 fibmatch',
    query: { dst: '2001:db8:1::7', oif: 3, fibMatch: true },
    raw: '380000001a000100287e166b000000000a80000000000000002000001400010020010db80001000000000000000000070800040003000000',
    fields: [...hdr('38000000', SEQ), ...rtmsg('0a', '80', '00', '00200000', 'RTM_F_FIB_MATCH'), ...DST6, ...OIF3],
  },
  {
    ip: 'ip -d route get 198.51.100.7 from 192.0.2.9 uid 1000 iif tk-v1 oif tk-v0 mark 0x10 fibmatch',
    query: { dst: '198.51.100.7', src: '192.0.2.9', uid: 1000, iif: 2, oif: 3, mark: 16, fibMatch: true },
    raw: '4c0000001a000100287e166b0000000002202000000000000030000008000100c633640708000200c000020908001900e8030000080003000200000008000400030000000800100010000000',
    fields: [
      ...hdr('4c000000', SEQ),
      ...rtmsg('02', '20', '20', '00300000', 'RTM_F_LOOKUP_TABLE | RTM_F_FIB_MATCH'),
      ...DST4,
      ['0800', 'rta_len 8'],
      ['0200', 'rta_type RTA_SRC'],
      ['c0000209', '192.0.2.9'],
      ['0800', 'rta_len 8'],
      ['1900', 'rta_type RTA_UID (25)'],
      ['e8030000', 'uid 1000'],
      ['0800', 'rta_len 8'],
      ['0300', 'rta_type RTA_IIF'],
      ['02000000', 'ifindex 2 (tk-v1)'],
      ...OIF3,
      ['0800', 'rta_len 8'],
      ['1000', 'rta_type RTA_MARK (16)'],
      ['10000000', 'mark 0x10'],
    ],
  },
  {
    ip: 'ip -d route get 2001:db8:1::7 from 2001:db8:1::9 uid 1000 iif tk-v1 mark 16',
    query: { dst: '2001:db8:1::7', src: '2001:db8:1::9', uid: 1000, iif: 2, mark: 16 },
    raw: '5c0000001a000100287e166b000000000a80800000000000000000001400010020010db80001000000000000000000071400020020010db800010000000000000000000908001900e803000008000300020000000800100010000000',
    fields: [
      ...hdr('5c000000', SEQ),
      ...rtmsg('0a', '80', '80', '00000000', '0'),
      ...DST6,
      ['1400', 'rta_len 20'],
      ['0200', 'rta_type RTA_SRC'],
      ['20010db8000100000000000000000009', '2001:db8:1::9'],
      ['0800', 'rta_len 8'],
      ['1900', 'rta_type RTA_UID'],
      ['e8030000', 'uid 1000'],
      ['0800', 'rta_len 8'],
      ['0300', 'rta_type RTA_IIF'],
      ['02000000', 'ifindex 2 (tk-v1)'],
      ['0800', 'rta_len 8'],
      ['1000', 'rta_type RTA_MARK'],
      ['10000000', 'mark 16'],
    ],
  },
  {
    // `ip` does not send a mark of 0 (the kernel's default): neither does the encoder.
    ip: 'ip -d route get 198.51.100.7 mark 0',
    query: { dst: '198.51.100.7', mark: 0 },
    raw: '240000001a000100287e166b0000000002200000000000000010000008000100c6336407',
    fields: [...hdr('24000000', SEQ), ...rtmsg('02', '20', '00', '00100000', 'RTM_F_LOOKUP_TABLE'), ...DST4],
  },
];

function built(seq: number, query: RouteGetQuery, flags?: number): string {
  const w = new NetlinkWriter(16); // tiny on purpose: the writer must grow
  writeRouteGetRequest(w, seq, query, flags);
  return w.view().toString('hex');
}

describe('route get requests match what `ip -d route get` sends', () => {
  describe.each(CASES)('$ip', (c) => {
    const raw = Buffer.from(c.raw, 'hex');

    it('the field-by-field spelling is the captured request', () => {
      expect(c.fields.map(([hex]) => hex).join('')).toBe(c.raw);
      expect(raw.readUInt32LE(0)).toBe(raw.length);
    });

    it('writeRouteGetRequest writes the same bytes', () => {
      expect(built(raw.readUInt32LE(8), c.query)).toBe(c.raw);
    });

    it('the codec reads it back as the lookup asked', () => {
      const [m] = decodeMessages(raw);
      expect(m!.kind).toBe('route');
      if (m!.kind !== 'route') return;
      expect(m.header).toMatchObject({ type: C.RTM_GETROUTE, flags: C.NLM_F_REQUEST });
      const v6 = c.query.dst.includes(':');
      expect(m.body).toMatchObject({ family: v6 ? C.AF_INET6 : C.AF_INET, dstLen: v6 ? 128 : 32, dst: c.query.dst, headerTable: 0, protocol: 0, scope: 0, type: 0 });
      expect((m.body.flags & C.RTM_F_FIB_MATCH) !== 0).toBe(c.query.fibMatch === true);
      expect((m.body.flags & C.RTM_F_LOOKUP_TABLE) !== 0).toBe(!v6);
      expect(m.body.table).toBeUndefined(); // never RTA_TABLE: the kernel refuses it in a lookup
      expect([m.body.oif, m.body.iif, m.body.src, m.body.uid]).toEqual([c.query.oif, c.query.iif, c.query.src, c.query.uid]);
      expect(m.body.mark).toBe(c.query.mark === 0 ? undefined : c.query.mark);
    });
  });

  it('nlmsg_flags are the caller\'s: the client adds NLM_F_ACK to have the ack follow the answer', () => {
    const hex = built(7, { dst: '198.51.100.7', oif: 3 }, C.NLM_F_REQUEST | C.NLM_F_ACK);
    expect(Buffer.from(hex, 'hex').readUInt16LE(6)).toBe(C.NLM_F_REQUEST | C.NLM_F_ACK);
    const ref = Buffer.from(CASES[1]!.raw, 'hex');
    ref.writeUInt16LE(C.NLM_F_REQUEST | C.NLM_F_ACK, 6);
    ref.writeUInt32LE(7, 8);
    expect(hex).toBe(ref.toString('hex'));
  });
});
