/** Typed operations against the real kernel, in a namespace of their own, checked with `ip -j`. */
import { describe, expect, it, beforeAll, afterAll } from '@jest/globals';
import { Rtnl, addRoute, type BatchResult } from '../../netlink/index.js';
import * as K from '../../netlink/constants/index.js';
import { createNetns, withNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { failure } from '../helpers/netlink-failure.js';

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  txqlen: number;
  address?: string;
  ifalias?: string;
}
interface IpAddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  metric?: number;
  valid_life_time: number;
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol: string;
  metric?: number;
  prefsrc?: string;
  flags: string[];
  metrics?: Array<{ mtu?: number }>;
}

async function link(ns: Netns, name: string): Promise<IpLink | undefined> {
  const all = await ns.ipJson<IpLink[]>('link', 'show');
  return all.find((l) => l.ifname === name);
}


describeKernel('Rtnl operations on the real kernel', () => {
  let ns: Netns;
  let rtnl: Rtnl;
  let veth: number;

  beforeAll(async () => {
    ns = await createNetns('ops');
    await ns.ip('link', 'add', 'tk-v0', 'type', 'veth', 'peer', 'name', 'tk-v1');
    await ns.ip('link', 'set', 'tk-v0', 'up');
    await ns.ip('link', 'set', 'tk-v1', 'up');
    veth = (await link(ns, 'tk-v0'))!.ifindex;
    rtnl = await Rtnl.open({ netns: ns.name });
  });

  afterAll(async () => {
    rtnl?.close();
    await ns?.delete();
  });

  it('link set: mtu, txqlen, alias, address, down/up, rename; then delete', async () => {
    await ns.ip('tuntap', 'add', 'dev', 'tk-tap9', 'mode', 'tap');
    const idx = (await link(ns, 'tk-tap9'))!.ifindex;
    await rtnl.setLink({ ifindex: idx, mtu: 1420, txqlen: 321, alias: 'tunkeeper:edge', address: '02:00:00:00:00:42', up: true });
    let l = (await link(ns, 'tk-tap9'))!;
    expect(l).toMatchObject({ mtu: 1420, txqlen: 321, ifalias: 'tunkeeper:edge', address: '02:00:00:00:00:42' });
    expect(l.flags).toContain('UP');

    await rtnl.setLink({ ifindex: idx, up: false, name: 'tk-tap8' });
    l = (await link(ns, 'tk-tap8'))!;
    expect(l.ifindex).toBe(idx);
    expect(l.flags).not.toContain('UP');

    await rtnl.setLink({ ifname: 'tk-tap8', alias: '' });
    expect((await link(ns, 'tk-tap8'))!.ifalias).toBeUndefined();

    const e = await failure(rtnl.setLink({ ifindex: idx, mtu: 20 }));
    expect(e).toMatchObject({ code: 'EINVAL', operation: 'link set', target: `ifindex ${idx} mtu 20` });
    expect(e.extAck).toMatch(/mtu/i);

    await rtnl.deleteLink({ ifindex: idx });
    expect(await link(ns, 'tk-tap8')).toBeUndefined();
    const gone = await failure(rtnl.deleteLink({ ifname: 'tk-tap8' }));
    expect(gone).toMatchObject({ code: 'ENODEV', request: 'link delete tk-tap8' });
  });

  it('address add / replace / delete, with IFA_PROTO, and their errors', async () => {
    await rtnl.addAddress({ ifindex: veth, address: '192.0.2.1/24', proto: 116 });
    await rtnl.addAddress({ ifindex: veth, address: '2001:db8:5::1/64', nodad: true, proto: 116 });
    const [ours] = await rtnl.addresses({ ifindex: veth, family: 4 });
    expect(ours).toMatchObject({ local: '192.0.2.1', prefixLen: 24, proto: 116 });
    const v6 = (await rtnl.addresses({ ifindex: veth, family: 6 })).find((a) => a.address === '2001:db8:5::1');
    expect(v6).toMatchObject({ prefixLen: 64, proto: 116 });

    const dup = await failure(rtnl.addAddress({ ifindex: veth, address: '192.0.2.1/24' }));
    expect(dup).toMatchObject({ code: 'EEXIST', errno: 17, request: `address add 192.0.2.1/24 ifindex ${veth}` });
    expect(dup.extAck).toBe('ipv4: Address already assigned');

    await rtnl.replaceAddress({ ifindex: veth, address: '192.0.2.1/24', proto: 116, metric: 77, validLifetime: 3000 });
    const [{ addr_info }] = await ns.ipJson<Array<{ addr_info: IpAddrInfo[] }>>('-4', 'addr', 'show', 'dev', 'tk-v0');
    expect(addr_info).toHaveLength(1);
    expect(addr_info[0]).toMatchObject({ local: '192.0.2.1', prefixlen: 24, metric: 77 });
    expect(addr_info[0]!.valid_life_time).toBeLessThanOrEqual(3000);

    await rtnl.deleteAddress({ ifindex: veth, address: '192.0.2.1/24' });
    await rtnl.deleteAddress({ ifindex: veth, address: '2001:db8:5::1/64' });
    expect(await rtnl.addresses({ ifindex: veth, family: 4 })).toEqual([]);
    const missing = await failure(rtnl.deleteAddress({ ifindex: veth, address: '192.0.2.1/24' }));
    expect(missing).toMatchObject({ code: 'EADDRNOTAVAIL', extAck: 'ipv4: Address not found' });
  });

  it('route add / replace / delete with protocol, table > 255, metric, prefsrc, gateway, onlink, mtu', async () => {
    await rtnl.addAddress({ ifindex: veth, address: '192.0.2.10/24' });
    const table = 4000;
    await rtnl.addRoute({ dst: '198.51.100.0/24', gateway: '192.0.2.254', ifindex: veth, table, protocol: 116, metric: 10, prefsrc: '192.0.2.10', mtu: 1400 });
    await rtnl.addRoute({ dst: '203.0.113.0/24', gateway: '198.18.9.9', ifindex: veth, onlink: true, table, protocol: 116 });
    await rtnl.addRoute({ dst: 'default', family: 6, type: 'unreachable', table, protocol: 116 });
    let routes = await ns.ipJson<IpRoute[]>('-4', '-N', 'route', 'show', 'table', String(table));
    expect(routes.find((r) => r.dst === '198.51.100.0/24')).toMatchObject({
      gateway: '192.0.2.254',
      dev: 'tk-v0',
      protocol: '116',
      metric: 10,
      prefsrc: '192.0.2.10',
      metrics: [{ mtu: 1400 }],
    });
    expect(routes.find((r) => r.dst === '203.0.113.0/24')!.flags).toContain('onlink');
    expect(await ns.ipJson<IpRoute[]>('-6', '-N', 'route', 'show', 'table', String(table))).toEqual([expect.objectContaining({ dst: 'default', protocol: '116' })]);

    const dup = await failure(rtnl.addRoute({ dst: '198.51.100.0/24', gateway: '192.0.2.254', table, protocol: 116, metric: 10 }));
    expect(dup).toMatchObject({ code: 'EEXIST', request: `route add 198.51.100.0/24 table ${table} metric 10` });

    await rtnl.replaceRoute({ dst: '198.51.100.0/24', gateway: '192.0.2.253', ifindex: veth, table, protocol: 116, metric: 10 });
    routes = await ns.ipJson<IpRoute[]>('-4', '-N', 'route', 'show', 'table', String(table));
    expect(routes.filter((r) => r.dst === '198.51.100.0/24')).toEqual([expect.objectContaining({ gateway: '192.0.2.253' })]);

    // Deleting with another protocol never touches it: the kernel matches rtm_protocol.
    const foreign = await failure(rtnl.deleteRoute({ dst: '198.51.100.0/24', table, protocol: 4 }));
    expect(foreign.code).toBe('ESRCH');
    await rtnl.deleteRoute({ dst: '198.51.100.0/24', table, protocol: 116, metric: 10 });
    routes = await ns.ipJson<IpRoute[]>('-4', '-N', 'route', 'show', 'table', String(table));
    expect(routes.map((r) => r.dst)).toEqual(['203.0.113.0/24']);
  });

  it('a pipelined batch of 1000 routes: the few failing ones each report their own error and ext-ack', async () => {
    const table = 5000;
    const requests = Array.from({ length: 1000 }, (_, i) => {
      const dst = `198.18.${i >> 8}.${i & 255}/32`;
      if (i === 100) return addRoute({ dst, gateway: '203.0.113.1', table, protocol: 116 }); // no route to the gateway
      if (i === 200) return addRoute({ dst: `198.18.${i >> 8}.${i & 255}/24`, type: 'blackhole', table, protocol: 116 }); // host bits set
      if (i === 300) return addRoute({ dst: `198.18.${299 >> 8}.${299 & 255}/32`, type: 'blackhole', table, protocol: 116 }); // duplicate of 299
      if (i === 400) return addRoute({ dst, ifindex: 99999, table, protocol: 116 }); // no such device
      return addRoute({ dst, type: 'blackhole', table, protocol: 116 });
    });
    const results: BatchResult[] = await rtnl.batch(requests);
    expect(results).toHaveLength(1000);
    const failed = results.map((r, i) => [i, r] as const).filter(([, r]) => !r.ok);
    expect(failed.map(([i]) => i)).toEqual([100, 200, 300, 400]);
    const err = (i: number) => {
      const r = results[i]!;
      if (r.ok) throw new Error(`request ${i} succeeded`);
      return r.error;
    };
    expect(err(100)).toMatchObject({ code: 'ENETUNREACH', extAck: 'Nexthop has invalid gateway', request: `route add 198.18.0.100/32 table ${table}` });
    expect(err(200)).toMatchObject({ code: 'EINVAL', extAck: 'Invalid prefix for given prefix length', request: `route add 198.18.0.200/24 table ${table}` });
    expect(err(300)).toMatchObject({ code: 'EEXIST', request: `route add 198.18.1.43/32 table ${table}` });
    expect(err(400)).toMatchObject({ code: 'ENODEV', request: `route add 198.18.1.144/32 table ${table}` });
    expect(err(400).message).toBe(`route add 198.18.1.144/32 table ${table}: ENODEV (no such device)`);

    const inTable = await rtnl.routes({ table, family: 4 });
    expect(inTable).toHaveLength(996);
    expect(inTable.every((r) => r.protocol === 116 && r.type === K.RTN_BLACKHOLE)).toBe(true);
    expect((await ns.ip('-4', 'route', 'show', 'table', String(table))).trim().split('\n')).toHaveLength(996);
  });
});

describeKernel('Rtnl pipelining on the real kernel', () => {
  it('with a small receive buffer, 5000 pipelined requests complete without one lost answer', async () => {
    await withNetns(async (ns) => {
      const requests = Array.from({ length: 5000 }, (_, i) => addRoute({ dst: `198.18.${i >> 8}.${i & 255}/32`, type: 'blackhole', table: 7, protocol: 116 }));
      // An ack for every request: 5000 answers through a buffer that holds a few dozen.
      const each = await Rtnl.open({ netns: ns.name, rcvbuf: 16 * 1024, ackEach: true });
      try {
        expect(each.rcvbuf).toBeLessThanOrEqual(64 * 1024);
        const results = await each.batch(requests);
        expect(results.filter((r) => !r.ok).map((r) => !r.ok && r.error.message)).toEqual([]);
        expect(await each.routes({ table: 7 })).toHaveLength(5000);
      } finally {
        each.close();
      }
      // The default (errors only, one barrier per send): all 5000 fail now, each answered.
      const rtnl = await Rtnl.open({ netns: ns.name, rcvbuf: 16 * 1024 });
      try {
        const again = await rtnl.batch(requests);
        expect(again.every((r) => !r.ok && r.error.code === 'EEXIST')).toBe(true);
      } finally {
        rtnl.close();
      }
    });
  });
});

describeKernel('Rtnl in many namespaces', () => {
  it('every client targets its own namespace, by name or by path', async () => {
    await withNetns(async (a) => {
      await withNetns(async (b) => {
        const byName = await Rtnl.open({ netns: a.name });
        const byPath = await Rtnl.open({ netns: b.path });
        try {
          await byName.addRoute({ dst: '198.51.100.0/24', type: 'blackhole', table: 10, protocol: 116 });
          await byPath.addRoute({ dst: '203.0.113.0/24', type: 'blackhole', table: 10, protocol: 116 });
          expect((await byName.routes({ table: 10 })).map((r) => r.dst)).toEqual(['198.51.100.0']);
          expect((await byPath.routes({ table: 10 })).map((r) => r.dst)).toEqual(['203.0.113.0']);
          expect(await a.ipJson('route', 'show', 'table', '10')).toEqual([expect.objectContaining({ dst: '198.51.100.0/24', type: 'blackhole' })]);
        } finally {
          byName.close();
          byPath.close();
        }
      }, 'nsb');
    }, 'nsa');
  });

  it('Rtnl.with closes the client however the work ends', async () => {
    await withNetns(async (ns) => {
      let kept: Rtnl | undefined;
      await expect(
        Rtnl.with({ netns: ns.name }, async (rtnl) => {
          kept = rtnl;
          await rtnl.addRoute({ dst: '198.51.100.0/33' });
        }),
      ).rejects.toThrow(/route\.dst/);
      expect(kept!.closed).toBe(true);
    });
  });
});

describe('Rtnl.open', () => {
  it('fails with a typed error for a namespace that does not exist', async () => {
    await expect(Rtnl.open({ netns: 'tunkeeper-no-such-namespace' })).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
