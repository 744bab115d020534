/**
 * What JSON Schema cannot say about a TunDevice: the kernel's rules for names, addresses, gateways
 * and tables, and the rules between fields. Runs on a structurally valid, defaulted document (fields
 * with a structural problem are skipped: they are already reported) and builds the canonical
 * DesiredDevice. Each CEL rule of the CRD has a twin here (test/controller/schema/cel.test.ts).
 */
import type { DesiredAddress, DesiredDevice, DesiredRoute, IpFamily } from '../model/desired.js';
import { ifnameProblem } from './ifname.js';
import {
  formatAddress,
  formatPrefix,
  hasHostBits,
  isIPv6LinkLocalAddress,
  networkOfPrefix,
  prefixContainsAddress,
  sameAddress,
  type IpAddress,
  type IpPrefix,
} from '../model/ip.js';
import { nonUnicastReason, parseCidr, parseIp } from './ip.js';
import { parseMac } from './mac.js';
import type { FieldPath, FieldProblem } from './problem.js';
import { pathKey } from './structural.js';
import { IPV6_MIN_MTU, LOCAL_TABLE, type LabelSelector, type TunDeviceRoute, type TunDeviceSpec } from './tundevice.js';

/** Where a declaration comes from decides what it may contain. */
export type DeclarationContext = 'file' | 'kubernetes';

export interface SemanticInput {
  name: unknown;
  /** The spec after defaulting. */
  spec: TunDeviceSpec;
  context: DeclarationContext;
  origin: string;
  /** pathKey()s with a structural problem. */
  invalid: Set<string>;
}

export interface SemanticResult {
  problems: FieldProblem[];
  device?: DesiredDevice;
  nodeSelector?: LabelSelector;
  /** Where the interface name is written: spec.ifname, or metadata.name when that is the default. */
  ifnamePath: FieldPath;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const V4_LOOPBACK = parseCidr('127.0.0.0/8');
const V6_LOOPBACK = parseIp('::1');

function loopbackReason(a: IpAddress): string | undefined {
  const isLoop =
    (a.family === 4 && V4_LOOPBACK.ok && prefixContainsAddress(V4_LOOPBACK.value, a)) || (a.family === 6 && V6_LOOPBACK.ok && sameAddress(V6_LOOPBACK.value, a));
  return isLoop ? 'it is a loopback address, which belongs on lo' : undefined;
}

const familyName = (f: IpFamily) => (f === 4 ? 'IPv4' : 'IPv6');
/** The kernel's metric when none is given: what a route is keyed by in the FIB. */
const kernelDefaultMetric = (f: IpFamily) => (f === 4 ? 0 : 1024);

export function checkSemantics(input: SemanticInput): SemanticResult {
  const problems: FieldProblem[] = [];
  const report = (path: FieldPath, detail: string, anchor?: 'key') => problems.push(anchor ? { path, detail, anchor } : { path, detail });
  // A field is checked only if neither it nor anything above it has a structural problem.
  const checkable = (path: FieldPath) => {
    if (input.invalid.size === 0) return true;
    for (let i = 1; i <= path.length; i++) if (input.invalid.has(pathKey(path.slice(0, i)))) return false;
    return true;
  };
  const spec = input.spec;

  // metadata.name: Kubernetes requires a DNS subdomain, and a file should be loadable as an object.
  const name = typeof input.name === 'string' ? input.name : undefined;
  if (name !== undefined && checkable(['metadata', 'name']) && !DNS_SUBDOMAIN.test(name)) {
    report(
      ['metadata', 'name'],
      `${JSON.stringify(name)} is not a valid object name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters`,
    );
  }

  // The interface name, defaulting to metadata.name.
  const ifnameDeclared = spec.ifname !== undefined;
  const ifnamePath: FieldPath = ifnameDeclared ? ['spec', 'ifname'] : ['metadata', 'name'];
  const ifname = ifnameDeclared ? (typeof spec.ifname === 'string' ? spec.ifname : undefined) : name;
  if (ifname !== undefined && checkable(ifnamePath)) {
    const why = ifnameProblem(ifname);
    if (why !== undefined) {
      report(ifnamePath, ifnameDeclared ? why : `is also the interface name, since spec.ifname is not set, but ${why}: set spec.ifname`);
    }
  }

  const mode = spec.mode;
  let macAddress: string | undefined;
  if (spec.macAddress !== undefined && checkable(['spec', 'macAddress'])) {
    if (mode !== 'tap') {
      report(['spec', 'macAddress'], 'is only for tap devices: a tun device has no link-layer address (set mode: tap, or remove macAddress)', 'key');
    } else {
      const mac = parseMac(spec.macAddress);
      if (mac.ok) macAddress = mac.value;
      else report(['spec', 'macAddress'], mac.error);
    }
  }

  let nodeSelector: LabelSelector | undefined;
  if (spec.nodeSelector !== undefined && checkable(['spec', 'nodeSelector'])) {
    if (input.context === 'file') {
      report(
        ['spec', 'nodeSelector'],
        'applies only to TunDevice objects in Kubernetes; a file declares devices for the node that reads it (remove nodeSelector, or give each node its own files)',
        'key',
      );
    } else {
      nodeSelector = spec.nodeSelector;
      const exprs = spec.nodeSelector.matchExpressions;
      (Array.isArray(exprs) ? exprs : []).forEach((expr, i) => {
        const path = ['spec', 'nodeSelector', 'matchExpressions', i];
        if (!checkable(path)) return;
        const hasValues = (expr.values ?? []).length > 0;
        if ((expr.operator === 'In' || expr.operator === 'NotIn') && !hasValues) report([...path, 'values'], `must not be empty for operator ${expr.operator}`);
        if ((expr.operator === 'Exists' || expr.operator === 'DoesNotExist') && hasValues) report([...path, 'values'], `must be empty for operator ${expr.operator}`);
      });
    }
  }

  // Addresses.
  const addresses: { prefix: IpPrefix; index: number }[] = [];
  (Array.isArray(spec.addresses) ? spec.addresses : []).forEach((text, index) => {
    const path = ['spec', 'addresses', index];
    if (!checkable(path)) return;
    const parsed = parseCidr(text);
    if (!parsed.ok) return report(path, parsed.error);
    const prefix = parsed.value;
    const bad = nonUnicastReason(prefix) ?? loopbackReason(prefix);
    if (bad) return report(path, `${JSON.stringify(text)} cannot be a device address: ${bad}`);
    const twin = addresses.find((a) => sameAddress(a.prefix, prefix));
    if (twin) {
      return report(path, `${formatAddress(prefix)} is already declared at spec.addresses[${twin.index}]; an address can be on a device once (with one prefix length)`);
    }
    addresses.push({ prefix, index });
  });

  const mtu = spec.mtu;
  const firstV6 = addresses.find((a) => a.prefix.family === 6);
  if (typeof mtu === 'number' && firstV6 && mtu < IPV6_MIN_MTU && checkable(['spec', 'mtu'])) {
    report(
      ['spec', 'mtu'],
      `is ${mtu}, but spec.addresses[${firstV6.index}] (${formatPrefix(firstV6.prefix)}) is IPv6, which needs an MTU of at least ${IPV6_MIN_MTU}: the kernel disables IPv6 on a smaller link`,
    );
  }

  // Routes.
  const routes: DesiredRoute[] = [];
  const routeKeys = new Map<string, number>();
  (Array.isArray(spec.routes) ? spec.routes : []).forEach((route, index) => {
    const path: FieldPath = ['spec', 'routes', index];
    if (!checkable(path)) return;
    const r = checkRoute(route, path, addresses, checkable, report);
    if (!r) return;
    const key = `${r.family} ${r.dst}/${r.dstLength} table ${r.table} metric ${r.metric ?? kernelDefaultMetric(r.family)}`;
    const twin = routeKeys.get(key);
    if (twin !== undefined) {
      report(
        [...path, 'to'],
        `declares the same route as spec.routes[${twin}] (${r.dst}/${r.dstLength} in table ${r.table} with metric ${r.metric ?? kernelDefaultMetric(r.family)}): the kernel keeps one route per destination, table and metric`,
      );
      return;
    }
    routeKeys.set(key, index);
    routes.push(r);
  });

  const result: SemanticResult = { problems, ifnamePath };
  if (nodeSelector) result.nodeSelector = nodeSelector;
  if (problems.length > 0 || name === undefined || ifname === undefined) return result;

  const device: DesiredDevice = {
    name,
    ifname,
    mode: mode ?? 'tun',
    mtu: mtu ?? 1500,
    up: spec.up ?? true,
    multiQueue: spec.multiQueue ?? false,
    vnetHdr: spec.vnetHdr ?? false,
    packetInfo: spec.packetInfo ?? false,
    addresses: addresses.map(({ prefix }): DesiredAddress => ({ family: prefix.family, address: formatAddress(prefix), prefixLength: prefix.prefixLength })),
    routes,
    origin: input.origin,
  };
  // Optional fields are left out rather than set to undefined, so snapshots compare by value.
  if (spec.txQueueLength !== undefined) device.txQueueLength = spec.txQueueLength;
  if (macAddress !== undefined) device.macAddress = macAddress;
  if (spec.owner !== undefined) device.owner = spec.owner;
  if (spec.group !== undefined) device.group = spec.group;
  result.device = device;
  return result;
}

function checkRoute(
  route: TunDeviceRoute,
  path: FieldPath,
  addresses: { prefix: IpPrefix; index: number }[],
  checkable: (p: FieldPath) => boolean,
  report: (path: FieldPath, detail: string, anchor?: 'key') => void,
): DesiredRoute | undefined {
  let failed = false;
  const fail = (p: FieldPath, detail: string, anchor?: 'key') => {
    failed = true;
    report(p, detail, anchor);
  };
  const at = (field: string): FieldPath => [...path, field];

  // Parse the addresses first: `to: default` takes its family from them.
  let via: IpAddress | undefined;
  if (route.via !== undefined && checkable(at('via'))) {
    const p = parseIp(route.via);
    if (!p.ok) fail(at('via'), p.error);
    else {
      const bad = nonUnicastReason(p.value) ?? loopbackReason(p.value);
      if (bad) fail(at('via'), `${JSON.stringify(route.via)} cannot be a gateway: ${bad}`);
      else via = p.value;
    }
  }
  let src: IpAddress | undefined;
  if (route.src !== undefined && checkable(at('src'))) {
    const p = parseIp(route.src);
    if (!p.ok) fail(at('src'), p.error);
    else src = p.value;
  }

  let dst: IpPrefix | undefined;
  if (checkable(at('to'))) {
    if (route.to === 'default') {
      const families = new Set<IpFamily>();
      if (via) families.add(via.family);
      if (src) families.add(src.family);
      if (families.size === 0) for (const a of addresses) families.add(a.prefix.family);
      if (families.size === 1) {
        const family = [...families][0];
        dst = { family, bytes: new Uint8Array(family === 4 ? 4 : 16), prefixLength: 0 };
      } else if (families.size === 0 || (!via && !src)) {
        fail(
          at('to'),
          `"default" is ambiguous here: the route has no via or src and the device has ${families.size === 0 ? 'no addresses' : 'both IPv4 and IPv6 addresses'}; write 0.0.0.0/0 or ::/0`,
        );
      }
      // Otherwise via and src disagree: reported below as a family mismatch.
      else dst = { family: via ? via.family : 4, bytes: new Uint8Array(via?.family === 6 ? 16 : 4), prefixLength: 0 };
    } else {
      const p = parseCidr(route.to);
      if (!p.ok) fail(at('to'), p.error);
      else if (hasHostBits(p.value)) {
        fail(
          at('to'),
          `${JSON.stringify(route.to)} has host bits set: the network is ${formatPrefix(networkOfPrefix(p.value))} (a route goes to a network; an address of the device belongs in spec.addresses)`,
        );
      } else dst = p.value;
    }
  }
  if (!dst) return undefined;
  const family = dst.family;
  const toText = route.to === 'default' ? `default (${familyName(family)})` : formatPrefix(dst);

  if (via) {
    if (via.family !== family) {
      fail(at('via'), `${formatAddress(via)} is ${familyName(via.family)} but the destination ${toText} is ${familyName(family)}`);
    } else if (addresses.some((a) => sameAddress(a.prefix, via!))) {
      fail(at('via'), `${formatAddress(via)} is an address of this device itself; a gateway is another host on the link`);
    } else if (!route.onLink && !isIPv6LinkLocalAddress(via) && !addresses.some((a) => prefixContainsAddress(a.prefix, via!))) {
      const own = addresses.filter((a) => a.prefix.family === family).map((a) => formatPrefix(a.prefix));
      fail(
        at('via'),
        `${formatAddress(via)} is not inside any ${familyName(family)} address prefix of this device (${own.length > 0 ? own.join(', ') : 'it has none'}), so the kernel would refuse it as unreachable; ` +
          'add an address that covers it, or set onLink: true if the gateway is reachable on this link anyway',
      );
    }
  } else if (route.via === undefined && route.onLink && checkable(at('onLink'))) {
    fail(at('onLink'), 'is true but the route has no gateway (via); a route without via is already on-link', 'key');
  }

  if (src) {
    if (src.family !== family) fail(at('src'), `${formatAddress(src)} is ${familyName(src.family)} but the destination ${toText} is ${familyName(family)}`);
    else if (!addresses.some((a) => sameAddress(a.prefix, src!))) {
      const own = addresses.filter((a) => a.prefix.family === family).map((a) => formatAddress(a.prefix));
      fail(at('src'), `${formatAddress(src)} is not one of this device's ${familyName(family)} addresses (${own.length > 0 ? own.join(', ') : 'it has none'})`);
    }
  }

  if (route.mtu !== undefined && family === 6 && route.mtu < IPV6_MIN_MTU && checkable(at('mtu'))) {
    fail(at('mtu'), `is ${route.mtu}, but an IPv6 route needs an MTU of at least ${IPV6_MIN_MTU}`);
  }
  if (route.table === LOCAL_TABLE && checkable(at('table'))) {
    fail(at('table'), '255 is the local table, where the kernel keeps the routes to this host\'s own addresses; tunkeeper does not own routes there');
  }
  if (failed) return undefined;

  const out: DesiredRoute = {
    family,
    dst: formatAddress(dst),
    dstLength: dst.prefixLength,
    table: route.table ?? 254,
    onLink: route.onLink ?? false,
  };
  if (via) out.via = formatAddress(via);
  if (route.metric !== undefined) out.metric = route.metric;
  if (src) out.src = formatAddress(src);
  if (route.mtu !== undefined) out.mtu = route.mtu;
  return out;
}
