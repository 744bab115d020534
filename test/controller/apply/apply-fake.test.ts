/**
 * apply on the fake rtnetlink socket and a stand-in TUN opener: the order requests reach the
 * kernel in, and that a failure skips only what depends on it, with the kernel's errno and
 * ext-ack text kept per action.
 */
import { describe, expect, it } from '@jest/globals';
import { Rtnl } from '../../../netlink/index.js';
import { FakeNetlinkSocket, fakeAck, fakeError, fakeReply, type FakeAnswer, type FakeRequest } from '../../../netlink/testing/index.js';
import { RTM_DELADDR, RTM_DELLINK, RTM_DELROUTE, RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE } from '../../../netlink/constants/rtnetlink.js';
import { applyPlan, type ApplyResult, type TunHandle, type TunOpener } from '../../../controller/apply/index.js';
import type { ObservedState } from '../../../controller/model/observed.js';
import { plan, type Plan } from '../../../controller/plan/index.js';
import type { TunOpenOptions } from '../../../tun-native/index.js';
import { POLICY, PROTO, addr, device, route } from '../plan/fixtures.js';

/** What the fake kernel was asked, in order, spelled short: `NEWLINK 5 mtu=1400`, `NEWROUTE 198.51.100.0/24`. */
function describeRequest(req: FakeRequest): string {
  const m = req.message;
  const t = req.header.type;
  const name: Record<number, string> = { [RTM_NEWLINK]: 'NEWLINK', [RTM_DELLINK]: 'DELLINK', [RTM_GETLINK]: 'GETLINK', [RTM_NEWADDR]: 'NEWADDR', [RTM_DELADDR]: 'DELADDR', [RTM_NEWROUTE]: 'NEWROUTE', [RTM_DELROUTE]: 'DELROUTE' };
  const op = name[t] ?? String(t);
  if (m.kind === 'link') return `${op} ${m.body.ifindex !== 0 ? m.body.ifindex : m.body.ifname}${m.body.ifalias !== undefined ? ` alias=${m.body.ifalias}` : ''}${m.body.mtu !== undefined ? ` mtu=${m.body.mtu}` : ''}`;
  if (m.kind === 'address') return `${op} ${m.body.local}/${m.body.prefixLen} ifindex=${m.body.ifindex} proto=${m.body.proto}`;
  if (m.kind === 'route') return `${op} ${m.body.dst ?? 'default'}/${m.body.dstLen} table=${m.body.table} proto=${m.body.protocol}${m.body.oif !== undefined ? ` oif=${m.body.oif}` : ''}`;
  return op;
}

interface World {
  /** ifname → ifindex of links the fake kernel has. */
  links: Map<string, number>;
  requests: string[];
  /** Return an answer to override the default for a request, described as above. */
  override?: (desc: string) => FakeAnswer | undefined;
}

function fakeKernel(world: World): FakeNetlinkSocket {
  return new FakeNetlinkSocket({
    handler: (req) => {
      const desc = describeRequest(req);
      if (req.header.type === 0x3 || req.message.kind === 'other') return undefined;
      world.requests.push(desc);
      const o = world.override?.(desc);
      if (o !== undefined) return o;
      const m = req.message;
      if (req.header.type === RTM_GETLINK && m.kind === 'link') {
        const byName = m.body.ifindex === 0;
        const entry = [...world.links].find(([n, i]) => (byName ? n === m.body.ifname : i === m.body.ifindex));
        if (entry === undefined) return fakeError('ENODEV');
        return [fakeReply({ kind: 'link', body: { ifindex: entry[1], ifname: entry[0], linkInfo: { kind: 'tun', tun: { type: 1, persist: false } } } }), fakeAck()];
      }
      return fakeAck();
    },
  });
}

/** A TUN opener that "creates" a link in the fake kernel, or fails as told. */
function fakeTun(world: World, fail?: { name: string; code: string; message: string }): TunOpener & { opened: TunOpenOptions[] } {
  let next = 100;
  const opened: TunOpenOptions[] = [];
  return {
    opened,
    open: (o) => {
      opened.push(o);
      if (fail !== undefined && o.name === fail.name) return Promise.reject(Object.assign(new Error(fail.message), { code: fail.code }));
      const ifindex = world.links.get(o.name!) ?? next++;
      world.links.set(o.name!, ifindex);
      const handle: TunHandle = { name: o.name!, ifindex, setPersist: () => undefined, setOwner: () => undefined, setGroup: () => undefined, close: () => Promise.resolve() };
      return Promise.resolve(handle);
    },
  };
}

/** lo, and tk-a0 (owned, ifindex 5) with a stale owned route; tk-b0 does not exist yet. */
function observed(): ObservedState {
  return {
    links: [
      { ifindex: 1, ifname: 'lo', up: true, mtu: 65536, txQueueLength: 1000 },
      { ifindex: 5, ifname: 'tk-a0', kind: 'tun', up: true, mtu: 1500, txQueueLength: 500, alias: 'tunkeeper:a0', tun: { mode: 'tun', packetInfo: false, vnetHdr: false, multiQueue: false, persist: true } },
    ],
    addresses: [],
    routes: [
      { family: 4, dst: '203.0.113.0', dstLength: 24, table: 254, protocol: PROTO, type: 'unicast', scope: 'link', oif: 5, metric: 0, onLink: false },
    ],
  };
}

function desired() {
  return [
    device('a0', { mtu: 1400, addresses: [addr('192.0.2.1/24')], routes: [route('198.51.100.0/24', { src: '192.0.2.1' })] }),
    device('b0', { addresses: [addr('198.18.0.1/24')], routes: [route('198.19.0.0/16', { src: '198.18.0.1' }), route('198.19.1.0/24')] }),
  ];
}

async function run(world: World, p: Plan, tun: TunOpener, state: ObservedState): Promise<ApplyResult> {
  const rtnl = await Rtnl.open({ transport: fakeKernel(world) });
  try {
    return await applyPlan(p, { rtnl, tun, observed: state });
  } finally {
    rtnl.close();
  }
}

const summary = (r: ApplyResult) => r.outcomes.map((o) => `${o.action.type} ${o.action.ifname ?? ''} ${o.status}${o.failure !== undefined ? ` ${o.failure.code}: ${o.failure.message}` : ''}`.replace(/\s+/g, ' ').trim());

describe('apply on a fake kernel', () => {
  it('sends each type of action after the ones it depends on, and marks created devices before making them persistent', async () => {
    const world: World = { links: new Map([['lo', 1], ['tk-a0', 5]]), requests: [] };
    const state = observed();
    const p = plan(desired(), state, POLICY);
    const tun = fakeTun(world);
    const r = await run(world, p, tun, state);
    expect(r.failures).toEqual([]);
    expect(r.applied).toBe(p.actions.length);
    expect(world.requests).toEqual([
      'DELROUTE 203.0.113.0/24 table=254 proto=116 oif=5',
      'GETLINK tk-b0', // must not exist: TUNSETIFF would attach to it
      'GETLINK 100', // created by us, not attached to a stranger's
      'NEWLINK 100 alias=tunkeeper:b0',
      'NEWLINK 5 mtu=1400',
      'NEWLINK 100 mtu=1500',
      'NEWADDR 192.0.2.1/24 ifindex=5 proto=116',
      'NEWADDR 198.18.0.1/24 ifindex=100 proto=116',
      'NEWROUTE 198.51.100.0/24 table=254 proto=116 oif=5',
      'NEWROUTE 198.19.0.0/16 table=254 proto=116 oif=100',
      'NEWROUTE 198.19.1.0/24 table=254 proto=116 oif=100',
    ]);
    // Routes go out in the plan's own order.
    const planned = p.actions.flatMap((a) => (a.type === 'replace-route' ? [`${a.route.dst}/${a.route.dstLength}`] : []));
    expect(world.requests.filter((q) => q.startsWith('NEWROUTE')).map((q) => q.split(' ')[1])).toEqual(planned);
    expect(tun.opened).toEqual([{ name: 'tk-b0', mode: 'tun', multiQueue: false, vnetHdr: false, packetInfo: false }]);
    expect(r.ifindexes.get('tk-b0')).toBe(100);
  });

  it("a failed link change skips only that device's addresses and routes, and keeps the kernel's errno and ext-ack", async () => {
    const world: World = {
      links: new Map([['lo', 1], ['tk-a0', 5]]),
      requests: [],
      override: (d) => (d === 'NEWLINK 5 mtu=1400' ? fakeError('EINVAL', 'mtu less than device minimum') : d.startsWith('DELROUTE') ? fakeError('ESRCH') : undefined),
    };
    const state = observed();
    const r = await run(world, plan(desired(), state, POLICY), fakeTun(world), state);
    expect(summary(r)).toEqual([
      'delete-route tk-a0 applied', // ESRCH: already gone is success for a delete
      'create-device tk-b0 applied',
      'set-link tk-a0 failed EINVAL: mtu less than device minimum',
      'set-link tk-b0 applied',
      'add-address tk-a0 skipped Skipped: not attempted: set-link tk-a0 failed (EINVAL: mtu less than device minimum)',
      'add-address tk-b0 applied',
      'replace-route tk-a0 skipped Skipped: not attempted: set-link tk-a0 failed (EINVAL: mtu less than device minimum)',
      'replace-route tk-b0 applied',
      'replace-route tk-b0 applied',
    ]);
    expect(r.failures.map((f) => [f.device, f.code])).toEqual([
      ['a0', 'EINVAL'],
      ['a0', 'Skipped'],
      ['a0', 'Skipped'],
    ]);
    expect(world.requests.filter((q) => q.includes('ifindex=5') || q.includes('oif=5'))).toEqual(['DELROUTE 203.0.113.0/24 table=254 proto=116 oif=5']);
  });

  it('a device that cannot be created gets nothing else; the other device converges', async () => {
    const world: World = { links: new Map([['lo', 1], ['tk-a0', 5]]), requests: [] };
    const state = observed();
    const r = await run(world, plan(desired(), state, POLICY), fakeTun(world, { name: 'tk-b0', code: 'EPERM', message: 'ioctl(TUNSETIFF) failed: operation not permitted' }), state);
    const b0 = r.outcomes.filter((o) => o.action.ifname === 'tk-b0');
    expect(b0.map((o) => o.status)).toEqual(['failed', 'skipped', 'skipped', 'skipped', 'skipped']);
    expect(b0[0]!.failure).toMatchObject({ device: 'b0', code: 'EPERM', message: 'ioctl(TUNSETIFF) failed: operation not permitted' });
    expect(r.outcomes.filter((o) => o.action.ifname === 'tk-a0').every((o) => o.status === 'applied')).toBe(true);
    expect(world.requests.some((q) => q.includes('tk-b0') && !q.startsWith('GETLINK'))).toBe(false);
  });

  it('a failed address skips the routes that use it as source, not the others', async () => {
    const world: World = {
      links: new Map([['lo', 1], ['tk-a0', 5]]),
      requests: [],
      override: (d) => (d.startsWith('NEWADDR 198.18.0.1/24') ? fakeError('EACCES', 'address refused') : undefined),
    };
    const state = observed();
    const r = await run(world, plan(desired(), state, POLICY), fakeTun(world), state);
    const routes = r.outcomes.filter((o) => o.action.type === 'replace-route' && o.action.ifname === 'tk-b0');
    expect(routes.map((o) => [o.action.type === 'replace-route' ? `${o.action.route.dst}/${o.action.route.dstLength}` : '', o.status])).toEqual([
      ['198.19.0.0/16', 'skipped'],
      ['198.19.1.0/24', 'applied'],
    ]);
    expect(r.failures.find((f) => f.code === 'EACCES')).toMatchObject({ device: 'b0', message: 'address refused' });
  });

  it('refuses to adopt a link that appears under the name of a device it creates', async () => {
    const world: World = { links: new Map([['lo', 1], ['tk-a0', 5], ['tk-b0', 9]]), requests: [] };
    const state = observed();
    const tun = fakeTun(world);
    const r = await run(world, plan(desired(), state, POLICY), tun, state);
    expect(r.outcomes.find((o) => o.action.type === 'create-device')?.failure?.code).toBe('EEXIST');
    expect(tun.opened).toEqual([]);
  });

  it('deletes an unwanted device only while it still carries its marker', async () => {
    const world: World = { links: new Map([['lo', 1], ['tk-a0', 5]]), requests: [] };
    const state = observed();
    // The fake kernel answers GETLINK without the alias: someone changed it since the snapshot.
    const r = await run(world, plan([], state, POLICY), fakeTun(world), state);
    const del = r.outcomes.find((o) => o.action.type === 'delete-device');
    expect(del?.status).toBe('failed');
    expect(del?.failure?.code).toBe('ESTALE');
    expect(world.requests.some((q) => q.startsWith('DELLINK'))).toBe(false);
  });
});
