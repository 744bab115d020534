/**
 * A pure model of the Linux kernel's links, addresses and routes, enough to replay a plan and see
 * what the kernel would end up with. It is written from the kernel's behaviour (checked on a real
 * kernel in a scratch namespace), not from plan's predictions, so the property tests catch a plan
 * that relies on something the kernel does not do:
 *
 * - a TUN/TAP device starts down, MTU 1500, txqlen 500 (tun) or 1000 (tap), without carrier;
 * - deleting a link deletes its addresses and every route through it; IPv4 main-table routes
 *   whose preferred source leaves the host go too;
 * - a link going down loses every route through it and (keep_addr_on_down=0) its IPv6 addresses;
 *   coming up, the kernel adds the prefix routes of its addresses (proto kernel);
 * - an MTU below 1280 removes IPv6 from the link; IPv6 addresses cannot be added there;
 * - an IPv4 address adds a prefix route (main, metric 0, appended) when it is the primary of its
 *   subnet and the link is up; an IPv6 address adds one at metric 256 unless that key is taken;
 * - removing an IPv4 primary removes its secondaries (promote_secondaries=0) or promotes one;
 *   removing the last IPv4 address of a link removes every IPv4 route through it; removing an
 *   IPv4 address from the host removes main-table routes using it as preferred source;
 * - removing an IPv6 address clears it as the source of routes through its link; IPv6 addresses
 *   are identified by address alone (re-adding with another prefix length and REPLACE keeps the
 *   old one);
 * - a route needs its device to exist and be up, a reachable gateway (covered by an address of
 *   the device, link-local for IPv6, or onlink) and a preferred source present (IPv6: not
 *   tentative, which an address on a carrier-less TAP is unless added with nodad);
 * - routes are keyed as route-key.ts documents; REPLACE overwrites the first route under the key,
 *   whatever its protocol; a delete matches on the attributes it is given.
 * Not modelled: local/broadcast table entries, multipath, neighbours, rules.
 */
import type { IpFamily } from '../../controller/model/desired.js';
import type {
  ObservedAddress,
  ObservedLink,
  ObservedRoute,
  ObservedState,
  ObservedTunInfo,
} from '../../controller/model/observed.js';
import { RT_TABLE_MAIN, RTPROT_KERNEL } from '../../controller/model/observed.js';
import type { Action, CreateDeviceSpec, RouteSpec, TunFlags } from '../../controller/plan/actions.js';
import { isIPv6LinkLocal, networkOf, prefixContains } from '../../controller/model/ip.js';
import { observedRouteKey } from '../../controller/plan/route-key.js';

export type KernelErrno = 'EEXIST' | 'ENODEV' | 'ESRCH' | 'EADDRNOTAVAIL' | 'ENETDOWN' | 'EINVAL' | 'ENETUNREACH' | 'EPERM';

export class KernelError extends Error {
  constructor(
    readonly code: KernelErrno,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

export interface KernelModelOptions {
  /** net.ipv4.conf.*.promote_secondaries */
  promoteSecondaries?: boolean;
}

export interface AddAddressOptions {
  proto?: number;
  noDad?: boolean;
  peer?: string;
  /** NLM_F_REPLACE: an existing address is kept (and is not an error). */
  replace?: boolean;
}

export type RouteAddMode = 'add' | 'append' | 'replace';

/** A route as userspace asks for it (RTM_NEWROUTE). */
export interface RouteRequest {
  family: IpFamily;
  table: number;
  dst: string;
  dstLength: number;
  tos?: number;
  from?: string;
  fromLength?: number;
  metric?: number;
  protocol: number;
  type?: ObservedRoute['type'];
  scope?: ObservedRoute['scope'];
  oif?: number;
  gateway?: string;
  prefsrc?: string;
  mtu?: number;
  onLink?: boolean;
}

const IPV6_MIN_MTU = 1280;

function clone<T>(v: T): T {
  return structuredClone(v);
}

/** As the kernel reports it: IPv4 metric 0 is not sent; IPv6 0 is stored as 1024. */
function normaliseRoute(r: ObservedRoute): ObservedRoute {
  const out: ObservedRoute = { ...r };
  if (out.family === 4 && (out.metric === 0 || out.metric === undefined)) delete out.metric;
  if (out.family === 6 && (out.metric === undefined || out.metric === 0) && out.type !== 'local') out.metric = 1024;
  if (out.tos === 0) delete out.tos;
  if (out.fromLength === 0) {
    delete out.from;
    delete out.fromLength;
  }
  for (const k of ['gateway', 'prefsrc', 'mtu', 'oif'] as const) if (out[k] === undefined) delete out[k];
  return out;
}

export class KernelModel {
  private links: ObservedLink[] = [];
  private addresses: ObservedAddress[] = [];
  private routes: ObservedRoute[] = [];
  private nextIfindex = 1;
  readonly promoteSecondaries: boolean;

  constructor(state: ObservedState = { links: [], addresses: [], routes: [] }, options: KernelModelOptions = {}) {
    this.links = clone(state.links);
    this.addresses = clone(state.addresses);
    this.routes = clone(state.routes).map(normaliseRoute);
    this.nextIfindex = Math.max(0, ...this.links.map((l) => l.ifindex)) + 1;
    this.promoteSecondaries = options.promoteSecondaries ?? false;
  }

  state(): ObservedState {
    return {
      links: clone([...this.links].sort((a, b) => a.ifindex - b.ifindex)),
      addresses: clone(this.addresses),
      routes: clone(this.routes),
    };
  }

  // ---- links --------------------------------------------------------------------------------

  link(ifindex: number): ObservedLink {
    const l = this.links.find((x) => x.ifindex === ifindex);
    if (l === undefined) throw new KernelError('ENODEV', `no link with ifindex ${ifindex}`);
    return l;
  }

  linkByName(ifname: string): ObservedLink | undefined {
    return this.links.find((x) => x.ifname === ifname);
  }

  /** Adds any link (a NIC, veth, bridge... made by someone else), down unless `up` says otherwise. */
  addLink(link: Omit<ObservedLink, 'ifindex'> & { ifindex?: number }): ObservedLink {
    if (this.linkByName(link.ifname) !== undefined) throw new KernelError('EEXIST', `link ${link.ifname} exists`);
    const ifindex = link.ifindex ?? this.nextIfindex;
    if (this.links.some((l) => l.ifindex === ifindex)) throw new KernelError('EEXIST', `ifindex ${ifindex} taken`);
    this.nextIfindex = Math.max(this.nextIfindex, ifindex + 1);
    const created: ObservedLink = { ...clone(link), ifindex, up: false };
    this.links.push(created);
    if (link.up) this.setLink(ifindex, { up: true });
    return created;
  }

  /** TUNSETIFF on a new name plus what apply does around it (alias before persist, owner/group). */
  createTun(ifname: string, spec: Omit<Partial<CreateDeviceSpec>, 'persist'> & TunFlags & { persist?: boolean }): ObservedLink {
    if (this.linkByName(ifname) !== undefined) throw new KernelError('EEXIST', `link ${ifname} exists (TUNSETIFF would attach to it)`);
    const ifindex = this.nextIfindex++;
    const tun: ObservedTunInfo = {
      mode: spec.mode,
      packetInfo: spec.packetInfo,
      vnetHdr: spec.vnetHdr,
      multiQueue: spec.multiQueue,
      persist: spec.persist ?? true,
    };
    if (spec.owner !== undefined) tun.owner = spec.owner;
    if (spec.group !== undefined) tun.group = spec.group;
    const link: ObservedLink = {
      ifindex,
      ifname,
      kind: 'tun',
      up: false,
      mtu: 1500,
      txQueueLength: spec.mode === 'tun' ? 500 : 1000,
      tun,
    };
    if (spec.mode === 'tap') link.macAddress = `02:00:00:00:${((ifindex >> 8) & 0xff).toString(16).padStart(2, '0')}:${(ifindex & 0xff).toString(16).padStart(2, '0')}`;
    if (spec.alias !== undefined) link.alias = spec.alias;
    this.links.push(link);
    return link;
  }

  deleteLink(ifindex: number): void {
    const link = this.link(ifindex);
    const gone = this.addresses.filter((a) => a.ifindex === ifindex);
    this.addresses = this.addresses.filter((a) => a.ifindex !== ifindex);
    this.routes = this.routes.filter((r) => r.oif !== ifindex);
    this.links = this.links.filter((l) => l !== link);
    for (const a of gone) if (a.family === 4) this.flushPrefsrcIfGone(a.address);
  }

  setLink(ifindex: number, set: { mtu?: number; txQueueLength?: number; macAddress?: string; up?: boolean; alias?: string | null }): void {
    const link = this.link(ifindex);
    if (set.mtu !== undefined) {
      if (set.mtu < 68 || set.mtu > 65535) throw new KernelError('EINVAL', `mtu ${set.mtu} out of range`);
      const old = link.mtu;
      link.mtu = set.mtu;
      if (set.mtu < IPV6_MIN_MTU && old >= IPV6_MIN_MTU) this.dropIPv6(ifindex);
    }
    if (set.txQueueLength !== undefined) link.txQueueLength = set.txQueueLength;
    if (set.macAddress !== undefined) {
      if (link.macAddress === undefined) throw new KernelError('EINVAL', `${link.ifname} has no hardware address`);
      link.macAddress = set.macAddress;
    }
    if (set.alias !== undefined) {
      if (set.alias === null || set.alias === '') delete link.alias;
      else link.alias = set.alias;
    }
    if (set.up !== undefined && set.up !== link.up) {
      link.up = set.up;
      if (set.up) this.addPrefixRoutesOnUp(link);
      else {
        this.routes = this.routes.filter((r) => r.oif !== ifindex);
        this.addresses = this.addresses.filter((a) => !(a.ifindex === ifindex && a.family === 6));
      }
    }
  }

  /** TUNSETIFF on an existing device (attach) and TUNSETOWNER/TUNSETGROUP/TUNSETPERSIST. */
  setTunOptions(ifindex: number, flags: TunFlags, set: { owner?: number | null; group?: number | null; persist?: boolean }): void {
    const link = this.link(ifindex);
    const tun = link.tun;
    if (link.kind !== 'tun' || tun === undefined) throw new KernelError('EINVAL', `${link.ifname} is not a TUN/TAP device`);
    if (tun.mode !== flags.mode || tun.multiQueue !== flags.multiQueue) throw new KernelError('EINVAL', `attach to ${link.ifname} with other flags`);
    // Attaching rewrites the per-device feature flags with the attaching ones.
    tun.vnetHdr = flags.vnetHdr;
    tun.packetInfo = flags.packetInfo;
    if (set.owner !== undefined) {
      if (set.owner === null) delete tun.owner;
      else tun.owner = set.owner;
    }
    if (set.group !== undefined) {
      if (set.group === null) delete tun.group;
      else tun.group = set.group;
    }
    if (set.persist !== undefined) tun.persist = set.persist;
  }

  private dropIPv6(ifindex: number): void {
    this.addresses = this.addresses.filter((a) => !(a.ifindex === ifindex && a.family === 6));
    this.routes = this.routes.filter((r) => !(r.oif === ifindex && r.family === 6));
  }

  private addPrefixRoutesOnUp(link: ObservedLink): void {
    for (const a of this.addresses) {
      if (a.ifindex !== link.ifindex) continue;
      if (a.family === 4 && !a.flags.secondary) this.addV4PrefixRoute(a);
      if (a.family === 6) this.addV6PrefixRoute(a);
    }
  }

  private addV4PrefixRoute(a: ObservedAddress): void {
    if (a.prefixLength >= 32) return;
    this.routes.push(
      normaliseRoute({
        family: 4,
        dst: networkOf(4, a.address, a.prefixLength),
        dstLength: a.prefixLength,
        table: RT_TABLE_MAIN,
        protocol: RTPROT_KERNEL,
        type: 'unicast',
        scope: 'link',
        oif: a.ifindex,
        prefsrc: a.address,
        onLink: false,
      }),
    );
  }

  private addV6PrefixRoute(a: ObservedAddress): void {
    if (a.prefixLength >= 128) return;
    const r = normaliseRoute({
      family: 6,
      dst: networkOf(6, a.address, a.prefixLength),
      dstLength: a.prefixLength,
      table: RT_TABLE_MAIN,
      protocol: RTPROT_KERNEL,
      type: 'unicast',
      scope: 'universe',
      oif: a.ifindex,
      metric: 256,
      onLink: false,
    });
    // addrconf adds it without NLM_F_REPLACE: a route already under the key wins.
    if (this.routes.some((x) => observedRouteKey(x) === observedRouteKey(r))) return;
    this.routes.push(r);
  }

  // ---- addresses ------------------------------------------------------------------------------

  addAddress(ifindex: number, family: IpFamily, address: string, prefixLength: number, opts: AddAddressOptions = {}): void {
    const link = this.link(ifindex);
    if (family === 6 && link.mtu < IPV6_MIN_MTU) throw new KernelError('EINVAL', `IPv6 is disabled on ${link.ifname} (mtu ${link.mtu})`);
    const existing = this.addresses.find((a) =>
      family === 4
        ? a.ifindex === ifindex && a.family === 4 && a.address === address && a.prefixLength === prefixLength && a.peer === opts.peer
        : a.ifindex === ifindex && a.family === 6 && a.address === address,
    );
    if (existing !== undefined) {
      if (opts.replace) return;
      throw new KernelError('EEXIST', `${address} already on ${link.ifname}`);
    }
    const secondary =
      family === 4 &&
      this.addresses.some(
        (a) => a.ifindex === ifindex && a.family === 4 && a.prefixLength === prefixLength && networkOf(4, a.address, prefixLength) === networkOf(4, address, prefixLength),
      );
    const tentative = family === 6 && !opts.noDad && link.tun?.mode === 'tap';
    const a: ObservedAddress = {
      ifindex,
      family,
      address,
      prefixLength,
      scope: family === 6 && isIPv6LinkLocal(address) ? 'link' : 'universe',
      flags: { permanent: true, secondary, tentative },
    };
    if (opts.peer !== undefined) a.peer = opts.peer;
    if (opts.proto !== undefined && opts.proto !== 0) a.proto = opts.proto;
    this.addresses.push(a);
    if (link.up && family === 4 && !secondary) this.addV4PrefixRoute(a);
    if (link.up && family === 6) this.addV6PrefixRoute(a);
  }

  /** What addrconf does when a link with carrier comes up: fe80::/64 and its route. */
  addKernelLinkLocal(ifindex: number, address: string, proto: number | undefined = 3): void {
    this.addAddress(ifindex, 6, address, 64, { proto, noDad: true });
  }

  deleteAddress(ifindex: number, family: IpFamily, address: string, prefixLength: number, peer?: string): void {
    const link = this.link(ifindex);
    const target = this.addresses.find(
      (a) => a.ifindex === ifindex && a.family === family && a.address === address && a.prefixLength === prefixLength && (family === 6 || a.peer === peer),
    );
    if (target === undefined) throw new KernelError('EADDRNOTAVAIL', `${address}/${prefixLength} not on ${link.ifname}`);
    if (family === 6) {
      this.addresses = this.addresses.filter((a) => a !== target);
      const stillCovered = this.addresses.some(
        (a) => a.ifindex === ifindex && a.family === 6 && a.prefixLength === prefixLength && networkOf(6, a.address, prefixLength) === networkOf(6, address, prefixLength),
      );
      if (!stillCovered && prefixLength < 128) {
        const net = networkOf(6, address, prefixLength);
        this.routes = this.routes.filter(
          (r) => !(r.family === 6 && r.protocol === RTPROT_KERNEL && r.oif === ifindex && r.dst === net && r.dstLength === prefixLength && r.metric === 256),
        );
      }
      for (const r of this.routes) if (r.oif === ifindex && r.family === 6 && r.prefsrc === address) delete r.prefsrc;
      return;
    }
    const sameSubnet = (a: ObservedAddress): boolean =>
      a !== target && a.ifindex === ifindex && a.family === 4 && a.prefixLength === prefixLength && networkOf(4, a.address, prefixLength) === networkOf(4, address, prefixLength);
    const removed: ObservedAddress[] = [target];
    let promoted: ObservedAddress | undefined;
    if (!target.flags.secondary) {
      const secondaries = this.addresses.filter(sameSubnet);
      if (this.promoteSecondaries) promoted = secondaries[0];
      else removed.push(...secondaries);
    }
    this.addresses = this.addresses.filter((a) => !removed.includes(a));
    for (const x of removed) {
      this.routes = this.routes.filter((r) => !(r.family === 4 && r.protocol === RTPROT_KERNEL && r.oif === ifindex && r.prefsrc === x.address && r.table === RT_TABLE_MAIN));
    }
    if (promoted !== undefined) {
      promoted.flags.secondary = false;
      if (link.up) this.addV4PrefixRoute(promoted);
    }
    for (const x of removed) this.flushPrefsrcIfGone(x.address);
    if (!this.addresses.some((a) => a.ifindex === ifindex && a.family === 4)) {
      this.routes = this.routes.filter((r) => !(r.family === 4 && r.oif === ifindex));
    }
  }

  private flushPrefsrcIfGone(address: string): void {
    if (this.addresses.some((a) => a.family === 4 && a.address === address)) return;
    this.routes = this.routes.filter((r) => !(r.family === 4 && r.table === RT_TABLE_MAIN && r.prefsrc === address));
  }

  // ---- routes ---------------------------------------------------------------------------------

  addRoute(req: RouteRequest, mode: RouteAddMode): void {
    const type = req.type ?? 'unicast';
    if (type === 'unicast') {
      if (req.oif === undefined) throw new KernelError('EINVAL', 'a unicast route needs a device');
      const link = this.link(req.oif);
      if (!link.up) throw new KernelError('ENETDOWN', `${link.ifname} is down`);
      if (req.family === 6 && link.mtu < IPV6_MIN_MTU) throw new KernelError('EINVAL', `IPv6 is disabled on ${link.ifname}`);
      if (req.gateway !== undefined && req.onLink !== true) {
        const gw = req.gateway;
        const covered =
          (req.family === 6 && isIPv6LinkLocal(gw)) ||
          this.addresses.some(
            (a) => a.ifindex === link.ifindex && a.family === req.family && a.address !== gw && a.prefixLength < (req.family === 4 ? 32 : 128) && prefixContains(req.family, a.address, a.prefixLength, gw),
          ) ||
          // A device route through the link, in the route's table or (the fallback lookup) main.
          this.routes.some(
            (r) =>
              r.oif === link.ifindex && r.family === req.family && r.type === 'unicast' && r.gateway === undefined &&
              (r.table === req.table || r.table === RT_TABLE_MAIN) && prefixContains(req.family, r.dst, r.dstLength, gw),
          );
        if (!covered) throw new KernelError('ENETUNREACH', `gateway ${gw} is not reachable through ${link.ifname}`);
      }
      if (req.prefsrc !== undefined) {
        const src = req.prefsrc;
        const ok = this.addresses.some(
          (a) =>
            a.family === req.family &&
            a.address === src &&
            (req.family === 4 || ((a.ifindex === link.ifindex || a.scope === 'universe') && !a.flags.tentative)),
        );
        if (!ok) throw new KernelError('EINVAL', `invalid preferred source ${src}`);
      }
    }
    const route = normaliseRoute({
      family: req.family,
      dst: req.dst,
      dstLength: req.dstLength,
      tos: req.tos,
      from: req.from,
      fromLength: req.fromLength,
      table: req.table,
      protocol: req.protocol,
      type,
      scope: req.scope ?? (req.family === 4 && req.gateway === undefined && type === 'unicast' ? 'link' : 'universe'),
      oif: req.oif,
      gateway: req.gateway,
      metric: req.metric,
      prefsrc: req.prefsrc,
      mtu: req.mtu,
      onLink: req.onLink ?? false,
    });
    const key = observedRouteKey(route);
    const index = this.routes.findIndex((r) => observedRouteKey(r) === key);
    if (mode === 'replace') {
      if (index >= 0) this.routes[index] = route;
      else this.routes.push(route);
      return;
    }
    if (index >= 0 && mode === 'add') throw new KernelError('EEXIST', `a route exists under ${key}`);
    this.routes.push(route);
  }

  /**
   * RTM_DELROUTE: removes the first route under the key that has every attribute given (IPv4:
   * type, protocol, device, gateway, preferred source, mtu; IPv6 ignores the source and metrics).
   */
  deleteRoute(req: Partial<RouteRequest> & Pick<RouteRequest, 'family' | 'table' | 'dst' | 'dstLength'>): void {
    // The key exactly as given (metric as stored: no IPv6 0 → 1024 here, deletes name stored routes).
    const key = observedRouteKey({ ...req, protocol: 0, type: 'unicast', scope: 'universe', onLink: false });
    const index = this.routes.findIndex(
      (r) =>
        observedRouteKey(r) === key &&
        (req.protocol === undefined || r.protocol === req.protocol) &&
        (req.oif === undefined || r.oif === req.oif) &&
        (req.gateway === undefined || r.gateway === req.gateway) &&
        (req.type === undefined || r.type === req.type) &&
        (req.family === 6 || req.prefsrc === undefined || r.prefsrc === req.prefsrc) &&
        (req.family === 6 || req.mtu === undefined || r.mtu === req.mtu),
    );
    if (index < 0) throw new KernelError('ESRCH', `no route ${key} to delete`);
    this.routes.splice(index, 1);
  }

  // ---- plan actions ---------------------------------------------------------------------------

  private resolve(ifname: string | undefined, ifindex: number | undefined): ObservedLink {
    if (ifindex !== undefined) {
      const link = this.link(ifindex);
      if (ifname !== undefined && link.ifname !== ifname) throw new KernelError('ENODEV', `ifindex ${ifindex} is ${link.ifname}, not ${ifname}`);
      return link;
    }
    const link = ifname === undefined ? undefined : this.linkByName(ifname);
    if (link === undefined) throw new KernelError('ENODEV', `no link named ${ifname}`);
    return link;
  }

  private routeRequest(r: RouteSpec, oif: number | undefined): RouteRequest {
    return {
      family: r.family,
      table: r.table,
      dst: r.dst,
      dstLength: r.dstLength,
      tos: r.tos,
      from: r.from,
      fromLength: r.fromLength,
      metric: r.metric,
      protocol: r.protocol,
      type: r.type,
      scope: r.scope,
      oif,
      gateway: r.gateway,
      prefsrc: r.prefsrc,
      mtu: r.mtu,
      onLink: r.onLink,
    };
  }

  /** Does what apply does for one action. Throws KernelError where the kernel would fail. */
  apply(action: Action): void {
    switch (action.type) {
      case 'create-device':
        this.createTun(action.ifname, action.spec);
        return;
      case 'recreate-device': {
        const old = this.resolve(action.ifname, action.ifindex);
        this.deleteLink(old.ifindex);
        this.createTun(action.ifname, action.spec);
        return;
      }
      case 'set-link':
        this.setLink(this.resolve(action.ifname, action.ifindex).ifindex, action.set);
        return;
      case 'set-tun-options':
        this.setTunOptions(this.resolve(action.ifname, action.ifindex).ifindex, action.flags, action.set);
        return;
      case 'delete-address': {
        const a = action.address;
        this.deleteAddress(this.resolve(action.ifname, action.ifindex).ifindex, a.family, a.address, a.prefixLength, a.peer);
        return;
      }
      case 'add-address': {
        const a = action.address;
        this.addAddress(this.resolve(action.ifname, action.ifindex).ifindex, a.family, a.address, a.prefixLength, {
          proto: action.protocol,
          noDad: action.noDad,
          replace: true,
        });
        return;
      }
      case 'delete-route':
        this.deleteRoute(this.routeRequest(action.route, action.route.oif));
        return;
      case 'replace-route': {
        const link = this.resolve(action.route.ifname ?? action.ifname, action.route.oif);
        this.addRoute(this.routeRequest(action.route, link.ifindex), 'replace');
        return;
      }
      case 'delete-device': {
        const link = this.resolve(action.ifname, action.ifindex);
        if (link.alias !== `tunkeeper:${action.device}`) throw new KernelError('EPERM', `${link.ifname} does not carry the marker of ${action.device}`);
        this.deleteLink(link.ifindex);
        return;
      }
    }
  }

  applyAll(actions: Action[]): void {
    actions.forEach((a, i) => {
      try {
        this.apply(a);
      } catch (e) {
        if (e instanceof KernelError) throw new KernelError(e.code, `action ${i} (${a.type} ${a.ifname ?? ''}): ${e.message}`);
        throw e;
      }
    });
  }
}
