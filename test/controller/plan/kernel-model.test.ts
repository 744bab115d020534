/**
 * The kernel model (test/helpers/kernel-model.ts) against the real kernel: the same operations run
 * on both (the kernel through `ip` in a namespace of the test's own), then the addresses and
 * routes are compared. The property tests trust the model; this keeps the model honest about the
 * side effects plan depends on.
 */
import { expect, it } from '@jest/globals';
import type { IpFamily } from '../../../controller/model/desired.js';
import { RT_TABLE_LOCAL, RT_TABLE_MAIN, type ObservedState } from '../../../controller/model/observed.js';
import { networkOf } from '../../../controller/model/ip.js';
import { KernelError, KernelModel, type RouteAddMode } from '../../helpers/kernel-model.js';
import type { Netns } from '../../helpers/netns.js';
import { withNetns } from '../../helpers/netns.js';
import { describeKernel } from '../../helpers/tiers.js';
import { PROTO, addr } from './fixtures.js';

interface RouteArgs {
  dst: string;
  dev?: string;
  table?: number;
  metric?: number;
  via?: string;
  src?: string;
  mtu?: number;
  onlink?: boolean;
  proto?: number;
}

const PROTOCOL_NAMES: Record<string, number> = { kernel: 2, boot: 3, static: 4 };

function familyOf(text: string): IpFamily {
  return text.includes(':') ? 6 : 4;
}

/** Runs each operation on the model and on the kernel; both must succeed or both fail. */
class Twin {
  readonly model: KernelModel;
  constructor(
    private readonly ns: Netns,
    promoteSecondaries: boolean,
  ) {
    this.model = new KernelModel(undefined, { promoteSecondaries });
  }

  private ifindex(name: string): number {
    const l = this.model.linkByName(name);
    if (l === undefined) throw new Error(`model has no ${name}`);
    return l.ifindex;
  }

  private async both(what: string, onModel: () => void, ipArgs: string[]): Promise<void> {
    let modelError: unknown;
    try {
      onModel();
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      modelError = e;
    }
    let kernelError: unknown;
    try {
      await this.ns.ip(...ipArgs);
    } catch (e) {
      kernelError = e;
    }
    const outcome = (e: unknown): string => (e === undefined ? 'ok' : `fails (${(e as Error).message})`);
    // Both succeed, or both refuse: the model must know what the kernel rejects.
    expect(`${what}: kernel ${kernelError === undefined ? 'ok' : 'fails'}`).toBe(`${what}: kernel ${modelError === undefined ? 'ok' : 'fails'}`);
    if ((modelError === undefined) !== (kernelError === undefined)) throw new Error(`${what}: model ${outcome(modelError)}, kernel ${outcome(kernelError)}`);
  }

  async tun(name: string, mode: 'tun' | 'tap' = 'tun'): Promise<void> {
    await this.both(`tuntap add ${name}`, () => this.model.createTun(name, { mode, multiQueue: false, vnetHdr: false, packetInfo: false }), ['tuntap', 'add', name, 'mode', mode]);
  }

  async link(name: string, set: { up?: boolean; mtu?: number }): Promise<void> {
    const args = ['link', 'set', name];
    if (set.mtu !== undefined) args.push('mtu', String(set.mtu));
    if (set.up !== undefined) args.push(set.up ? 'up' : 'down');
    await this.both(args.join(' '), () => this.model.setLink(this.ifindex(name), set), args);
  }

  async deleteLink(name: string): Promise<void> {
    await this.both(`link del ${name}`, () => this.model.deleteLink(this.ifindex(name)), ['link', 'del', name]);
  }

  async addr(verb: 'add' | 'replace' | 'del', name: string, cidr: string, noDad = false): Promise<void> {
    const a = addr(cidr);
    const args = ['addr', verb, cidr, 'dev', name, ...(noDad ? ['nodad'] : [])];
    await this.both(args.join(' '), () => {
      if (verb === 'del') this.model.deleteAddress(this.ifindex(name), a.family, a.address, a.prefixLength);
      else this.model.addAddress(this.ifindex(name), a.family, a.address, a.prefixLength, { noDad, replace: verb === 'replace' });
    }, args);
  }

  private routeArgs(r: RouteArgs): string[] {
    const args = [r.dst];
    if (r.via !== undefined) args.push('via', r.via);
    if (r.dev !== undefined) args.push('dev', r.dev);
    args.push('table', String(r.table ?? RT_TABLE_MAIN), 'proto', String(r.proto ?? PROTO));
    if (r.metric !== undefined) args.push('metric', String(r.metric));
    if (r.src !== undefined) args.push('src', r.src);
    if (r.mtu !== undefined) args.push('mtu', String(r.mtu));
    if (r.onlink === true) args.push('onlink');
    return args;
  }

  private request(r: RouteArgs) {
    const [a, len] = r.dst.split('/');
    const family = familyOf(a);
    const dstLength = len === undefined ? (family === 4 ? 32 : 128) : Number(len);
    return {
      family,
      table: r.table ?? RT_TABLE_MAIN,
      dst: networkOf(family, a, dstLength),
      dstLength,
      metric: r.metric,
      protocol: r.proto ?? PROTO,
      oif: r.dev === undefined ? undefined : this.ifindex(r.dev),
      gateway: r.via,
      prefsrc: r.src,
      mtu: r.mtu,
      onLink: r.onlink ?? false,
    };
  }

  async route(mode: RouteAddMode, r: RouteArgs): Promise<void> {
    const family = familyOf(r.dst);
    const args = [`-${family}`, 'route', mode, ...this.routeArgs(r)];
    await this.both(args.join(' '), () => this.model.addRoute(this.request(r), mode), args);
  }

  async deleteRoute(r: RouteArgs): Promise<void> {
    const family = familyOf(r.dst);
    const args = [`-${family}`, 'route', 'del', ...this.routeArgs(r)];
    await this.both(args.join(' '), () => {
      const req = this.request(r);
      this.model.deleteRoute({ ...req, metric: req.metric ?? (family === 6 ? 1024 : 0) });
    }, args);
  }

  /** Addresses and routes (unicast, not the local table) as comparable lines, model vs kernel. */
  async expectSameState(): Promise<void> {
    expect(await kernelView(this.ns)).toEqual(modelView(this.model.state()));
  }
}

function line(r: { family: IpFamily; dst: string; dstLength: number; table: number; protocol: number; metric: number; dev: string; via?: string; src?: string; mtu?: number; onLink: boolean }): string {
  return `ipv${r.family} ${r.dst}/${r.dstLength} table ${r.table} proto ${r.protocol} metric ${r.metric} dev ${r.dev} via ${r.via ?? '-'} src ${r.src ?? '-'} mtu ${r.mtu ?? '-'}${r.onLink ? ' onlink' : ''}`;
}

function modelView(s: ObservedState): { addresses: string[]; routes: string[] } {
  const name = (i: number | undefined): string => s.links.find((l) => l.ifindex === i)?.ifname ?? '?';
  return {
    addresses: s.addresses.map((a) => `${name(a.ifindex)} ${a.address}/${a.prefixLength}${a.flags.secondary ? ' secondary' : ''}`).sort(),
    routes: s.routes
      .filter((r) => r.type === 'unicast' && r.table !== RT_TABLE_LOCAL)
      .map((r) => line({ ...r, metric: r.metric ?? 0, dev: name(r.oif), via: r.gateway, src: r.prefsrc }))
      .sort(),
  };
}

interface IpRoute {
  type?: string;
  dst: string;
  dev?: string;
  table?: string;
  protocol?: string;
  metric?: number;
  gateway?: string;
  prefsrc?: string;
  flags?: string[];
  metrics?: { mtu?: number }[];
}

interface IpLinkAddrs {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number; secondary?: boolean }[];
}

async function kernelView(ns: Netns): Promise<{ addresses: string[]; routes: string[] }> {
  const links = await ns.ipJson<IpLinkAddrs[]>('addr', 'show');
  const addresses = links
    .filter((l) => l.ifname !== 'lo')
    .flatMap((l) => l.addr_info.filter((a) => a.family === 'inet' || a.family === 'inet6').map((a) => `${l.ifname} ${a.local}/${a.prefixlen}${a.secondary === true ? ' secondary' : ''}`))
    .sort();
  const routes: string[] = [];
  for (const family of [4, 6] as const) {
    for (const r of await ns.ipJson<IpRoute[]>(`-${family}`, 'route', 'show', 'table', 'all')) {
      if (r.type !== undefined || r.table === 'local' || r.dev === 'lo') continue;
      const [dst, given] = r.dst === 'default' ? [family === 4 ? '0.0.0.0' : '::', '0'] : r.dst.split('/');
      const len = given ?? (family === 4 ? '32' : '128');
      const protocol = PROTOCOL_NAMES[r.protocol ?? ''] ?? Number(r.protocol);
      routes.push(
        line({
          family,
          dst,
          dstLength: Number(len),
          table: r.table === undefined ? RT_TABLE_MAIN : Number(r.table),
          protocol,
          metric: r.metric ?? 0,
          dev: r.dev ?? '?',
          via: r.gateway,
          src: r.prefsrc,
          mtu: r.metrics?.find((m) => m.mtu !== undefined)?.mtu,
          onLink: r.flags?.includes('onlink') ?? false,
        }),
      );
    }
  }
  return { addresses, routes: routes.sort() };
}

async function twin(fn: (t: Twin) => Promise<void>, promoteSecondaries = false): Promise<void> {
  await withNetns(async (ns) => {
    await ns.exec('sysctl', ['-qw', `net.ipv4.conf.all.promote_secondaries=${promoteSecondaries ? 1 : 0}`, 'net.ipv6.conf.all.keep_addr_on_down=0']);
    await fn(new Twin(ns, promoteSecondaries));
  }, 'plankm');
}

describeKernel('kernel model fidelity (model vs real kernel)', () => {
  it('routes need an up device, a reachable gateway and a present source; the kernel adds prefix routes', () =>
    twin(async (t) => {
      await t.tun('tk-a');
      await t.route('replace', { dst: '198.51.100.0/24', dev: 'tk-a' });
      await t.addr('add', 'tk-a', '192.0.2.1/24');
      await t.addr('add', 'tk-a', '2001:db8:1::1/64');
      await t.link('tk-a', { up: true });
      await t.route('replace', { dst: '198.51.100.0/24', dev: 'tk-a' });
      await t.route('replace', { dst: '198.51.101.0/24', dev: 'tk-a', via: '203.0.113.1' });
      await t.route('replace', { dst: '198.51.101.0/24', dev: 'tk-a', via: '203.0.113.1', onlink: true });
      await t.route('replace', { dst: '198.51.102.0/24', dev: 'tk-a', via: '192.0.2.254', metric: 7, mtu: 1300 });
      await t.route('replace', { dst: '198.51.103.0/24', dev: 'tk-a', via: '198.51.100.9', table: 100 });
      await t.route('replace', { dst: '198.51.104.0/24', dev: 'tk-a', src: '192.0.2.77' });
      await t.route('replace', { dst: '198.51.104.0/24', dev: 'tk-a', src: '192.0.2.1' });
      await t.route('replace', { dst: '2001:db8:5::/64', dev: 'tk-a', via: '2001:db8:9::1' });
      await t.route('replace', { dst: '2001:db8:5::/64', dev: 'tk-a', via: 'fe80::1' });
      await t.route('replace', { dst: '2001:db8:6::/64', dev: 'tk-a', via: '2001:db8:1::9', metric: 0 });
      await t.expectSameState();
    }));

  it('replace takes over any route under the key; add refuses it; delete matches the attributes given', () =>
    twin(async (t) => {
      await t.tun('tk-a');
      await t.tun('tk-b');
      await t.link('tk-a', { up: true });
      await t.link('tk-b', { up: true });
      await t.addr('add', 'tk-a', '192.0.2.1/24');
      await t.addr('add', 'tk-a', '2001:db8:1::1/64');
      await t.route('add', { dst: '192.0.2.0/24', dev: 'tk-a' });
      await t.route('add', { dst: '2001:db8:1::/64', dev: 'tk-a', metric: 256 });
      await t.route('replace', { dst: '192.0.2.0/24', dev: 'tk-b' });
      await t.route('add', { dst: '198.51.100.0/24', dev: 'tk-a', proto: 4, metric: 5 });
      await t.route('append', { dst: '198.51.100.0/24', dev: 'tk-b', metric: 5, src: '192.0.2.1' });
      await t.route('append', { dst: '198.51.100.0/24', dev: 'tk-b', metric: 5 });
      await t.deleteRoute({ dst: '198.51.100.0/24', dev: 'tk-b', metric: 5 });
      await t.expectSameState();
      await t.route('replace', { dst: '2001:db8:7::/64', dev: 'tk-a', proto: 4 });
      await t.route('replace', { dst: '2001:db8:7::/64', dev: 'tk-b' });
      await t.expectSameState();
    }));

  it('removing addresses: last IPv4 address, preferred source, secondaries (promote_secondaries off), IPv6 source', () =>
    twin(async (t) => {
      await t.tun('tk-a');
      await t.tun('tk-b');
      await t.link('tk-a', { up: true });
      await t.link('tk-b', { up: true });
      for (const a of ['192.0.2.1/24', '192.0.2.2/24', '192.0.2.3/24', '192.0.2.5/25', '2001:db8:1::1/64', '2001:db8:1::2/64']) await t.addr('add', 'tk-a', a);
      await t.addr('add', 'tk-b', '198.51.100.1/24');
      await t.route('replace', { dst: '203.0.113.0/25', dev: 'tk-b', src: '192.0.2.2' });
      await t.route('replace', { dst: '203.0.113.128/25', dev: 'tk-b', src: '192.0.2.2', table: 100 });
      await t.route('replace', { dst: '2001:db8:5::/64', dev: 'tk-a', src: '2001:db8:1::2' });
      await t.route('replace', { dst: '2001:db8:6::/64', dev: 'tk-a', src: '2001:db8:1::2', table: 100 });
      await t.route('replace', { dst: '198.51.101.0/24', dev: 'tk-a', table: 100 });
      await t.expectSameState();
      await t.addr('del', 'tk-a', '2001:db8:1::2/64');
      await t.addr('del', 'tk-a', '192.0.2.2/24');
      await t.expectSameState();
      await t.addr('del', 'tk-a', '192.0.2.1/24');
      await t.expectSameState();
      await t.addr('del', 'tk-a', '192.0.2.5/25');
      await t.expectSameState();
      await t.addr('del', 'tk-a', '192.0.2.5/25');
    }));

  it('removing a primary promotes a secondary when promote_secondaries is on', () =>
    twin(async (t) => {
      await t.tun('tk-a');
      await t.link('tk-a', { up: true });
      for (const a of ['192.0.2.1/24', '192.0.2.2/24', '192.0.2.3/24']) await t.addr('add', 'tk-a', a);
      await t.route('replace', { dst: '198.51.100.0/24', dev: 'tk-a', src: '192.0.2.1' });
      await t.route('replace', { dst: '198.51.101.0/24', dev: 'tk-a', src: '192.0.2.3' });
      await t.addr('del', 'tk-a', '192.0.2.1/24');
      await t.expectSameState();
    }, true));

  it('down, MTU below 1280, IPv6 prefix lengths and deleting a link', () =>
    twin(async (t) => {
      await t.tun('tk-a');
      await t.tun('tk-b', 'tap');
      await t.link('tk-a', { up: true });
      await t.link('tk-b', { up: true });
      await t.addr('add', 'tk-a', '192.0.2.1/24');
      await t.addr('add', 'tk-a', '2001:db8:1::1/64');
      await t.addr('add', 'tk-b', '2001:db8:2::1/64');
      await t.addr('add', 'tk-b', '2001:db8:3::1/64', true);
      await t.route('replace', { dst: '2001:db8:8::/64', dev: 'tk-b', src: '2001:db8:2::1' });
      await t.route('replace', { dst: '2001:db8:8::/64', dev: 'tk-b', src: '2001:db8:3::1' });
      await t.addr('replace', 'tk-a', '2001:db8:1::1/56');
      await t.addr('add', 'tk-a', '2001:db8:1::1/56');
      await t.route('replace', { dst: '198.51.100.0/24', dev: 'tk-a' });
      await t.route('replace', { dst: '2001:db8:5::/64', dev: 'tk-a' });
      await t.route('replace', { dst: '198.51.101.0/24', dev: 'tk-b', src: '192.0.2.1' });
      await t.expectSameState();
      await t.link('tk-a', { up: false });
      await t.expectSameState();
      await t.link('tk-a', { up: true });
      await t.addr('add', 'tk-a', '2001:db8:1::1/64');
      await t.route('replace', { dst: '2001:db8:5::/64', dev: 'tk-a' });
      await t.route('replace', { dst: '198.51.101.0/24', dev: 'tk-b', src: '192.0.2.1' });
      await t.link('tk-a', { mtu: 1200 });
      await t.addr('add', 'tk-a', '2001:db8:1::2/64');
      await t.expectSameState();
      await t.link('tk-a', { mtu: 1500 });
      await t.addr('add', 'tk-a', '2001:db8:1::2/64');
      await t.expectSameState();
      await t.deleteLink('tk-a');
      await t.expectSameState();
    }));
});

it('the fidelity comparison sees differences (it is not comparing two empty lists)', () => {
  const k = new KernelModel();
  k.createTun('tk-a', { mode: 'tun', multiQueue: false, vnetHdr: false, packetInfo: false });
  k.setLink(1, { up: true });
  k.addAddress(1, 4, '192.0.2.1', 24, {});
  expect(modelView(k.state())).toEqual({
    addresses: ['tk-a 192.0.2.1/24'],
    routes: ['ipv4 192.0.2.0/24 table 254 proto 2 metric 0 dev tk-a via - src 192.0.2.1 mtu -'],
  });
});
