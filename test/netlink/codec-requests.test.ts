/**
 * Request builders against requests built independently (by hand with struct.pack in
 * capture.py) and accepted by the kernel: the bytes must be identical.
 */
import { describe, expect, it } from '@jest/globals';
import {
  NetlinkWriter,
  decodeMessages,
  writeAddressDumpRequest,
  writeAddressMessage,
  writeLinkDumpRequest,
  writeLinkGetRequest,
  writeLinkMessage,
  writeNeighbourDumpRequest,
  writeRouteDumpRequest,
  writeRouteMessage,
  writeRuleDumpRequest,
} from '../../netlink/codec/index.js';
import * as C from '../../netlink/constants/index.js';
import { hexBuffers, loadFixture } from '../fixtures/netlink/fixtures.js';

const veth0 = (loadFixture('links').ip as { ifname: string; ifindex: number }[]).find((l) => l.ifname === 'tk-veth0')!.ifindex;

/** The request of a fixture and its sequence number. */
function request(name: string, i = 0): { bytes: Buffer; seq: number } {
  const bytes = hexBuffers(loadFixture(name).requests)[i]!;
  return { bytes, seq: bytes.readUInt32LE(8) };
}

function built(fn: (w: NetlinkWriter) => void): string {
  const w = new NetlinkWriter(16); // tiny on purpose: the writer must grow
  fn(w);
  return w.view().toString('hex');
}

describe('dump requests match the ones the kernel accepted', () => {
  it('link dump with IFLA_EXT_MASK', () => {
    const { bytes, seq } = request('links');
    expect(built((w) => writeLinkDumpRequest(w, seq, { extMask: C.RTEXT_FILTER_VF }))).toBe(bytes.toString('hex'));
  });
  it('link dump filtered by kind', () => {
    const { bytes, seq } = request('links-kind-tun');
    expect(built((w) => writeLinkDumpRequest(w, seq, { extMask: C.RTEXT_FILTER_SKIP_STATS, kind: 'tun' }))).toBe(bytes.toString('hex'));
  });
  it('link get by name', () => {
    const { bytes, seq } = request('link-get');
    expect(built((w) => writeLinkGetRequest(w, seq, { ifname: 'tk-tap0' }))).toBe(bytes.toString('hex'));
  });
  it('address dumps, all and filtered by family and ifindex', () => {
    const all = request('addresses');
    expect(built((w) => writeAddressDumpRequest(w, all.seq))).toBe(all.bytes.toString('hex'));
    const one = request('addresses-filtered');
    expect(built((w) => writeAddressDumpRequest(w, one.seq, { family: C.AF_INET6, ifindex: veth0 }))).toBe(one.bytes.toString('hex'));
  });
  it('route dumps per family, by table and protocol (table > 255 in RTA_TABLE), by table and oif', () => {
    const v4 = request('routes-v4');
    expect(built((w) => writeRouteDumpRequest(w, v4.seq, { family: C.AF_INET }))).toBe(v4.bytes.toString('hex'));
    const v6 = request('routes-v6');
    expect(built((w) => writeRouteDumpRequest(w, v6.seq, { family: C.AF_INET6 }))).toBe(v6.bytes.toString('hex'));
    const f = request('routes-filtered');
    expect(built((w) => writeRouteDumpRequest(w, f.seq, { family: C.AF_INET, table: 1000, protocol: 116 }))).toBe(f.bytes.toString('hex'));
    const o = request('routes-oif');
    expect(built((w) => writeRouteDumpRequest(w, o.seq, { family: C.AF_INET6, table: 100, oif: veth0 }))).toBe(o.bytes.toString('hex'));
  });
  it('neighbour dump filtered by link (NDA_IFINDEX)', () => {
    const { bytes, seq } = request('neighbours');
    expect(built((w) => writeNeighbourDumpRequest(w, seq, { ifindex: veth0 }))).toBe(bytes.toString('hex'));
  });
  it('rule dump', () => {
    const { bytes, seq } = request('rules');
    expect(built((w) => writeRuleDumpRequest(w, seq))).toBe(bytes.toString('hex'));
  });
});

describe('change requests match the ones the kernel answered', () => {
  const NEW = C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE;

  it('RTM_NEWADDR with IFA_PROTO, in the attribute order of the hand-built request', () => {
    const { bytes, seq } = request('ack');
    const hex = built((w) =>
      writeAddressMessage(
        w,
        { type: C.RTM_NEWADDR, flags: NEW | C.NLM_F_EXCL, seq },
        {
          family: C.AF_INET6,
          prefixLen: 64,
          flags: C.IFA_F_NODAD,
          ifindex: veth0,
          local: '2001:db8:4::1',
          address: '2001:db8:4::1',
          extendedFlags: C.IFA_F_NODAD,
          proto: 116,
          attrOrder: [C.IFA_LOCAL, C.IFA_ADDRESS, C.IFA_FLAGS, C.IFA_PROTO],
        },
      ),
    );
    expect(hex).toBe(bytes.toString('hex'));
  });

  it('route requests, including one carrying a malformed attribute kept raw', () => {
    const reqs = hexBuffers(loadFixture('errors').requests);
    const seq = (i: number): number => reqs[i]!.readUInt32LE(8);
    const base = { family: C.AF_INET, dstLen: 24, headerTable: C.RT_TABLE_MAIN, protocol: 116, type: C.RTN_UNICAST };
    const hex = [
      built((w) =>
        writeRouteMessage(w, { type: C.RTM_NEWROUTE, flags: NEW, seq: seq(0) }, {
          ...base,
          dst: '198.18.70.0',
          rawAttrs: [{ type: C.RTA_OIF, data: Buffer.from([1, 0]) }],
        }),
      ),
      built((w) => writeRouteMessage(w, { type: C.RTM_NEWROUTE, flags: NEW, seq: seq(1) }, { ...base, dst: '198.18.71.0', oif: 9999 })),
      built((w) =>
        writeRouteMessage(w, { type: C.RTM_NEWROUTE, flags: NEW | C.NLM_F_EXCL, seq: seq(2) }, {
          ...base,
          headerTable: 0,
          type: C.RTN_UNREACHABLE,
          dst: '198.18.1.0',
        }),
      ),
      built((w) =>
        writeRouteMessage(w, { type: C.RTM_GETROUTE, flags: C.NLM_F_REQUEST | C.NLM_F_DUMP, seq: seq(3) }, { family: C.AF_INET, gateway: '192.0.2.1' }),
      ),
      built((w) => writeLinkMessage(w, { type: C.RTM_GETLINK, flags: C.NLM_F_REQUEST | C.NLM_F_DUMP, seq: seq(4) }, { ifindex: veth0 })),
    ];
    expect(hex).toEqual(reqs.map((r) => r.toString('hex')));
  });
});

describe('pipelining', () => {
  it('writes many requests back to back into one buffer that decodes to all of them', () => {
    const w = new NetlinkWriter(64);
    const n = 5000;
    for (let i = 0; i < n; i++) {
      writeRouteMessage(
        w,
        { type: C.RTM_NEWROUTE, flags: C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE, seq: i + 1 },
        { family: C.AF_INET, dstLen: 32, headerTable: 100, protocol: 116, type: C.RTN_UNICAST, table: 100, dst: `198.18.${i >> 8}.${i & 255}`, gateway: '192.0.2.254', oif: 3 },
      );
    }
    const msgs = decodeMessages(w.view());
    expect(msgs).toHaveLength(n);
    expect(msgs.map((m) => m.header.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const last = msgs[n - 1]!;
    expect(last.kind === 'route' && last.body.dst).toBe(`198.18.${(n - 1) >> 8}.${(n - 1) & 255}`);
  });

  it('reuses a caller-provided buffer until it must grow', () => {
    const mine = Buffer.alloc(1024);
    const w = new NetlinkWriter(mine);
    writeRuleDumpRequest(w, 1);
    expect(w.buf).toBe(mine);
    for (let i = 0; i < 100; i++) writeRuleDumpRequest(w, i);
    expect(w.buf).not.toBe(mine);
    expect(decodeMessages(w.view())).toHaveLength(101);
    w.reset();
    expect(w.view()).toHaveLength(0);
  });
});
