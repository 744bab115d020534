/**
 * The route probe's judgement on decoded kernel answers. The byte strings are what Linux 6.18
 * answered to RTM_GETROUTE with RTM_F_FIB_MATCH in a namespace set up like
 * test/netlink/route-get-oracle.test.ts: tk-a0 (ifindex 3) carries the declared 198.51.100.0/24
 * via 192.0.2.254 (proto 116) and 2001:db8:100::/48; tk-b0 (ifindex 5) a foreign
 * 198.51.100.0/25 via 203.0.113.126 (proto static) and 198.51.100.0/24 in table 100, which a rule
 * `to 198.51.100.200 lookup 100` selects.
 */
import { describe, expect, it } from '@jest/globals';
import { codec, constants, type RouteMessage } from '../../../netlink/index.js';
import { answerIfindexes, judgeRouteAnswer, judgeRouteError, protocolName, type RouteJudgeContext } from '../../../controller/probe/index.js';

function decodeAnswer(hex: string): RouteMessage {
  const [m] = codec.decodeMessages(Buffer.from(hex, 'hex'));
  if (m?.kind !== 'route') throw new Error(`not a route message: ${m?.kind}`);
  return m.body;
}

const FOREIGN_MORE_SPECIFIC = decodeAnswer('3c00000018000000e80300004d6a000002190000fe0400010000000008000f00fe00000008000100c633640008000500cb00717e0800040005000000');
const POLICY_TABLE_100 = decodeAnswer('3400000018000000e90300004d6a0000021800006404fd010000000008000f006400000008000100c63364000800040005000000');
const ITS_V4 = decodeAnswer('3c00000018000000ea0300004d6a000002180000fe7400010000000008000f00fe00000008000100c633640008000500c00002fe0800040003000000');
const ITS_V6 = decodeAnswer(
  '7400000018000000eb0300004d6a00000a300000fe7400010000000008000f00fe0000001400010020010db80100000000000000000000000800060000040000080004000300000024000c0000000000000000000000000000000000000000000000000000000000000000000500140000000000',
);

const names = new Map([
  [3, 'tk-a0'],
  [5, 'tk-b0'],
]);

function ctx(to: string, over: Partial<RouteJudgeContext> = {}): RouteJudgeContext {
  return { to, ifname: 'tk-a0', ifindex: 3, routeProtocol: 116, linkNames: names, ...over };
}

describe('judgeRouteAnswer on the kernel answers', () => {
  it('its own route through the device passes, in the words of the kernel answer', () => {
    expect(judgeRouteAnswer(ctx('198.51.100.130'), ITS_V4)).toEqual({
      passed: true,
      message: '198.51.100.130 → next hop 192.0.2.254 dev tk-a0 via its route 198.51.100.0/24',
    });
    expect(judgeRouteAnswer(ctx('2001:db8:100::7'), ITS_V6)).toEqual({ passed: true, message: '2001:db8:100::7 → dev tk-a0 via its route 2001:db8:100::/48' });
  });

  it('a foreign more-specific route fails, naming its prefix, protocol and device', () => {
    expect(judgeRouteAnswer(ctx('198.51.100.7'), FOREIGN_MORE_SPECIFIC)).toEqual({
      passed: false,
      message: '198.51.100.7 → next hop 203.0.113.126 dev tk-b0 via a foreign route 198.51.100.0/25 proto static',
    });
  });

  it('a policy rule that picks another table fails, naming the table', () => {
    expect(judgeRouteAnswer(ctx('198.51.100.200'), POLICY_TABLE_100)).toEqual({
      passed: false,
      message: '198.51.100.200 → dev tk-b0 via a foreign route 198.51.100.0/24 proto static in table 100',
    });
  });

  it('its own protocol is what makes a route "its": another agent protocol reads as foreign', () => {
    expect(judgeRouteAnswer(ctx('198.51.100.130', { routeProtocol: 117 }), ITS_V4).message).toBe(
      '198.51.100.130 → next hop 192.0.2.254 dev tk-a0 via a foreign route 198.51.100.0/24 proto 116',
    );
  });

  it('a device that does not exist fails even when the kernel answers', () => {
    expect(judgeRouteAnswer(ctx('198.51.100.130', { ifindex: undefined }), ITS_V4)).toEqual({
      passed: false,
      message: '198.51.100.130 → next hop 192.0.2.254 dev tk-a0 via its route 198.51.100.0/24 (tk-a0 does not exist)',
    });
  });

  it('a link the caller could not name prints by index', () => {
    expect(judgeRouteAnswer(ctx('198.51.100.7', { linkNames: new Map() }), FOREIGN_MORE_SPECIFIC).message).toContain('dev ifindex 5');
    expect(answerIfindexes(FOREIGN_MORE_SPECIFIC)).toEqual([5]);
  });
});

describe('judgeRouteAnswer on other answers', () => {
  const base: RouteMessage = {
    family: constants.AF_INET,
    dstLen: 24,
    srcLen: 0,
    tos: 0,
    headerTable: constants.RT_TABLE_MAIN,
    table: constants.RT_TABLE_MAIN,
    protocol: constants.RTPROT_KERNEL,
    scope: 0,
    type: constants.RTN_UNICAST,
    flags: 0,
    dst: '192.0.2.0',
  } as RouteMessage;

  it('multipath passes only when every next hop leaves through the device', () => {
    const mixed = { ...base, protocol: 116, multipath: [{ flags: 0, hops: 0, ifindex: 3, gateway: '192.0.2.254' }, { flags: 0, hops: 0, ifindex: 5 }] } as RouteMessage;
    expect(judgeRouteAnswer(ctx('192.0.2.9'), mixed)).toEqual({
      passed: false,
      message: '192.0.2.9 → next hop 192.0.2.254 dev tk-a0 and dev tk-b0 via its route 192.0.2.0/24',
    });
    expect(answerIfindexes(mixed)).toEqual([3, 5]);
    const all = { ...mixed, multipath: [{ flags: 0, hops: 0, ifindex: 3, gateway: '192.0.2.254' }, { flags: 0, hops: 0, ifindex: 3, gateway: '192.0.2.253' }] } as RouteMessage;
    expect(judgeRouteAnswer(ctx('192.0.2.9'), all).passed).toBe(true);
  });

  it('names route types, tables and the default prefix as ip does', () => {
    const local = { ...base, type: constants.RTN_LOCAL, dstLen: 32, dst: '192.0.2.1', table: constants.RT_TABLE_LOCAL, headerTable: constants.RT_TABLE_LOCAL, oif: 1 } as RouteMessage;
    expect(judgeRouteAnswer(ctx('192.0.2.1', { linkNames: new Map([[1, 'lo']]) }), local)).toEqual({
      passed: false,
      message: '192.0.2.1 → dev lo via a foreign local route 192.0.2.1/32 proto kernel in table local',
    });
    const dflt = { ...base, dstLen: 0, dst: undefined, protocol: constants.RTPROT_DHCP, gateway: '192.0.2.254', oif: 5 } as RouteMessage;
    expect(judgeRouteAnswer(ctx('203.0.113.9'), dflt).message).toBe('203.0.113.9 → next hop 192.0.2.254 dev tk-b0 via a foreign route default proto dhcp');
    const noDevice = { ...base, nhId: 7 } as RouteMessage;
    expect(judgeRouteAnswer(ctx('192.0.2.9'), noDevice)).toEqual({ passed: false, message: '192.0.2.9 → nexthop object 7 via a foreign route 192.0.2.0/24 proto kernel' });
  });

  it('protocol names follow iproute2, numbers otherwise', () => {
    expect([2, 3, 4, 16, 18, 42, 186, 116, 250].map(protocolName)).toEqual(['kernel', 'boot', 'static', 'dhcp', 'keepalived', 'babel', 'bgp', '116', '250']);
  });
});

describe('judgeRouteError', () => {
  it('says what each refusal of the kernel means, with its errno and ext-ack', () => {
    expect(judgeRouteError({ to: '203.0.113.200' }, { errno: 101 })).toEqual({
      passed: false,
      message: '203.0.113.200 → no route (the kernel answered ENETUNREACH: network is unreachable)',
    });
    expect(judgeRouteError({ to: '198.51.100.1' }, { errno: 22 }).message).toBe('198.51.100.1 → a blackhole route (the kernel answered EINVAL: invalid argument)');
    expect(judgeRouteError({ to: '198.51.100.65' }, { errno: 113 }).message).toBe('198.51.100.65 → an unreachable route (the kernel answered EHOSTUNREACH: host is unreachable)');
    expect(judgeRouteError({ to: '198.51.100.129' }, { errno: 13 }).message).toBe('198.51.100.129 → a prohibit route (the kernel answered EACCES: permission denied)');
    expect(judgeRouteError({ to: '198.51.100.1' }, { errno: 19, extAck: 'Device not found' }).message).toBe(
      '198.51.100.1 → the route lookup failed: ENODEV (no such device): Device not found',
    );
  });

  it('an error that is no route refusal is reported in its own words', () => {
    expect(judgeRouteError({ to: '198.51.100.1' }, { errno: 9, message: 'route get 198.51.100.1: EBADF (bad file descriptor): the client is closed' }).message).toBe(
      '198.51.100.1 → the route lookup failed: route get 198.51.100.1: EBADF (bad file descriptor): the client is closed',
    );
  });
});
