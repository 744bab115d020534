/**
 * Monitor events for people: one line of text per event (`tunkeeper monitor`), or one JSON
 * object per event (`tunkeeper monitor --json`: decoded fields only, without the codec's
 * round-trip bookkeeping; bytes as hex, 64-bit numbers as strings).
 */
import { routeTable } from './codec/route.js';
import { ruleTable } from './codec/rule.js';
import { AF_INET, AF_INET6 } from './constants/rtnetlink.js';
import { IFF_LOWER_UP, IFF_UP } from './constants/link.js';
import type { MonitorEvent } from './monitor-events.js';

const BOOKKEEPING = new Set(['attrOrder', 'rawAttrs']);

/** A JSON-safe copy: drops attrOrder/rawAttrs, bytes → hex, bigint → decimal string. */
export function toPlainJson(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return typeof value === 'bigint' ? value.toString() : value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
  if (Array.isArray(value)) return value.map(toPlainJson);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (BOOKKEEPING.has(k) || v === undefined) continue;
    out[k] = toPlainJson(v);
  }
  return out;
}

/** The event as one line of JSON. */
export function eventJson(e: MonitorEvent): string {
  return JSON.stringify(toPlainJson(e));
}

const NUD: Array<[number, string]> = [
  [0x01, 'INCOMPLETE'],
  [0x02, 'REACHABLE'],
  [0x04, 'STALE'],
  [0x08, 'DELAY'],
  [0x10, 'PROBE'],
  [0x20, 'FAILED'],
  [0x40, 'NOARP'],
  [0x80, 'PERMANENT'],
];

const ROUTE_TYPES = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'xresolve'];

function fam(f: number): string {
  return f === AF_INET ? 'inet' : f === AF_INET6 ? 'inet6' : `family ${f}`;
}

/** The event as one line of text, in `ip monitor`'s spirit. */
export function formatEvent(e: MonitorEvent): string {
  switch (e.type) {
    case 'resync-needed':
      return 'resync-needed (notifications were lost: re-list the state)';
    case 'link': {
      const parts = [e.op, 'link', String(e.ifindex), e.ifname ?? '?'];
      if (e.op === 'new') {
        parts.push((e.flags & IFF_UP) !== 0 ? 'up' : 'down');
        if ((e.flags & IFF_LOWER_UP) !== 0) parts.push('lower-up');
        if (e.mtu !== undefined) parts.push(`mtu ${e.mtu}`);
      }
      if (e.linkInfo?.kind !== undefined) parts.push(`kind ${e.linkInfo.kind}`);
      if (e.ifalias !== undefined) parts.push(`alias ${JSON.stringify(e.ifalias)}`);
      return parts.join(' ');
    }
    case 'address': {
      const local = e.local ?? e.address ?? '?';
      const parts = [e.op, 'address', `${local}/${e.prefixLen}`, fam(e.family), `ifindex ${e.ifindex}`];
      if (e.local !== undefined && e.address !== undefined && e.address !== e.local) parts.push(`peer ${e.address}`);
      if (e.proto !== undefined) parts.push(`proto ${e.proto}`);
      return parts.join(' ');
    }
    case 'route': {
      const dst = e.dstLen === 0 ? 'default' : `${e.dst ?? '?'}/${e.dstLen}`;
      const parts = [e.op, 'route', dst, fam(e.family), `table ${routeTable(e)}`, `proto ${e.protocol}`, `type ${ROUTE_TYPES[e.routeType] ?? e.routeType}`];
      if (e.gateway !== undefined) parts.push(`via ${e.gateway}`);
      if (e.oif !== undefined) parts.push(`ifindex ${e.oif}`);
      if (e.metric !== undefined) parts.push(`metric ${e.metric}`);
      if (e.multipath !== undefined) parts.push(`nexthops ${e.multipath.length}`);
      return parts.join(' ');
    }
    case 'neighbour': {
      const parts = [e.op, 'neighbour', e.dst ?? '?', `ifindex ${e.ifindex}`];
      if (e.lladdr !== undefined) parts.push(`lladdr ${e.lladdr}`);
      const states = NUD.filter(([bit]) => (e.state & bit) !== 0).map(([, n]) => n);
      parts.push(states.length > 0 ? states.join(',') : 'NONE');
      return parts.join(' ');
    }
    case 'rule': {
      const parts = [e.op, 'rule', fam(e.family)];
      if (e.priority !== undefined) parts.push(`priority ${e.priority}`);
      if (e.src !== undefined) parts.push(`from ${e.src}/${e.srcLen}`);
      if (e.dst !== undefined) parts.push(`to ${e.dst}/${e.dstLen}`);
      parts.push(`table ${ruleTable(e)}`);
      return parts.join(' ');
    }
  }
}
