/**
 * What JSON Schema cannot say about a TunDevice: the kernel's rules for names, addresses, gateways
 * and tables, and the rules between fields. Runs on a structurally valid, defaulted document (fields
 * with a structural problem are skipped: they are already reported) and builds the canonical
 * DesiredDevice. Each CEL rule of the CRD has a twin here (test/controller/schema/cel.test.ts).
 */
import { DEFAULT_ROLLOUT, probeKey, type DesiredAddress, type DesiredDevice, type DesiredProbe, type DesiredRollout, type DesiredRoute, type IpFamily } from '../model/desired.js';
import { ifnameProblem } from './ifname.js';
import {
  formatAddress,
  formatPrefix,
  hasHostBits,
  isIPv6LinkLocalAddress,
  networkOfPrefix,
  networkOf,
  prefixContains,
  prefixContainsAddress,
  sameAddress,
  type IpAddress,
  type IpPrefix,
} from '../model/ip.js';
import { nonUnicastReason, parseCidr, parseIp } from './ip.js';
import { parseMac } from './mac.js';
import type { FieldPath, FieldProblem } from './problem.js';
import { pathKey } from './structural.js';
import {
  IPV6_MIN_MTU,
  LOCAL_TABLE,
  PERCENT_PATTERN,
  type LabelSelector,
  type TunDeviceProbe,
  type TunDeviceRollout,
  type TunDeviceRoute,
  type TunDeviceSpec,
} from './tundevice.js';

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

  // Addresses. `addressesComplete`: every declared address is in `addresses` (what the probe
  // checks need before they may say that no address covers a probe).
  const addresses: { prefix: IpPrefix; index: number }[] = [];
  let addressesComplete = checkable(['spec', 'addresses']);
  const badAddress = (path: FieldPath, detail?: string) => {
    addressesComplete = false;
    if (detail !== undefined) report(path, detail);
  };
  (Array.isArray(spec.addresses) ? spec.addresses : []).forEach((text, index) => {
    const path = ['spec', 'addresses', index];
    if (!checkable(path)) return badAddress(path);
    const parsed = parseCidr(text);
    if (!parsed.ok) return badAddress(path, parsed.error);
    const prefix = parsed.value;
    const bad = nonUnicastReason(prefix) ?? loopbackReason(prefix);
    if (bad) return badAddress(path, `${JSON.stringify(text)} cannot be a device address: ${bad}`);
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
  // `routesComplete`: as addressesComplete (a duplicate is left out, but its twin covers the same).
  const routes: DesiredRoute[] = [];
  const routeKeys = new Map<string, number>();
  let routesComplete = checkable(['spec', 'routes']);
  (Array.isArray(spec.routes) ? spec.routes : []).forEach((route, index) => {
    const path: FieldPath = ['spec', 'routes', index];
    const r = checkable(path) ? checkRoute(route, path, addresses, checkable, report) : undefined;
    if (!r) {
      routesComplete = false;
      return;
    }
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

  const probes = checkProbes(spec.probes, { addresses, addressesComplete, routes, routesComplete }, checkable, report);
  const rollout = spec.rollout !== undefined && checkable(['spec', 'rollout']) ? checkRollout(spec.rollout, checkable, report) : undefined;

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
  // No probes means no `probes` key at all, so devices declared before probes existed (and the
  // state files holding them) compare equal to what they were.
  if (probes.length > 0) device.probes = probes;
  if (rollout) device.rollout = rollout;
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

interface ProbeContext {
  addresses: { prefix: IpPrefix; index: number }[];
  /** Every declared address is in `addresses`: only then may a check say that none fits. */
  addressesComplete: boolean;
  routes: DesiredRoute[];
  routesComplete: boolean;
}

/** How many prefixes a message lists before it only counts the rest. */
const LISTED_PREFIXES = 8;

function listPrefixes(prefixes: string[]): string {
  const unique = [...new Set(prefixes)];
  const shown = unique.slice(0, LISTED_PREFIXES).join(', ');
  return unique.length > LISTED_PREFIXES ? `${shown} and ${unique.length - LISTED_PREFIXES} more` : shown;
}

/**
 * spec.probes. A probe can only pass if the device could carry it, so each address must be:
 * - a unicast address (a lookup or an echo goes to one host);
 * - of a family the device has an address of. Per family rather than "the device has some
 *   address": an echo needs a source address on the device to be answered at, and a route lookup
 *   for a family the device has no address of would be sourced from another device's address, so
 *   an IPv6 probe on an IPv4-only device fails for the same reason as any probe on a device with
 *   no address at all. That last case is said once, on spec.probes, since no probe can pass;
 * - not an address of the device itself: the kernel delivers those locally (through lo);
 * - inside one of the device's route destinations (default covers its family) or address
 *   prefixes: otherwise no lookup for it leaves through the device, whatever the kernel holds;
 * - declared once per kind.
 */
function checkProbes(
  list: TunDeviceProbe[] | undefined,
  ctx: ProbeContext,
  checkable: (p: FieldPath) => boolean,
  report: (path: FieldPath, detail: string, anchor?: 'key') => void,
): DesiredProbe[] {
  const out: DesiredProbe[] = [];
  if (!Array.isArray(list) || list.length === 0 || !checkable(['spec', 'probes'])) return out;
  if (ctx.addressesComplete && ctx.addresses.length === 0) {
    report(
      ['spec', 'probes'],
      "cannot pass on a device without addresses: an echo would have no source address to be answered at, and a route lookup would be answered for another device's address (add the device's address to spec.addresses)",
      'key',
    );
    return out;
  }
  const seen = new Map<string, number>();
  list.forEach((probe, index) => {
    const path: FieldPath = ['spec', 'probes', index];
    if (!checkable(path)) return;
    const kinds = (['route', 'ping'] as const).filter((k) => probe[k] !== undefined);
    if (kinds.length !== 1) {
      report(
        path,
        kinds.length === 0
          ? 'needs one of route or ping, e.g. {route: {to: 198.51.100.7}} or {ping: {to: 192.0.2.2}}'
          : 'has both route and ping: a probe is exactly one check, so write them as two entries of spec.probes',
      );
      return;
    }
    const kind = kinds[0]!;
    const at: FieldPath = [...path, kind, 'to'];
    if (!checkable(at)) return;
    const text = probe[kind]!.to;
    const parsed = parseIp(text);
    if (!parsed.ok) return report(at, parsed.error);
    const addr = parsed.value;
    const p: DesiredProbe = { kind, family: addr.family, to: formatAddress(addr) };
    const twin = seen.get(probeKey(p));
    if (twin !== undefined) return report(at, `declares the same probe as spec.probes[${twin}] (${probeKey(p)})`);
    seen.set(probeKey(p), index);

    const bad = nonUnicastReason(addr) ?? loopbackReason(addr);
    if (bad) return report(at, `${JSON.stringify(text)} cannot be probed: ${bad}, and a probe checks the unicast address of a host the device leads to`);
    const family = familyName(addr.family);
    const own = ctx.addresses.filter((a) => a.prefix.family === addr.family);
    if (ctx.addressesComplete && own.length === 0) {
      return report(
        at,
        `${p.to} is ${family}, but the device has no ${family} address: an echo would have no source address to be answered at, and a route lookup would be answered for another device's address`,
      );
    }
    const itself = own.find((a) => sameAddress(a.prefix, addr));
    if (itself) {
      return report(
        at,
        `${p.to} is an address of this device itself (spec.addresses[${itself.index}]): the kernel delivers traffic for it locally, through lo, so the probe could never pass`,
      );
    }
    if (ctx.addressesComplete && ctx.routesComplete) {
      const routes = ctx.routes.filter((r) => r.family === addr.family);
      const covered =
        routes.some((r) => prefixContains(r.family, r.dst, r.dstLength, p.to)) || own.some((a) => prefixContainsAddress(a.prefix, addr));
      if (!covered) {
        const prefixes = [
          ...routes.map((r) => `${r.dst}/${r.dstLength}`),
          ...own.map((a) => `${networkOf(a.prefix.family, formatAddress(a.prefix), a.prefix.prefixLength)}/${a.prefix.prefixLength}`),
        ];
        return report(at, `${p.to} is outside every route and address prefix of this device (${listPrefixes(prefixes)}), so no lookup for it could leave through the device`);
      }
    }
    out.push(p);
  });
  return out;
}

const PERCENT = new RegExp(PERCENT_PATTERN);

/**
 * spec.rollout, defaults applied. maxUnavailable's type (a whole number or a string) is structural;
 * its value is checked here, as the CRD's CEL rules check it. A structural problem elsewhere in the
 * rollout is already reported, and no device is built from a document with problems.
 */
function checkRollout(
  rollout: TunDeviceRollout,
  checkable: (p: FieldPath) => boolean,
  report: (path: FieldPath, detail: string) => void,
): DesiredRollout | undefined {
  const path: FieldPath = ['spec', 'rollout', 'maxUnavailable'];
  const maxUnavailable = rollout.maxUnavailable ?? DEFAULT_ROLLOUT.maxUnavailable;
  const problem = checkable(path) ? maxUnavailableProblem(maxUnavailable) : undefined;
  if (problem !== undefined) {
    report(path, problem);
    return undefined;
  }
  return { maxUnavailable, probeTimeoutSeconds: rollout.probeTimeoutSeconds ?? DEFAULT_ROLLOUT.probeTimeoutSeconds };
}

/** Why a maxUnavailable value would not let the rollout move, or is not one at all. */
function maxUnavailableProblem(max: number | string): string | undefined {
  if (typeof max === 'number') {
    return max < 1 ? `is ${max}, but at least 1 node must be allowed to move at a time, or no node could ever take a new generation` : undefined;
  }
  if (PERCENT.test(max)) return undefined;
  if (/^0+%$/.test(max)) return `is ${JSON.stringify(max)}, but at least 1% must be allowed to move at a time, or no node could ever take a new generation`;
  if (/^[0-9]+$/.test(max)) return `${JSON.stringify(max)} is a string: write a number of nodes without quotes, or a percentage such as "25%"`;
  return `${JSON.stringify(max)} is not a percentage from "1%" to "100%": write a number of nodes such as 1, or a percentage such as "25%"`;
}
