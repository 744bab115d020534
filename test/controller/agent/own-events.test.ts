/** Which kernel events the agent tells the loop are about its own state (they re-arm the trailing edge). */
import { describe, expect, it } from '@jest/globals';
import { OwnEvents } from '../../../controller/agent/own-events.js';
import type { MonitorEvent } from '../../../netlink/index.js';
import type { DeviceReport, ReconcileResult } from '../../../controller/reconcile/types.js';
import { device, POLICY, PROTO } from '../../helpers/devices.js';

const RTPROT_BOOT = 3;

function link(ifindex: number, ifname: string, extra: Partial<Extract<MonitorEvent, { type: 'link' }>> = {}): MonitorEvent {
  return { type: 'link', op: 'new', family: 0, linkType: 65534, ifindex, flags: 0, change: 0, ifname, ...extra };
}
function address(ifindex: number): MonitorEvent {
  return { type: 'address', op: 'del', family: 4, prefixLen: 24, flags: 0, scope: 0, ifindex, local: '192.0.2.1' };
}
function route(protocol: number, oif: number): MonitorEvent {
  return { type: 'route', op: 'del', routeType: 1, family: 4, dstLen: 24, srcLen: 0, tos: 0, headerTable: 254, protocol, scope: 0, flags: 0, dst: '198.51.100.0', oif };
}
function report(ifname: string, status: DeviceReport['status'], ifindex?: number): DeviceReport {
  return { device: ifname, ifname, status, findings: [], failures: [], ...(ifindex !== undefined ? { ifindex } : {}) };
}
function result(devices: DeviceReport[]): ReconcileResult {
  return { outcome: 'converged', plan: null, applied: 0, failures: [], devices, repairs: {} };
}

describe('OwnEvents', () => {
  it('marks routes by the policy route protocol, wherever they point, and nothing else of the route table', () => {
    const own = new OwnEvents(POLICY);
    expect(own.concerns(route(PROTO, 2))).toBe(true);
    expect(own.concerns(route(RTPROT_BOOT, 2))).toBe(false);
    expect(new OwnEvents({ routeProtocol: 200 }).concerns(route(PROTO, 2))).toBe(false);
  });

  it('marks link and address events of the devices its latest pass reported, by ifindex or ifname', () => {
    const own = new OwnEvents(POLICY);
    const a = device('a');
    expect(own.concerns(link(7, a.ifname))).toBe(false);
    expect(own.concerns(address(7))).toBe(false);
    own.passFinished({ input: { desired: [a], prune: true }, result: result([report(a.ifname, 'ready', 7), report('eth0', 'refused', 2), report('tk-c', 'conflict', 3)]) });
    expect(own.concerns(link(7, a.ifname))).toBe(true);
    // An MTU change names the ifindex; a rename away keeps it.
    expect(own.concerns(link(7, 'renamed'))).toBe(true);
    expect(own.concerns(address(7))).toBe(true);
    // A new link under our ifname (recreated: a new ifindex).
    expect(own.concerns(link(70, a.ifname))).toBe(true);
    // Foreign devices, refused and conflicting ones included.
    expect(own.concerns(link(2, 'eth0'))).toBe(false);
    expect(own.concerns(address(2))).toBe(false);
    expect(own.concerns(link(3, 'tk-c'))).toBe(false);
    expect(own.concerns(link(9, 'veth9'))).toBe(false);
    // A pass that threw keeps the ifindexes and learns the ifnames it was given.
    own.passFinished({ input: { desired: [device('b')], prune: true } });
    expect(own.concerns(address(7))).toBe(true);
    expect(own.concerns(link(8, device('b').ifname))).toBe(true);
    expect(own.concerns(link(70, a.ifname))).toBe(false);
  });

  it('marks a link carrying our ownership marker (a TUN/TAP device), by the ownership rule', () => {
    const own = new OwnEvents(POLICY);
    expect(own.concerns(link(11, 'tk-old', { ifalias: 'tunkeeper:old', linkInfo: { kind: 'tun' } }))).toBe(true);
    expect(own.concerns(link(12, 'veth-x', { ifalias: 'tunkeeper:old', linkInfo: { kind: 'veth' } }))).toBe(false);
    expect(own.concerns(link(13, 'tk-x', { ifalias: 'someone else', linkInfo: { kind: 'tun' } }))).toBe(false);
  });

  it('never marks resync-needed, neighbours or rules', () => {
    const own = new OwnEvents(POLICY);
    own.passFinished({ input: { desired: [device('a')], prune: true }, result: result([report(device('a').ifname, 'ready', 7)]) });
    expect(own.concerns({ type: 'resync-needed' })).toBe(false);
    expect(own.concerns({ type: 'neighbour', op: 'new', neighbourType: 1, family: 2, ifindex: 7, state: 0, flags: 0 } as unknown as MonitorEvent)).toBe(false);
    expect(own.concerns({ type: 'rule', op: 'new', family: 2 } as unknown as MonitorEvent)).toBe(false);
  });
});
