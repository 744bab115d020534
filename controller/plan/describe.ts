/**
 * One-line descriptions of addresses and routes in `ip` style, shared by reasons, side-effect
 * lists and the rendered diff so that the same object always reads the same way.
 */
import type { DesiredAddress } from '../model/desired.js';
import { RT_TABLE_LOCAL, RT_TABLE_MAIN, RTPROT_BOOT, RTPROT_KERNEL, RTPROT_STATIC } from '../model/observed.js';
import type { ObservedRoute } from '../model/observed.js';
import type { AddressSpec, FieldChange, RouteSpec } from './actions.js';

export function describeAddress(a: AddressSpec | DesiredAddress): string {
  const peer = 'peer' in a && a.peer !== undefined ? ` peer ${a.peer}` : '';
  return `${a.address}/${a.prefixLength}${peer}`;
}

export function tableName(table: number): string {
  if (table === RT_TABLE_MAIN) return 'main';
  if (table === RT_TABLE_LOCAL) return 'local';
  return String(table);
}

export function protocolName(protocol: number): string {
  switch (protocol) {
    case RTPROT_KERNEL:
      return 'kernel';
    case RTPROT_BOOT:
      return 'boot';
    case RTPROT_STATIC:
      return 'static';
    default:
      return String(protocol);
  }
}

function prefixText(family: 4 | 6, dst: string, dstLength: number): string {
  return dstLength === 0 ? (family === 4 ? 'default' : 'default (::/0)') : `${dst}/${dstLength}`;
}

interface DescribableRoute {
  family: 4 | 6;
  dst: string;
  dstLength: number;
  from?: string;
  fromLength?: number;
  tos?: number;
  table: number;
  protocol?: number;
  type?: string;
  gateway?: string;
  metric?: number;
  prefsrc?: string;
  mtu?: number;
  onLink?: boolean;
}

/**
 * `ip route` style: `[type ]dst[ from src][ tos N][ via gw] dev X table T[ proto P] metric M[ src S][ mtu U][ onlink]`.
 * `ifname` names the device (or `#ifindex` when it has no name in the snapshot).
 */
export function describeRoute(r: DescribableRoute, ifname: string | undefined): string {
  const parts: string[] = [];
  if (r.type !== undefined && r.type !== 'unicast') parts.push(r.type);
  parts.push(prefixText(r.family, r.dst, r.dstLength));
  if (r.fromLength !== undefined && r.fromLength > 0) parts.push(`from ${r.from}/${r.fromLength}`);
  if (r.tos !== undefined && r.tos !== 0) parts.push(`tos ${r.tos}`);
  if (r.gateway !== undefined) parts.push(`via ${r.gateway}`);
  if (ifname !== undefined) parts.push(`dev ${ifname}`);
  parts.push(`table ${tableName(r.table)}`);
  if (r.protocol !== undefined) parts.push(`proto ${protocolName(r.protocol)}`);
  parts.push(`metric ${r.metric ?? 0}`);
  if (r.prefsrc !== undefined) parts.push(`src ${r.prefsrc}`);
  if (r.mtu !== undefined) parts.push(`mtu ${r.mtu}`);
  if (r.onLink === true) parts.push('onlink');
  return parts.join(' ');
}

export function describeObservedRoute(r: ObservedRoute, ifnameOf: (ifindex: number) => string | undefined): string {
  const ifname = r.oif === undefined ? undefined : (ifnameOf(r.oif) ?? `#${r.oif}`);
  return describeRoute(r, ifname);
}

export function describeRouteSpec(r: RouteSpec): string {
  return describeRoute(r, r.ifname ?? (r.oif !== undefined ? `#${r.oif}` : undefined));
}

/** `mtu 1500 → 1420`, or `mtu 1420` for a value set on a new object. */
export function describeChange(c: FieldChange): string {
  const show = (v: FieldChange['from']): string => (v === undefined || v === null ? 'none' : String(v));
  return c.from === undefined ? `${c.field} ${show(c.to)}` : `${c.field} ${show(c.from)} → ${show(c.to)}`;
}
