/**
 * Multicast events and dump replies describe objects in the same body type: the reconciler
 * treats an event only as a reason to look again, and compares the two freely.
 */
import { describe, expect, it } from '@jest/globals';
import { decodeMessages, type RouteMessage, type RtnlMessage } from '../../netlink/codec/index.js';
import * as C from '../../netlink/constants/index.js';
import { hexBuffers, loadFixture } from '../fixtures/netlink/fixtures.js';

const fx = loadFixture('events');
const events = hexBuffers(fx.datagrams).flatMap((d) => decodeMessages(d));
const dumped = hexBuffers(fx.dumps).flatMap((d) => decodeMessages(d));

const routes = (msgs: RtnlMessage[], type: number, dst: string): RouteMessage[] =>
  msgs.flatMap((m) => (m.kind === 'route' && m.header.type === type && m.body.dst === dst ? [m.body] : []));

/** IPv6 cache info (use counters, ages) changes between two reads of the same route. */
const withoutCache = ({ cacheInfo: _c, ...r }: RouteMessage): Omit<RouteMessage, 'cacheInfo'> => r;

describe('events', () => {
  it('were caused by the recorded commands', () => {
    expect(fx.events).toContain('ip route add 198.18.60.0/24 via 192.0.2.254 dev tk-veth0 table 100 proto 116 metric 10');
    expect(events.some((m) => m.kind === 'link' && m.header.type === C.RTM_NEWLINK && m.body.mtu === 1400)).toBe(true);
    expect(events.some((m) => m.kind === 'address' && m.header.type === C.RTM_DELADDR && m.body.local === '192.0.2.60')).toBe(true);
  });

  it('are not parts of a dump', () => {
    for (const m of events) expect(m.header.flags & C.NLM_F_MULTI).toBe(0);
  });

  it('an IPv4 route event decodes to the very object the dump holds', () => {
    const [added] = routes(events, C.RTM_NEWROUTE, '198.18.60.0');
    const [inDump] = routes(dumped, C.RTM_NEWROUTE, '198.18.60.0');
    expect(added).toBeDefined();
    expect(added).toEqual(inDump);
    expect(added).toMatchObject({ table: 100, protocol: 116, metric: 10, gateway: '192.0.2.254', dstLen: 24 });
    expect(routes(events, C.RTM_DELROUTE, '198.18.60.0')).toEqual([added]);
  });

  it('an IPv6 route event matches the dump apart from cache counters', () => {
    const [added] = routes(events, C.RTM_NEWROUTE, '2001:db8:60::');
    const [inDump] = routes(dumped, C.RTM_NEWROUTE, '2001:db8:60::');
    expect(withoutCache(added!)).toEqual(withoutCache(inDump!));
    const [deleted] = routes(events, C.RTM_DELROUTE, '2001:db8:60::');
    expect(withoutCache(deleted!)).toEqual(withoutCache(added!));
  });
});
