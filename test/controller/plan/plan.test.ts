import { describe, expect, it } from '@jest/globals';
import type { DesiredDevice } from '../../../controller/model/desired.js';
import { RTPROT_STATIC, type ObservedState } from '../../../controller/model/observed.js';
import {
  plan,
  type Action,
  type AddAddressAction,
  type DeleteDeviceAction,
  type Plan,
  type RecreateDeviceAction,
  type ReplaceRouteAction,
  type SetLinkAction,
  type SetTunOptionsAction,
} from '../../../controller/plan/index.js';
import { renderPlanText } from '../../../controller/plan/render.js';
import { KernelModel } from '../../helpers/kernel-model.js';
import { POLICY, PROTO, addr, converge, device, hostWorld, route, types } from './fixtures.js';

function only<T extends Action['type']>(p: Plan, type: T): Extract<Action, { type: T }>[] {
  return p.actions.filter((a): a is Extract<Action, { type: T }> => a.type === type);
}

/** A world where `devices` have been converged once. */
function synced(devices: DesiredDevice[], k: KernelModel = hostWorld()): KernelModel {
  converge(k, devices);
  expect(plan(devices, k.state(), POLICY).actions).toEqual([]);
  return k;
}

const edge = (over: Partial<DesiredDevice> = {}): DesiredDevice =>
  device('edge', {
    mtu: 1420,
    addresses: [addr('192.0.2.1/24'), addr('2001:db8:1::1/64')],
    routes: [route('198.51.100.0/24', { via: '192.0.2.254', metric: 100 }), route('2001:db8:2::/48')],
    ...over,
  });

describe('plan: creating a device', () => {
  it('creates, configures, addresses and routes a new device in dependency order', () => {
    const k = hostWorld();
    const p = plan([edge({ owner: 1000, group: 1001 })], k.state(), POLICY);
    expect(types(p)).toEqual([
      'create-device tk-edge',
      'set-link tk-edge',
      'add-address tk-edge',
      'add-address tk-edge',
      'replace-route tk-edge',
      'replace-route tk-edge',
    ]);
    const create = only(p, 'create-device')[0];
    expect(create.spec).toEqual({
      mode: 'tun',
      multiQueue: false,
      vnetHdr: false,
      packetInfo: false,
      alias: 'tunkeeper:edge',
      persist: true,
      owner: 1000,
      group: 1001,
    });
    expect(only(p, 'set-link')[0].set).toEqual({ mtu: 1420, up: true });
    const adds = only(p, 'add-address');
    expect(adds.map((a) => [a.address.address, a.protocol, a.noDad])).toEqual([
      ['192.0.2.1', PROTO, false],
      ['2001:db8:1::1', PROTO, true],
    ]);
    const v4 = only(p, 'replace-route').find((a) => a.route.family === 4) as ReplaceRouteAction;
    expect(v4.route).toMatchObject({ dst: '198.51.100.0', dstLength: 24, gateway: '192.0.2.254', metric: 100, protocol: PROTO, scope: 'universe', ifname: 'tk-edge', table: 254 });
    const v6 = only(p, 'replace-route').find((a) => a.route.family === 6) as ReplaceRouteAction;
    expect(v6.route).toMatchObject({ dst: '2001:db8:2::', metric: 1024, scope: 'universe' });
    expect(p.devices).toEqual([{ device: 'edge', ifname: 'tk-edge', origin: 'TunDevice/edge', status: 'create' }]);
    for (const a of p.actions) expect(a.reason.length).toBeGreaterThan(0);

    k.applyAll(p.actions);
    const link = k.linkByName('tk-edge');
    expect(link).toMatchObject({ alias: 'tunkeeper:edge', mtu: 1420, up: true, tun: { mode: 'tun', persist: true, owner: 1000, group: 1001 } });
    const again = plan([edge({ owner: 1000, group: 1001 })], k.state(), POLICY);
    expect(again.actions).toEqual([]);
    expect(again.devices[0]).toMatchObject({ status: 'in-sync', ifindex: link?.ifindex });
  });

  it('sets txqueuelen and the MAC of a tap device, but never a MAC on a tun device', () => {
    const tap = device('t', { ifname: 'tap-t', mode: 'tap', macAddress: '02:00:00:00:00:01', txQueueLength: 2000, up: false });
    const p = plan([tap, device('u', { macAddress: '02:00:00:00:00:02' })], { links: [], addresses: [], routes: [] }, POLICY);
    const sets = only(p, 'set-link');
    expect(sets.find((a) => a.ifname === 'tap-t')?.set).toEqual({ mtu: 1500, txQueueLength: 2000, macAddress: '02:00:00:00:00:01' });
    expect(sets.find((a) => a.ifname === 'tk-u')?.set).toEqual({ mtu: 1500, up: true });
  });
});

describe('plan: an existing device', () => {
  it('is in sync when nothing differs', () => {
    const k = synced([edge()]);
    const p = plan([edge()], k.state(), POLICY);
    expect(p.actions).toEqual([]);
    expect(p.devices[0].status).toBe('in-sync');
  });

  it('sets only the link attributes that differ, naming old and new values', () => {
    const k = synced([edge()]);
    const p = plan([edge({ mtu: 1400, txQueueLength: 42 })], k.state(), POLICY);
    expect(types(p)).toEqual(['set-link tk-edge']);
    const set = p.actions[0] as SetLinkAction;
    expect(set.set).toEqual({ mtu: 1400, txQueueLength: 42 });
    expect(set.changes).toEqual([
      { field: 'mtu', from: 1420, to: 1400 },
      { field: 'txQueueLength', from: 500, to: 42 },
    ]);
    expect(set.reason).toContain('mtu 1420 → 1400');
    expect(p.devices[0].status).toBe('update');
  });

  it('taking a device down refuses its routes and re-asserts its IPv6 addresses after the kernel flushes them', () => {
    const k = synced([edge()]);
    const p = plan([edge({ up: false })], k.state(), POLICY);
    expect(types(p)).toEqual(['set-link tk-edge', 'add-address tk-edge']);
    expect((p.actions[1] as AddAddressAction).address.address).toBe('2001:db8:1::1');
    expect(p.actions[1].reason).toMatch(/goes down/);
    expect(p.refusals.map((f) => f.code)).toEqual(['DeviceDown', 'DeviceDown']);
    k.applyAll(p.actions);
    expect(plan([edge({ up: false })], k.state(), POLICY).actions).toEqual([]);
  });

  it.each([
    ['mode', { mode: 'tap' as const }, 'tun', 'tap'],
    ['multiQueue', { multiQueue: true }, false, true],
    ['vnetHdr', { vnetHdr: true }, false, true],
    ['packetInfo', { packetInfo: true }, false, true],
  ])('recreates the device when %s (fixed at creation) differs, and rebuilds it in the same plan', (field, over, from, to) => {
    const k = synced([edge()]);
    const oldIndex = k.linkByName('tk-edge')?.ifindex;
    const p = plan([edge(over)], k.state(), POLICY);
    expect(types(p)).toEqual([
      'recreate-device tk-edge',
      'set-link tk-edge',
      'add-address tk-edge',
      'add-address tk-edge',
      'replace-route tk-edge',
      'replace-route tk-edge',
    ]);
    const rec = p.actions[0] as RecreateDeviceAction;
    expect(rec.ifindex).toBe(oldIndex);
    expect(rec.changes).toEqual([{ field, from, to }]);
    expect(rec.reason).toContain(`${field} is fixed at creation (observed ${String(from)}, declared ${String(to)})`);
    expect(p.devices[0].status).toBe('recreate');
    k.applyAll(p.actions);
    expect(k.linkByName('tk-edge')?.ifindex).not.toBe(oldIndex);
    expect(plan([edge(over)], k.state(), POLICY).actions).toEqual([]);
  });

  it('names every differing fixed field in one recreate', () => {
    const k = synced([edge()]);
    const rec = plan([edge({ vnetHdr: true, packetInfo: true })], k.state(), POLICY).actions[0] as RecreateDeviceAction;
    expect(rec.changes.map((c) => c.field)).toEqual(['vnetHdr', 'packetInfo']);
  });

  it('sets owner, group and persistence through a TUN attach with the device\'s own flags', () => {
    const k = synced([edge({ owner: 1000, vnetHdr: true })]);
    const link = k.linkByName('tk-edge');
    if (link?.tun === undefined) throw new Error('no tun info');
    link.tun.persist = false;
    const p = plan([edge({ owner: 2000, group: 50, vnetHdr: true })], k.state(), POLICY);
    expect(types(p)).toEqual(['set-tun-options tk-edge']);
    const tun = p.actions[0] as SetTunOptionsAction;
    expect(tun.set).toEqual({ owner: 2000, group: 50, persist: true });
    expect(tun.flags).toEqual({ mode: 'tun', multiQueue: false, vnetHdr: true, packetInfo: false });
    k.applyAll(p.actions);
    expect(plan([edge({ owner: 2000, group: 50, vnetHdr: true })], k.state(), POLICY).actions).toEqual([]);
  });

  it('recreates a device whose owner or group is no longer declared (the kernel cannot clear them)', () => {
    const k = synced([edge({ owner: 1000, group: 50 })]);
    const p = plan([edge({ group: 50 })], k.state(), POLICY);
    const rec = p.actions[0] as RecreateDeviceAction;
    expect(rec.type).toBe('recreate-device');
    expect(rec.changes).toEqual([{ field: 'owner', from: 1000, to: null }]);
    k.applyAll(p.actions);
    expect(plan([edge({ group: 50 })], k.state(), POLICY).actions).toEqual([]);
  });
});

describe('plan: addresses on an owned device', () => {
  it('deletes undeclared addresses and adds missing ones, the declared list being authoritative', () => {
    const k = synced([edge()]);
    const ifindex = k.linkByName('tk-edge')?.ifindex as number;
    k.addAddress(ifindex, 4, '192.0.2.99', 24, {}); // someone else's, on our link
    const want = edge({ addresses: [addr('192.0.2.1/24'), addr('2001:db8:1::1/64'), addr('198.51.100.7/32')] });
    const p = plan([want], k.state(), POLICY);
    expect(types(p)).toEqual(['delete-address tk-edge', 'add-address tk-edge']);
    expect(only(p, 'delete-address')[0]).toMatchObject({ ifindex, address: { address: '192.0.2.99', prefixLength: 24 } });
    expect(only(p, 'add-address')[0].address).toEqual({ family: 4, address: '198.51.100.7', prefixLength: 32 });
    k.applyAll(p.actions);
    expect(plan([want], k.state(), POLICY).actions).toEqual([]);
  });

  it('keeps the kernel\'s IPv6 link-local address but deletes a link-local someone added', () => {
    const k = synced([edge()]);
    const ifindex = k.linkByName('tk-edge')?.ifindex as number;
    k.addKernelLinkLocal(ifindex, 'fe80::1234', 3);
    k.addAddress(ifindex, 6, 'fe80::99', 64, { proto: PROTO });
    k.addAddress(ifindex, 6, 'fe80::98', 10, {});
    const p = plan([edge()], k.state(), POLICY);
    expect(only(p, 'delete-address').map((a) => a.address.address).sort()).toEqual(['fe80::98', 'fe80::99']);
  });

  it('gives an fe80::/64 address without a reported proto the benefit of the doubt (older kernels)', () => {
    const k = synced([edge()]);
    k.addKernelLinkLocal(k.linkByName('tk-edge')?.ifindex as number, 'fe80::1', undefined);
    expect(plan([edge()], k.state(), POLICY).actions).toEqual([]);
  });

  it('changes an IPv6 prefix length by delete then add (the kernel identifies IPv6 addresses by address)', () => {
    const k = synced([edge()]);
    const want = edge({ addresses: [addr('192.0.2.1/24'), addr('2001:db8:1::1/56')] });
    const p = plan([want], k.state(), POLICY);
    expect(types(p)).toEqual(['delete-address tk-edge', 'add-address tk-edge']);
    k.applyAll(p.actions);
    expect(plan([want], k.state(), POLICY).actions).toEqual([]);
  });

  it('re-asserts the IPv4 routes a link loses with its last IPv4 address', () => {
    const k = synced([edge()]);
    const want = edge({ addresses: [addr('192.0.2.2/24'), addr('2001:db8:1::1/64')] });
    const p = plan([want], k.state(), POLICY);
    expect(types(p)).toEqual(['delete-address tk-edge', 'add-address tk-edge', 'replace-route tk-edge']);
    expect(p.actions[2].reason).toMatch(/last IPv4 address/);
    k.applyAll(p.actions);
    expect(plan([want], k.state(), POLICY).actions).toEqual([]);
  });

  it('does not re-assert routes when another IPv4 address stays', () => {
    const two = edge({ addresses: [addr('192.0.2.1/24'), addr('198.51.100.1/24'), addr('2001:db8:1::1/64')] });
    const k = synced([two]);
    const p = plan([edge()], k.state(), POLICY);
    expect(types(p)).toEqual(['delete-address tk-edge']);
  });

  it.each([false, true])('keeps a declared secondary whose primary is removed (promote_secondaries=%s)', (promote) => {
    const both = edge({ addresses: [addr('192.0.2.1/24'), addr('192.0.2.2/24')], routes: [route('198.51.100.0/24', { src: '192.0.2.2' })] });
    const k = synced([both], hostWorld({ promoteSecondaries: promote }));
    const want = edge({ addresses: [addr('192.0.2.2/24')], routes: [route('198.51.100.0/24', { src: '192.0.2.2' })] });
    const p = plan([want], k.state(), POLICY);
    expect(types(p)).toEqual(['delete-address tk-edge', 'add-address tk-edge', 'replace-route tk-edge']);
    k.applyAll(p.actions);
    expect(plan([want], k.state(), POLICY).actions).toEqual([]);
  });

  it('deletes secondaries before their primary', () => {
    const k = synced([edge({ addresses: [addr('192.0.2.1/24'), addr('192.0.2.2/24'), addr('192.0.2.3/24')], routes: [] })]);
    const p = plan([edge({ addresses: [addr('198.51.100.1/24')], routes: [] })], k.state(), POLICY);
    expect(only(p, 'delete-address').map((a) => a.address.address)).toEqual(['192.0.2.2', '192.0.2.3', '192.0.2.1']);
    k.applyAll(p.actions);
  });

  it('reports an IPv6 address declared with two prefix lengths, and leaves an existing copy alone', () => {
    const k = synced([edge()]);
    const want = edge({ addresses: [addr('192.0.2.1/24'), addr('2001:db8:1::1/64'), addr('2001:db8:1::1/56')] });
    const p = plan([want], k.state(), POLICY);
    expect(p.actions).toEqual([]);
    expect(p.conflicts.map((f) => [f.code, f.target])).toEqual([
      ['AddressDeclaredTwice', '2001:db8:1::1/56'],
      ['AddressDeclaredTwice', '2001:db8:1::1/64'],
    ]);
  });

  it('refuses IPv6 on a device whose MTU is below 1280', () => {
    const p = plan([edge({ mtu: 1200 })], { links: [], addresses: [], routes: [] }, POLICY);
    expect(p.refusals.map((f) => [f.code, f.subject, f.target])).toEqual([
      ['Ipv6NeedsMtu1280', 'address', '2001:db8:1::1/64'],
      ['Ipv6NeedsMtu1280', 'route', '2001:db8:2::/48 dev tk-edge table main proto 116 metric 1024'],
    ]);
    expect(only(p, 'add-address').map((a) => a.address.family)).toEqual([4]);
  });
});

describe('plan: routes', () => {
  it('deletes a stale owned route and leaves the same prefix of another protocol alone', () => {
    const k = synced([edge()]);
    const eth0 = k.linkByName('eth0')?.ifindex as number;
    const tk = k.linkByName('tk-edge')?.ifindex as number;
    k.addRoute({ family: 4, table: 254, dst: '198.51.100.0', dstLength: 24, metric: 5, protocol: RTPROT_STATIC, oif: eth0, gateway: '203.0.113.1' }, 'add');
    k.addRoute({ family: 4, table: 254, dst: '198.51.100.0', dstLength: 24, metric: 7, protocol: PROTO, oif: tk }, 'add');
    const p = plan([edge()], k.state(), POLICY);
    expect(types(p)).toEqual(['delete-route tk-edge']);
    expect(only(p, 'delete-route')[0].route).toMatchObject({ metric: 7, protocol: PROTO, oif: tk });
    k.applyAll(p.actions);
    expect(k.state().routes.some((r) => r.protocol === RTPROT_STATIC && r.metric === 5)).toBe(true);
  });

  it('replaces a route whose attributes differ, saying what changes', () => {
    const k = synced([edge()]);
    const want = edge({ routes: [route('198.51.100.0/24', { via: '192.0.2.253', metric: 100, mtu: 1300 }), route('2001:db8:2::/48')] });
    const p = plan([want], k.state(), POLICY);
    expect(types(p)).toEqual(['replace-route tk-edge']);
    const rep = p.actions[0] as ReplaceRouteAction;
    expect(rep.changes).toEqual([
      { field: 'via', from: '192.0.2.254', to: '192.0.2.253' },
      { field: 'mtu', from: null, to: 1300 },
    ]);
    k.applyAll(p.actions);
    expect(plan([want], k.state(), POLICY).actions).toEqual([]);
  });

  it('treats a metric change as a new key: the old route is deleted, the new one added', () => {
    const k = synced([edge()]);
    const want = edge({ routes: [route('198.51.100.0/24', { via: '192.0.2.254', metric: 200 }), route('2001:db8:2::/48')] });
    const p = plan([want], k.state(), POLICY);
    expect(types(p)).toEqual(['delete-route tk-edge', 'replace-route tk-edge']);
    k.applyAll(p.actions);
    expect(plan([want], k.state(), POLICY).actions).toEqual([]);
  });

  it('reports a conflict when the key is held by a foreign route, and still applies the rest', () => {
    const k = hostWorld();
    const want = edge({ routes: [route('198.18.0.0/15'), route('198.51.100.0/24', { via: '192.0.2.254', metric: 100 })] });
    const p = plan([want], k.state(), POLICY);
    expect(p.conflicts).toHaveLength(1);
    expect(p.conflicts[0]).toMatchObject({ code: 'RouteKeyHeldByForeignRoute', subject: 'route', key: 'ipv4 198.18.0.0/15 table 254 metric 0' });
    expect(p.conflicts[0].reason).toContain('198.18.0.0/15 via 203.0.113.1 dev eth0 table main proto static metric 0');
    expect(only(p, 'replace-route').map((a) => a.route.dst)).toEqual(['198.51.100.0']);
    k.applyAll(p.actions);
  });

  it('a route with another metric than the foreign one is no conflict', () => {
    const p = plan([edge({ routes: [route('198.18.0.0/15', { metric: 10 })] })], hostWorld().state(), POLICY);
    expect(p.conflicts).toEqual([]);
    expect(only(p, 'replace-route')).toHaveLength(1);
  });

  it('reports the kernel\'s connected route of a declared address as a conflict instead of taking it over', () => {
    const want = edge({ routes: [route('192.0.2.0/24'), route('2001:db8:1::/64', { metric: 256 }), route('2001:db8:1::/64')] });
    const p = plan([want], hostWorld().state(), POLICY);
    expect(p.conflicts.map((f) => f.code)).toEqual(['RouteKeyIsConnectedRoute', 'RouteKeyIsConnectedRoute']);
    expect(only(p, 'replace-route').map((a) => `${a.route.dst} ${a.route.metric}`)).toEqual(['2001:db8:1:: 1024']);
  });

  it('refuses a default route unless the policy allows it, and applies the rest of the device', () => {
    const want = edge({ routes: [route('default', { via: '192.0.2.254' }), route('198.51.100.0/24')] });
    const p = plan([want], { links: [], addresses: [], routes: [] }, POLICY);
    expect(p.refusals.map((f) => f.code)).toEqual(['DefaultRouteNotAllowed']);
    expect(only(p, 'replace-route').map((a) => a.route.dst)).toEqual(['198.51.100.0']);
    const allowed = plan([want], { links: [], addresses: [], routes: [] }, { ...POLICY, allowDefaultRoute: true });
    expect(allowed.refusals).toEqual([]);
    // Device routes first: a gateway may be reachable only through one.
    expect(only(allowed, 'replace-route').map((a) => a.route.dst)).toEqual(['198.51.100.0', '0.0.0.0']);
  });

  it('refuses routes in the local table and routes with a source address the host will not have', () => {
    const want = edge({ routes: [route('198.51.100.0/24', { table: 255 }), route('198.51.101.0/24', { src: '192.0.2.77' }), route('198.51.102.0/24', { src: '203.0.113.10' })] });
    const p = plan([want], hostWorld().state(), POLICY);
    expect(p.refusals.map((f) => f.code).sort()).toEqual(['LocalTableNotAllowed', 'SourceAddressMissing']);
    expect(only(p, 'replace-route').map((a) => a.route.dst)).toEqual(['198.51.102.0']);
  });

  it('refuses a route whose gateway the device cannot reach, unless declared onlink or behind a device route', () => {
    const want = edge({
      routes: [
        route('198.51.100.0/24', { via: '203.0.113.1' }),
        route('198.51.101.0/24', { via: '203.0.113.1', onLink: true }),
        route('198.51.102.0/24', { via: '198.51.103.7' }),
        route('198.51.103.0/24'),
        route('2001:db8:5::/64', { via: 'fe80::1' }),
      ],
    });
    const p = plan([want], { links: [], addresses: [], routes: [] }, POLICY);
    expect(p.refusals.map((f) => [f.code, f.target])).toEqual([['GatewayUnreachable', '198.51.100.0/24 via 203.0.113.1 dev tk-edge table main proto 116 metric 0']]);
    // The device route that makes 198.51.103.7 reachable comes before the route through it.
    expect(only(p, 'replace-route').map((a) => a.route.dst)).toEqual(['198.51.103.0', '198.51.101.0', '198.51.102.0', '2001:db8:5::']);
    const k = new KernelModel();
    k.applyAll(p.actions);
    expect(plan([want], k.state(), POLICY).actions).toEqual([]);
  });

  it('removes every owned route sharing a key and adds the declared one (a delete cannot single one out)', () => {
    const k = synced([edge()]);
    const tk = k.linkByName('tk-edge')?.ifindex as number;
    k.addRoute({ family: 4, table: 254, dst: '198.51.100.0', dstLength: 24, metric: 100, protocol: PROTO, oif: tk }, 'append');
    const p = plan([edge()], k.state(), POLICY);
    expect(types(p)).toEqual(['delete-route tk-edge', 'delete-route tk-edge', 'replace-route tk-edge']);
    // The more specific (with a gateway) first: the other's delete would match it too.
    expect(only(p, 'delete-route').map((a) => a.route.gateway)).toEqual(['192.0.2.254', undefined]);
    k.applyAll(p.actions);
    expect(plan([edge()], k.state(), POLICY).actions).toEqual([]);
  });

  it('does not count a foreign route that its own address removal takes away as holding a key', () => {
    const k = synced([device('a', { addresses: [addr('192.0.2.1/24')] })]);
    const tk = k.linkByName('tk-a')?.ifindex as number;
    k.addRoute({ family: 4, table: 254, dst: '198.51.100.0', dstLength: 24, protocol: RTPROT_STATIC, oif: tk }, 'add');
    const want = [device('a', { addresses: [], routes: [] }), device('b', { addresses: [addr('192.0.2.129/25')], routes: [route('198.51.100.0/24')] })];
    const p = plan(want, k.state(), POLICY);
    expect(p.conflicts).toEqual([]);
    const del = only(p, 'delete-address')[0];
    expect(del.sideEffects).toEqual([
      { effect: 'may-remove-route', route: '198.51.100.0/24 dev tk-a table main proto static metric 0', why: 'the kernel drops IPv4 routes through a link with no IPv4 address left' },
    ]);
    k.applyAll(p.actions);
    expect(plan(want, k.state(), POLICY).actions).toEqual([]);
  });

  it('reports two declarations of one route key as a conflict for both', () => {
    const a = device('a', { addresses: [addr('192.0.2.1/24')], routes: [route('198.51.100.0/24')] });
    const b = device('b', { addresses: [addr('192.0.2.2/24')], routes: [route('198.51.100.0/24')] });
    const p = plan([a, b], { links: [], addresses: [], routes: [] }, POLICY);
    expect(p.conflicts.map((f) => [f.device, f.code])).toEqual([
      ['a', 'RouteKeyDesiredTwice'],
      ['b', 'RouteKeyDesiredTwice'],
    ]);
    expect(only(p, 'replace-route')).toEqual([]);
  });

  it('moves a route between devices with one replace', () => {
    const a = device('a', { addresses: [addr('192.0.2.1/24')], routes: [route('198.51.100.0/24')] });
    const b = device('b', { addresses: [addr('192.0.2.129/25')] });
    const k = synced([a, b]);
    const a2 = { ...a, routes: [] };
    const b2 = { ...b, routes: [route('198.51.100.0/24')] };
    const p = plan([a2, b2], k.state(), POLICY);
    expect(types(p)).toEqual(['replace-route tk-b']);
    expect((p.actions[0] as ReplaceRouteAction).changes).toEqual([{ field: 'dev', from: 'tk-a', to: 'tk-b' }]);
    k.applyAll(p.actions);
    expect(plan([a2, b2], k.state(), POLICY).actions).toEqual([]);
  });

  it('re-asserts a main-table route whose preferred source is removed and re-added elsewhere', () => {
    const a = device('a', { addresses: [addr('192.0.2.1/24'), addr('198.51.100.1/32')], routes: [] });
    const b = device('b', { addresses: [addr('192.0.2.129/25')], routes: [route('203.0.113.128/25', { src: '198.51.100.1' })] });
    const k = synced([a, b]);
    const a2 = { ...a, addresses: [addr('192.0.2.1/24')] };
    const b2 = { ...b, addresses: [addr('192.0.2.129/25'), addr('198.51.100.1/32')] };
    const p = plan([a2, b2], k.state(), POLICY);
    expect(types(p)).toEqual(['delete-address tk-a', 'add-address tk-b', 'replace-route tk-b']);
    k.applyAll(p.actions);
    expect(plan([a2, b2], k.state(), POLICY).actions).toEqual([]);
  });
});

describe('plan: refusals and conflicts for devices', () => {
  it.each(['lo', 'eth0', 'enp3s0', 'wlan0', 'x-edge', 'tk'])('refuses the ifname %s', (ifname) => {
    const p = plan([device('x', { ifname })], hostWorld().state(), POLICY);
    expect(p.actions).toEqual([]);
    expect(p.refusals).toMatchObject([{ code: 'NameNotAllowed', subject: 'device', ifname }]);
    expect(p.devices[0].status).toBe('refused');
  });

  it('refuses a reserved name even when a policy prefix would allow it', () => {
    const p = plan([device('x', { ifname: 'eth9' })], { links: [], addresses: [], routes: [] }, { ...POLICY, allowedPrefixes: ['e'] });
    expect(p.refusals[0].code).toBe('NameNotAllowed');
  });

  it('never touches a foreign link that holds the ifname', () => {
    const k = hostWorld();
    k.addLink({ ifname: 'tk-edge', kind: 'tun', up: true, mtu: 1500, txQueueLength: 500, tun: { mode: 'tun', packetInfo: false, vnetHdr: false, multiQueue: false, persist: true } });
    const p = plan([edge()], k.state(), POLICY);
    expect(p.actions).toEqual([]);
    expect(p.conflicts).toMatchObject([{ code: 'IfnameHeldByForeignLink', subject: 'device' }]);
    expect(p.conflicts[0].reason).toContain('no tunkeeper marker');
  });

  it('treats a non-TUN link carrying our marker as foreign', () => {
    const k = hostWorld();
    k.addLink({ ifname: 'tk-edge', kind: 'veth', alias: 'tunkeeper:edge', up: true, mtu: 1500, txQueueLength: 1000 });
    const p = plan([edge()], k.state(), POLICY);
    expect(p.actions).toEqual([]);
    expect(p.conflicts[0].code).toBe('IfnameHeldByForeignLink');
  });

  it('takes over the stale device of another object only when pruning', () => {
    const k = synced([device('old', { ifname: 'tk-edge' })]);
    const oldIndex = k.linkByName('tk-edge')?.ifindex;
    const p = plan([edge()], k.state(), POLICY);
    expect(types(p)[0]).toBe('recreate-device tk-edge');
    expect(p.actions[0]).toMatchObject({ ifindex: oldIndex, previousOwner: 'old', changes: [] });
    k.applyAll(p.actions);
    expect(plan([edge()], k.state(), POLICY).actions).toEqual([]);

    const k2 = synced([device('old', { ifname: 'tk-edge' })]);
    const paused = plan([edge()], k2.state(), POLICY, { prune: false });
    expect(paused.actions).toEqual([]);
    expect(paused.conflicts[0].code).toBe('IfnameHeldByStaleDevice');
  });

  it('reports duplicate ifnames and duplicate names as conflicts for every declaration involved', () => {
    const p = plan(
      [device('a', { ifname: 'tk-x' }), device('b', { ifname: 'tk-x' }), device('c', { origin: 'one.yaml:1:1' }), device('c', { ifname: 'tk-c2', origin: 'two.yaml:1:1' })],
      { links: [], addresses: [], routes: [] },
      POLICY,
    );
    expect(p.actions).toEqual([]);
    expect(p.conflicts.map((f) => `${f.device} ${f.code}`).sort()).toEqual(['a DuplicateIfname', 'b DuplicateIfname', 'c DuplicateName', 'c DuplicateName']);
  });

  it('leaves the link of a refused declaration alone, and a route key it holds blocks others', () => {
    const k = synced([device('a', { addresses: [addr('192.0.2.1/24')], routes: [route('198.51.100.0/24')] })]);
    const refusedA = device('a', { addresses: [], routes: [route('198.51.100.0/24')] });
    const p = plan([refusedA, device('b', { routes: [route('198.51.100.0/24')] })], k.state(), { ...POLICY, allowedPrefixes: ['tk-b'] });
    expect(types(p)).toEqual(['create-device tk-b', 'set-link tk-b']);
    expect(p.refusals.map((f) => f.device)).toEqual(['a']);
    expect(p.conflicts.map((f) => f.code)).toEqual(['RouteKeyHeldByUnmanagedRoute']);
  });
});

describe('plan: pruning', () => {
  it('deletes an owned device no declaration wants, without separate deletes for its addresses and routes', () => {
    const k = synced([edge(), device('keep')]);
    const tk = k.linkByName('tk-edge')?.ifindex as number;
    k.addRoute({ family: 4, table: 100, dst: '203.0.113.0', dstLength: 24, protocol: RTPROT_STATIC, oif: tk }, 'add');
    const p = plan([device('keep')], k.state(), POLICY);
    expect(types(p)).toEqual(['delete-device tk-edge']);
    const del = p.actions[0] as DeleteDeviceAction;
    expect(del).toMatchObject({ device: 'edge', ifindex: tk });
    expect(del.reason).toContain('no longer declared');
    expect(del.sideEffects).toEqual([{ effect: 'removes-route', route: '203.0.113.0/24 dev tk-edge table 100 proto static metric 0', why: 'it goes through tk-edge' }]);
    k.applyAll(p.actions);
    expect(k.linkByName('tk-edge')).toBeUndefined();
  });

  it('with prune=false deletes no owned device and no owned route outside the declared devices', () => {
    const k = synced([edge(), device('keep', { addresses: [addr('198.51.100.1/24')] })]);
    const eth0 = k.linkByName('eth0')?.ifindex as number;
    k.addRoute({ family: 4, table: 254, dst: '198.51.101.0', dstLength: 24, protocol: PROTO, oif: eth0, gateway: '203.0.113.1' }, 'add');
    const paused = plan([device('keep', { addresses: [addr('198.51.100.1/24')] })], k.state(), POLICY, { prune: false });
    expect(paused.actions).toEqual([]);
    expect(paused.retained).toMatchObject([{ device: 'edge', ifname: 'tk-edge' }]);
    expect(paused.prune).toBe(false);
    const pruning = plan([device('keep', { addresses: [addr('198.51.100.1/24')] })], k.state(), POLICY);
    expect(types(pruning)).toEqual(['delete-route eth0', 'delete-device tk-edge']);
  });

  it('prunes before programming routes, so a foreign route through the doomed device blocks nothing', () => {
    const k = synced([device('old', { addresses: [addr('192.0.2.1/24')] })]);
    const old = k.linkByName('tk-old')?.ifindex as number;
    k.addRoute({ family: 4, table: 254, dst: '198.51.100.0', dstLength: 24, protocol: RTPROT_STATIC, oif: old }, 'add');
    const want = [device('new', { addresses: [addr('192.0.2.1/24')], routes: [route('198.51.100.0/24')] })];
    const p = plan(want, k.state(), POLICY);
    expect(p.conflicts).toEqual([]);
    expect(types(p)).toEqual(['create-device tk-new', 'set-link tk-new', 'add-address tk-new', 'delete-device tk-old', 'replace-route tk-new']);
    k.applyAll(p.actions);
    expect(plan(want, k.state(), POLICY).actions).toEqual([]);
  });
});

describe('plan: held devices (a fight hold)', () => {
  const a = device('a', { addresses: [addr('192.0.2.1/24')], routes: [route('198.51.100.0/24')] });
  const b = device('b', { addresses: [addr('203.0.113.129/25')], routes: [route('198.51.101.0/24')] });

  it("leaves a held device's drift as it is, says so, and repairs the others", () => {
    const k = synced([a, b]);
    const ta = k.linkByName('tk-a')?.ifindex as number;
    const tb = k.linkByName('tk-b')?.ifindex as number;
    for (const ifindex of [ta, tb]) k.setLink(ifindex, { mtu: 1400 });
    k.deleteRoute({ family: 4, table: 254, dst: '198.51.100.0', dstLength: 24, protocol: PROTO });
    k.deleteRoute({ family: 4, table: 254, dst: '198.51.101.0', dstLength: 24, protocol: PROTO });
    k.addAddress(ta, 4, '192.0.2.77', 24, { proto: PROTO });
    const before = k.state();
    const p = plan([a, b], before, POLICY, { hold: ['a'] });
    expect(types(p)).toEqual(['set-link tk-b', 'replace-route tk-b']);
    expect(p.actions.every((x) => x.device === 'b')).toBe(true);
    expect(p.devices.map((o) => [o.device, o.status, o.ifindex])).toEqual([
      ['a', 'held', ta],
      ['b', 'update', tb],
    ]);
    expect(renderPlanText(p)).toContain('TunDevice "a" (TunDevice/a): held, left as it is');
    k.applyAll(p.actions);
    const after = k.state();
    // Everything of a's is as the other side left it.
    expect(after.links.find((l) => l.ifindex === ta)).toEqual(before.links.find((l) => l.ifindex === ta));
    expect(after.addresses.filter((x) => x.ifindex === ta)).toEqual(before.addresses.filter((x) => x.ifindex === ta));
    expect(after.routes.filter((r) => r.oif === ta)).toEqual(before.routes.filter((r) => r.oif === ta));
    // Once the hold ends, a is repaired like any drift.
    expect(plan([a, b], after, POLICY, { hold: ['a'] }).actions).toEqual([]);
    // Held with nothing to repair is simply in sync.
    const repaired = new KernelModel(after);
    repaired.applyAll(plan([a, b], after, POLICY).actions);
    expect(plan([a, b], repaired.state(), POLICY, { hold: ['a'] }).devices.map((o) => o.status)).toEqual(['in-sync', 'in-sync']);
    const released = plan([a, b], after, POLICY);
    expect(released.actions.every((x) => x.device === 'a')).toBe(true);
    expect(types(released)).toEqual(['delete-address tk-a', 'set-link tk-a', 'replace-route tk-a']);
  });

  it('is no pruning: a held device that is missing is not created, and its former device is kept', () => {
    const k = synced([a]);
    const old = k.linkByName('tk-a')?.ifindex as number;
    const moved = { ...a, ifname: 'tk-a2' };
    const p = plan([moved], k.state(), POLICY, { hold: ['a'] });
    expect(p.actions).toEqual([]);
    expect(p.devices.map((o) => [o.device, o.status])).toEqual([['a', 'held']]);
    expect(p.retained.map((r) => [r.device, r.ifindex])).toEqual([['a', old]]);
    const released = plan([moved], k.state(), POLICY);
    expect(types(released)).toContain('delete-device tk-a');
    expect(types(released)).toContain('create-device tk-a2');
  });

  it('keeps the route keys of a held device: another declaration cannot take them, nor is an owned route under them deleted', () => {
    const k = synced([a, b]);
    const tb = k.linkByName('tk-b')?.ifindex as number;
    // The other side moved a's route onto b's device.
    k.deleteRoute({ family: 4, table: 254, dst: '198.51.100.0', dstLength: 24, protocol: PROTO });
    k.addRoute({ family: 4, table: 254, dst: '198.51.100.0', dstLength: 24, protocol: PROTO, oif: tb }, 'add');
    expect(plan([a, b], k.state(), POLICY, { hold: ['a'] }).actions).toEqual([]);
    const c = device('c', { addresses: [addr('198.18.0.1/24')], routes: [route('198.51.100.0/24')] });
    const p = plan([a, b, c], k.state(), POLICY, { hold: ['a'] });
    expect(p.conflicts.map((f) => [f.device, f.code])).toEqual([['c', 'RouteKeyDesiredTwice']]);
    expect(p.actions.some((x) => x.type === 'replace-route' || x.type === 'delete-route')).toBe(false);
  });

  it('lets a refusal or conflict of a held device stand (those are no drift)', () => {
    const bad = device('x', { ifname: 'eth9' });
    const p = plan([bad], { links: [], addresses: [], routes: [] }, POLICY, { hold: ['x'] });
    expect(p.devices.map((o) => o.status)).toEqual(['refused']);
  });
});

describe('plan: determinism', () => {
  it('gives the same plan whatever the order of its inputs', () => {
    const k = synced([edge(), device('b', { addresses: [addr('198.51.100.1/24')] })]);
    const eth0 = k.linkByName('eth0')?.ifindex as number;
    k.addRoute({ family: 4, table: 254, dst: '198.51.101.0', dstLength: 24, protocol: PROTO, oif: eth0, gateway: '203.0.113.1' }, 'add');
    const desired = [device('c'), edge({ mtu: 1400 }), device('d', { ifname: 'eth1' })];
    const s = k.state();
    const reversed: ObservedState = { links: [...s.links].reverse(), addresses: [...s.addresses].reverse(), routes: [...s.routes].reverse() };
    const p1 = plan(desired, s, POLICY);
    const p2 = plan([...desired].reverse(), reversed, POLICY);
    expect(p2).toEqual(p1);
    expect(p1.actions.length).toBeGreaterThan(3);
  });

  it('does not modify its inputs', () => {
    const k = synced([edge()]);
    const s = k.state();
    const desired = [edge({ mtu: 1300, addresses: [] })];
    const copies = JSON.stringify([s, desired]);
    plan(desired, s, POLICY);
    expect(JSON.stringify([s, desired])).toBe(copies);
  });
});
