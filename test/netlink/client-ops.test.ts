/** What the typed operations put on the wire, decoded back by the codec (through the fake socket). */
import { describe, expect, it } from '@jest/globals';
import { Rtnl, addAddress, addRoute, deleteAddress, deleteLink, deleteRoute, replaceAddress, replaceRoute, setLink, type RtnlRequest } from '../../netlink/index.js';
import { FakeNetlinkSocket, type FakeRequest } from '../../netlink/testing/index.js';
import * as K from '../../netlink/constants/index.js';

/**
 * Sends the requests through a client on a fake socket that accepts everything; returns what it
 * got. (The client leaves NLM_F_ACK off requests and asks for one ack per send: see client-fake.)
 */
async function sent(...requests: RtnlRequest[]): Promise<FakeRequest[]> {
  const fake = new FakeNetlinkSocket();
  const rtnl = await Rtnl.open({ transport: fake });
  try {
    const results = await rtnl.batch(requests);
    expect(results.every((r) => r.ok)).toBe(true);
  } finally {
    rtnl.close();
  }
  return fake.requests;
}

describe('route requests on the wire', () => {
  it('route add: rtmsg fields, table in RTA_TABLE, gateway, oif, metric, prefsrc, mtu, onlink', async () => {
    const [req] = await sent(
      addRoute({ dst: '198.51.100.0/24', table: 100, protocol: 116, metric: 100, gateway: '192.0.2.254', ifindex: 5, prefsrc: '192.0.2.1', mtu: 1400, onlink: true }),
    );
    expect(req!.header.type).toBe(K.RTM_NEWROUTE);
    expect(req!.header.flags).toBe(K.NLM_F_REQUEST | K.NLM_F_CREATE | K.NLM_F_EXCL);
    expect(req!.message.kind === 'route' && req!.message.body).toMatchObject({
      family: K.AF_INET,
      dstLen: 24,
      headerTable: 100,
      table: 100,
      protocol: 116,
      scope: K.RT_SCOPE_UNIVERSE,
      type: K.RTN_UNICAST,
      flags: K.RTNH_F_ONLINK,
      dst: '198.51.100.0',
      gateway: '192.0.2.254',
      oif: 5,
      metric: 100,
      prefsrc: '192.0.2.1',
      metrics: { mtu: 1400 },
    });
  });

  it('route replace of a default IPv6 route in a table above 255; device routes get link scope', async () => {
    const [def, dev] = await sent(replaceRoute({ dst: 'default', family: 6, table: 70000, protocol: 116 }), replaceRoute({ dst: '203.0.113.0/24', ifindex: 3 }));
    expect(def!.header.flags).toBe(K.NLM_F_REQUEST | K.NLM_F_CREATE | K.NLM_F_REPLACE);
    const d = def!.message.kind === 'route' ? def!.message.body : undefined;
    expect(d).toMatchObject({ family: K.AF_INET6, dstLen: 0, headerTable: K.RT_TABLE_UNSPEC, table: 70000, protocol: 116 });
    expect(d!.dst).toBeUndefined();
    expect(dev!.message.kind === 'route' && dev!.message.body).toMatchObject({ scope: K.RT_SCOPE_LINK, protocol: K.RTPROT_BOOT, headerTable: 254, oif: 3 });
  });

  it('route delete matches any scope and, unless given, any protocol and type', async () => {
    const [any, owned, bh] = await sent(
      deleteRoute({ dst: '198.51.100.0/24', table: 100 }),
      deleteRoute({ dst: '198.51.100.0/24', table: 100, protocol: 116 }),
      deleteRoute({ dst: '198.18.0.0/16', type: 'blackhole' }),
    );
    expect(any!.header.type).toBe(K.RTM_DELROUTE);
    expect(any!.header.flags).toBe(K.NLM_F_REQUEST);
    expect(any!.message.kind === 'route' && any!.message.body).toMatchObject({ scope: K.RT_SCOPE_NOWHERE, protocol: 0, type: 0 });
    expect(owned!.message.kind === 'route' && owned!.message.body.protocol).toBe(116);
    expect(bh!.message.kind === 'route' && bh!.message.body.type).toBe(K.RTN_BLACKHOLE);
  });

  it('multipath routes carry RTA_MULTIPATH with weights', async () => {
    const [req] = await sent(
      addRoute({
        dst: '203.0.113.0/24',
        table: 1000,
        nexthops: [
          { gateway: '192.0.2.2', ifindex: 4, weight: 3 },
          { gateway: '192.0.2.3', ifindex: 4, onlink: true },
        ],
      }),
    );
    expect(req!.message.kind === 'route' && req!.message.body.multipath).toEqual([
      expect.objectContaining({ flags: 0, hops: 2, ifindex: 4, gateway: '192.0.2.2' }),
      expect.objectContaining({ flags: K.RTNH_F_ONLINK, hops: 0, ifindex: 4, gateway: '192.0.2.3' }),
    ]);
  });
});

describe('address requests on the wire', () => {
  it('address add: IFA_LOCAL and IFA_ADDRESS, IFA_PROTO, flags above 8 bits in IFA_FLAGS, lifetimes', async () => {
    const [v6, p2p] = await sent(
      addAddress({ ifindex: 4, address: '2001:db8:1::1/64', proto: 116, nodad: true, noPrefixRoute: true, validLifetime: 3600, preferredLifetime: 1800 }),
      replaceAddress({ ifindex: 2, address: '198.51.100.1', peer: '198.51.100.2', prefixLength: 32, label: 'tk0:a', broadcast: '198.51.100.255', metric: 50 }),
    );
    expect(v6!.header.flags).toBe(K.NLM_F_REQUEST | K.NLM_F_CREATE | K.NLM_F_EXCL);
    expect(v6!.message.kind === 'address' && v6!.message.body).toMatchObject({
      family: K.AF_INET6,
      prefixLen: 64,
      ifindex: 4,
      flags: K.IFA_F_NODAD,
      local: '2001:db8:1::1',
      address: '2001:db8:1::1',
      proto: 116,
      extendedFlags: K.IFA_F_NODAD | K.IFA_F_NOPREFIXROUTE,
      cacheInfo: { preferred: 1800, valid: 3600, created: 0, updated: 0 },
    });
    expect(p2p!.header.flags).toBe(K.NLM_F_REQUEST | K.NLM_F_CREATE | K.NLM_F_REPLACE);
    expect(p2p!.message.kind === 'address' && p2p!.message.body).toMatchObject({
      family: K.AF_INET,
      prefixLen: 32,
      local: '198.51.100.1',
      address: '198.51.100.2',
      label: 'tk0:a',
      broadcast: '198.51.100.255',
      rtPriority: 50,
    });
  });

  it('address delete names the address and prefix only', async () => {
    const [del] = await sent(deleteAddress({ ifindex: 4, address: '192.0.2.1/24' }));
    expect(del!.header.type).toBe(K.RTM_DELADDR);
    const body = del!.message.kind === 'address' ? del!.message.body : undefined;
    expect(body).toMatchObject({ family: K.AF_INET, prefixLen: 24, ifindex: 4, local: '192.0.2.1', address: '192.0.2.1' });
    expect(body!.proto).toBeUndefined();
  });
});

describe('link requests on the wire', () => {
  it('link set: up/down through flags+change, mtu, txqlen, alias, address, rename', async () => {
    const [up, down, byName] = await sent(
      setLink({ ifindex: 7, up: true, mtu: 1420, txqlen: 500, alias: 'tunkeeper:edge', address: '02:00:00:00:00:01', name: 'tk-edge1' }),
      setLink({ ifindex: 7, up: false }),
      setLink({ ifname: 'tk-edge1', mtu: 9000 }),
    );
    expect(up!.header.type).toBe(K.RTM_NEWLINK);
    expect(up!.header.flags).toBe(K.NLM_F_REQUEST);
    expect(up!.message.kind === 'link' && up!.message.body).toMatchObject({
      ifindex: 7,
      flags: K.IFF_UP,
      change: K.IFF_UP,
      mtu: 1420,
      txqlen: 500,
      ifalias: 'tunkeeper:edge',
      address: '02:00:00:00:00:01',
      ifname: 'tk-edge1',
    });
    expect(down!.message.kind === 'link' && down!.message.body).toMatchObject({ ifindex: 7, flags: 0, change: K.IFF_UP });
    // Without an index, the name finds the link; nothing about the admin state changes.
    expect(byName!.message.kind === 'link' && byName!.message.body).toMatchObject({ ifindex: 0, ifname: 'tk-edge1', mtu: 9000, change: 0 });
  });

  it('link delete by index or by name', async () => {
    const [a, b] = await sent(deleteLink({ ifindex: 9 }), deleteLink({ ifname: 'tk-old0' }));
    expect(a!.header.type).toBe(K.RTM_DELLINK);
    expect(a!.message.kind === 'link' && a!.message.body.ifindex).toBe(9);
    expect(b!.message.kind === 'link' && b!.message.body).toMatchObject({ ifindex: 0, ifname: 'tk-old0' });
  });
});
