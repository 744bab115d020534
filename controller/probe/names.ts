/**
 * Route protocol, table and type names as iproute2 prints them, so a probe's message reads like
 * the `ip route get` an operator would type next. Numbers without a name print as numbers, as
 * `ip` prints them when rt_protos has no entry.
 */
import { constants } from '../../netlink/index.js';

// iproute2's reserved protocols (its rt_protos file).
const PROTOCOLS: ReadonlyMap<number, string> = new Map([
  [0, 'unspec'],
  [1, 'redirect'],
  [2, 'kernel'],
  [3, 'boot'],
  [4, 'static'],
  [8, 'gated'],
  [9, 'ra'],
  [10, 'mrt'],
  [11, 'zebra'],
  [12, 'bird'],
  [13, 'dnrouted'],
  [14, 'xorp'],
  [15, 'ntk'],
  [16, 'dhcp'],
  [18, 'keepalived'],
  [42, 'babel'],
  [99, 'openr'],
  [186, 'bgp'],
  [187, 'isis'],
  [188, 'ospf'],
  [189, 'rip'],
  [192, 'eigrp'],
]);

export function protocolName(protocol: number): string {
  return PROTOCOLS.get(protocol) ?? String(protocol);
}

export function tableName(table: number): string {
  switch (table) {
    case constants.RT_TABLE_MAIN:
      return 'main';
    case constants.RT_TABLE_LOCAL:
      return 'local';
    case constants.RT_TABLE_DEFAULT:
      return 'default';
    default:
      return String(table);
  }
}

const TYPES: ReadonlyMap<number, string> = new Map([
  [constants.RTN_UNICAST, 'unicast'],
  [constants.RTN_LOCAL, 'local'],
  [constants.RTN_BROADCAST, 'broadcast'],
  [constants.RTN_ANYCAST, 'anycast'],
  [constants.RTN_MULTICAST, 'multicast'],
  [constants.RTN_BLACKHOLE, 'blackhole'],
  [constants.RTN_UNREACHABLE, 'unreachable'],
  [constants.RTN_PROHIBIT, 'prohibit'],
  [constants.RTN_THROW, 'throw'],
  [constants.RTN_NAT, 'nat'],
]);

export function routeTypeName(type: number): string {
  return TYPES.get(type) ?? String(type);
}
