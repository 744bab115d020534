/**
 * The rtnetlink request for each action apply sends through the client's batch API, spelled as
 * controller/plan/actions.ts requires: deletes carry every identifying attribute (so the kernel's
 * match cannot hit a foreign object sharing the key), adds and replaces carry tunkeeper's
 * protocol and exactly the attributes given.
 */
import { constants, deleteAddress, deleteLink, deleteRoute, replaceAddress, replaceRoute, setLink, type RtnlRequest } from '../../netlink/index.js';
import type { LinkSetSpec, NetlinkWriter, RouteSpec as NetlinkRouteSpec } from '../../netlink/index.js';
import type { AddAddressAction, DeleteAddressAction, LinkSettings, ReplaceRouteAction, RouteSpec } from '../plan/actions.js';
import { routeTypeNumber, scopeNumber } from '../observe/convert.js';

/** rtmsg offsets (after the 16-byte nlmsghdr): rtm_src_len, rtm_tos. */
const RTM_SRC_LEN = 16 + 2;
const RTM_TOS = 16 + 3;

/**
 * The client's route delete knows no tos and no source prefix; both are part of the kernel's key
 * (IPv4 tos, the IPv6 subtree), so they are added to the message it writes.
 */
class RouteDeleteWithKey implements RtnlRequest {
  readonly operation: string;
  constructor(
    private readonly inner: RtnlRequest,
    private readonly tos: number,
    private readonly from: string | undefined,
    private readonly fromLength: number,
  ) {
    this.operation = inner.operation;
  }
  get target(): string {
    const from = this.fromLength > 0 ? ` from ${this.from}/${this.fromLength}` : '';
    const tos = this.tos !== 0 ? ` tos ${this.tos}` : '';
    return `${this.inner.target}${from}${tos}`;
  }
  write(w: NetlinkWriter, seq: number): void {
    w.pad();
    const start = w.pos;
    this.inner.write(w, seq);
    w.buf[start + RTM_TOS] = this.tos;
    if (this.fromLength > 0 && this.from !== undefined) {
      w.buf[start + RTM_SRC_LEN] = this.fromLength;
      w.attrIp(constants.RTA_SRC, this.from);
      w.endMessage(start);
    }
  }
}

/** The fields that identify a route to the kernel, shared by delete and replace. */
function routeIdentity(r: RouteSpec): NetlinkRouteSpec {
  return {
    dst: r.dstLength === 0 ? 'default' : `${r.dst}/${r.dstLength}`,
    family: r.family,
    table: r.table,
    protocol: r.protocol,
    metric: r.metric,
    type: routeTypeNumber(r.type),
  };
}

export function deleteRouteRequest(r: RouteSpec): RtnlRequest {
  const key = routeIdentity(r);
  // Only the link the route was observed on: never a device of the same name made since.
  if (r.oif !== undefined) key.ifindex = r.oif;
  if (r.gateway !== undefined) key.gateway = r.gateway;
  if (r.prefsrc !== undefined) key.prefsrc = r.prefsrc;
  if (r.onLink) key.onlink = true;
  const inner = deleteRoute(key);
  const fromLength = r.family === 6 ? (r.fromLength ?? 0) : 0;
  return r.tos !== 0 || fromLength > 0 ? new RouteDeleteWithKey(inner, r.family === 4 ? r.tos : 0, r.from, fromLength) : inner;
}

export function replaceRouteRequest(a: ReplaceRouteAction, ifindex: number | undefined): RtnlRequest {
  const r = a.route;
  const spec: NetlinkRouteSpec = { ...routeIdentity(r), scope: scopeNumber(r.scope) };
  if (ifindex !== undefined) spec.ifindex = ifindex;
  if (r.gateway !== undefined) spec.gateway = r.gateway;
  if (r.prefsrc !== undefined) spec.prefsrc = r.prefsrc;
  if (r.mtu !== undefined) spec.mtu = r.mtu;
  if (r.onLink) spec.onlink = true;
  return replaceRoute(spec);
}

export function addAddressRequest(a: AddAddressAction, ifindex: number): RtnlRequest {
  return replaceAddress({
    ifindex,
    address: a.address.address,
    prefixLength: a.address.prefixLength,
    ...(a.address.peer !== undefined ? { peer: a.address.peer } : {}),
    proto: a.protocol,
    ...(a.noDad ? { nodad: true } : {}),
  });
}

export function deleteAddressRequest(a: DeleteAddressAction): RtnlRequest {
  return deleteAddress({
    ifindex: a.ifindex,
    address: a.address.address,
    prefixLength: a.address.prefixLength,
    ...(a.address.peer !== undefined ? { peer: a.address.peer } : {}),
  });
}

export function setLinkRequest(ifindex: number, set: LinkSettings): RtnlRequest {
  const spec: LinkSetSpec = { ifindex };
  if (set.mtu !== undefined) spec.mtu = set.mtu;
  if (set.txQueueLength !== undefined) spec.txqlen = set.txQueueLength;
  if (set.macAddress !== undefined) spec.address = set.macAddress;
  if (set.up !== undefined) spec.up = set.up;
  return setLink(spec);
}

export function deleteLinkRequest(ifindex: number): RtnlRequest {
  return deleteLink({ ifindex });
}
