/**
 * The one builder of test declarations: desired devices with the schema's defaults, their
 * addresses and routes from CIDR text, and the policy the tests run under. Unit, kernel and
 * reliability tests all build their DesiredDevices here, so a new field of the model is
 * defaulted in one place.
 */
import type { DesiredAddress, DesiredDevice, DesiredRoute, IpFamily, Policy } from '../../controller/model/desired.js';
import { canonicalIp, networkOf } from '../../controller/model/ip.js';

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
