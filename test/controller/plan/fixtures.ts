/**
 * Builders shared by the plan tests: desired devices with the schema's defaults, and a kernel
 * model world holding a host's own (foreign) devices.
 */
import type { DesiredAddress, DesiredDevice, DesiredRoute, IpFamily, Policy } from '../../../controller/model/desired.js';
import { RTPROT_BOOT, RTPROT_STATIC } from '../../../controller/model/observed.js';
import { plan, type Plan, type PlanOptions } from '../../../controller/plan/index.js';
import { canonicalIp, networkOf } from '../../../controller/model/ip.js';
import { KernelModel, type KernelModelOptions } from '../../helpers/kernel-model.js';

export const PROTO = 116;

export const POLICY: Policy = { allowedPrefixes: ['tk-', 'tap-'], allowDefaultRoute: false, routeProtocol: PROTO };

function familyOf(text: string): IpFamily {
  return text.includes(':') ? 6 : 4;
}

/** `192.0.2.1/24` → a desired address. */
export function addr(cidr: string): DesiredAddress {
  const [a, len] = cidr.split('/');
  const family = familyOf(a);
  return { family, address: canonicalIp(family, a), prefixLength: Number(len) };
}

/** `198.51.100.0/24` (or `default`, `default6`) → a desired route in the main table. */
export function route(to: string, opts: Partial<Omit<DesiredRoute, 'family' | 'dst' | 'dstLength'>> = {}): DesiredRoute {
  let family: IpFamily;
  let dst: string;
  let dstLength: number;
  if (to === 'default' || to === 'default6') {
    family = to === 'default' ? 4 : 6;
    dst = family === 4 ? '0.0.0.0' : '::';
    dstLength = 0;
  } else {
    const [a, len] = to.split('/');
    family = familyOf(a);
    dstLength = Number(len);
    dst = networkOf(family, canonicalIp(family, a), dstLength);
  }
  return { family, dst, dstLength, table: 254, onLink: false, ...opts };
}

export function device(name: string, overrides: Partial<DesiredDevice> = {}): DesiredDevice {
  return {
    name,
    ifname: `tk-${name}`,
    mode: 'tun',
    mtu: 1500,
    up: true,
    multiQueue: false,
    vnetHdr: false,
    packetInfo: false,
    addresses: [],
    routes: [],
    origin: `TunDevice/${name}`,
    ...overrides,
  };
}

/** A host with its own NIC (eth0, up, 203.0.113.10/24, a static default route) and loopback. */
export function hostWorld(options: KernelModelOptions = {}): KernelModel {
  const k = new KernelModel(undefined, options);
  k.addLink({ ifname: 'lo', kind: undefined, up: true, mtu: 65536, txQueueLength: 1000 });
  const eth = k.addLink({ ifname: 'eth0', kind: undefined, up: true, mtu: 1500, txQueueLength: 1000, macAddress: '52:54:00:12:34:56' });
  k.addAddress(eth.ifindex, 4, '203.0.113.10', 24, {});
  k.addAddress(eth.ifindex, 6, '2001:db8:ff::10', 64, {});
  k.addRoute({ family: 4, table: 254, dst: '0.0.0.0', dstLength: 0, protocol: RTPROT_BOOT, oif: eth.ifindex, gateway: '203.0.113.1' }, 'add');
  k.addRoute({ family: 4, table: 254, dst: '198.18.0.0', dstLength: 15, protocol: RTPROT_STATIC, oif: eth.ifindex, gateway: '203.0.113.1' }, 'add');
  return k;
}

/** plan against the model's state, then apply it to the model. */
export function converge(k: KernelModel, desired: DesiredDevice[], policy: Policy = POLICY, options: PlanOptions = {}): Plan {
  const p = plan(desired, k.state(), policy, options);
  k.applyAll(p.actions);
  return p;
}

export function types(p: Plan): string[] {
  return p.actions.map((a) => `${a.type} ${a.ifname ?? ''}`.trim());
}
