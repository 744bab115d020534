/**
 * ORACLE: Rtnl.getRoute against `ip -d -N -j route get` in a namespace of its own. Two links, a
 * broad "declared" route on one and a more specific foreign route on the other that shadows part
 * of it, policy rules, forwarding: the kernel's answer as the client decodes it must print, field
 * by field, exactly what iproute2 prints for the same lookup, and a refused lookup must fail with
 * the errno `ip` reports.
 */
import { describe, expect, it } from '@jest/globals';
import { NetlinkRequestError, Rtnl, routeTable, type RouteGetOptions, type RouteMessage, type RtnlRequest } from '../../netlink/index.js';
import { writeRouteMessage, type NetlinkWriter, type NlMsgHeader } from '../../netlink/codec/index.js';
import * as K from '../../netlink/constants/index.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { routeFlags } from '../helpers/iproute-print.js';

/**
 * Links up first, then addresses and routes: a route made while its link has no carrier yet is
 * flagged linkdown, and the flag would clear under the comparison when the link-watch catches up.
 */
const SETUP: string[][] = [
  ['link', 'add', 'tk-a0', 'type', 'veth', 'peer', 'name', 'tk-a1'],
  ['link', 'add', 'tk-b0', 'type', 'veth', 'peer', 'name', 'tk-b1'],
  ['link', 'set', 'tk-a0', 'up'],
  ['link', 'set', 'tk-a1', 'up'],
  ['link', 'set', 'tk-b0', 'up'],
  ['link', 'set', 'tk-b1', 'up'],
  ['addr', 'add', '192.0.2.1/24', 'dev', 'tk-a0'],
  ['addr', 'add', '203.0.113.1/25', 'dev', 'tk-b0'],
  ['-6', 'addr', 'add', '2001:db8:a::1/64', 'dev', 'tk-a0', 'nodad'],
  ['-6', 'addr', 'add', '2001:db8:b::1/64', 'dev', 'tk-b0', 'nodad'],
  // What tunkeeper declared (protocol 116): broad routes out of tk-a0.
  ['route', 'add', '198.51.100.0/24', 'via', '192.0.2.254', 'dev', 'tk-a0', 'proto', '116'],
  ['-6', 'route', 'add', '2001:db8:100::/48', 'via', '2001:db8:a::fe', 'dev', 'tk-a0', 'proto', '116'],
  // Someone else's more specific routes out of tk-b0: they shadow part of the declared ones.
  ['route', 'add', '198.51.100.0/25', 'via', '203.0.113.126', 'dev', 'tk-b0', 'proto', 'static'],
  ['-6', 'route', 'add', '2001:db8:100:7::/64', 'via', '2001:db8:b::fe', 'dev', 'tk-b0', 'proto', 'static'],
];

interface World {
  ns: Netns;
  rtnl: Rtnl;
  /** ifindex by name and name by ifindex. */
  idx: Record<string, number>;
  names: Map<number, string>;
}

/** A fresh namespace with SETUP (and `extra` commands) and a client in it; both gone afterwards. */
function scenario(fn: (w: World) => Promise<void>, extra: string[][] = []): Promise<void> {
  return withNetns(async (ns) => {
    for (const args of [...SETUP, ...extra]) await ns.ip(...args);
    await Rtnl.with({ netns: ns.name }, async (rtnl) => {
      const links = await rtnl.links();
      const names = new Map(links.map((l) => [l.ifindex, l.ifname!]));
      const idx = Object.fromEntries(links.map((l) => [l.ifname!, l.ifindex]));
      await fn({ ns, rtnl, idx, names });
    });
  }, 'rtget');
}

// ---- our RouteMessage in the shape `ip -d -N -j route get` prints it (iproute2 print_route) ----


/** iproute2's print_cache_flags: the RTCF_* bits (linux/in_route.h) of a cloned IPv4 result. */
const CACHE_FLAGS: Array<[number, string]> = [
  [0x80000000, 'local'],
  [0x40000000, 'reject'],
  [0x20000000, 'mc'],
  [0x10000000, 'brd'],
  [0x08000000, 'dst-nat'],
  [0x00800000, 'src-nat'],
  [0x00400000, 'masq'],
  [0x00020000, 'dst-direct'],
  [0x04000000, 'src-direct'],
  [0x00040000, 'redirected'],
  [0x01000000, 'redirect'],
  [0x00200000, 'fastroute'],
  [0x00010000, 'notify'],
  [0x00080000, 'proxy'],
];

function cacheFlags(flags: number): string[] {
  let rest = flags & ~0xffff;
  const out: string[] = [];
  for (const [bit, name] of CACHE_FLAGS) {
    if ((rest & bit) !== 0) {
      out.push(name);
      rest &= ~bit;
    }
  }
  if (rest !== 0) out.push(`0x${(rest >>> 0).toString(16)}`);
  return out;
}

const PREF: Record<number, string> = { 0: 'medium', 1: 'high', 3: 'low' };

function ourRouteAsIp(r: RouteMessage, names: Map<number, string>): Record<string, unknown> {
  const full = r.family === K.AF_INET ? 32 : 128;
  const cloned = (r.flags & K.RTM_F_CLONED) !== 0;
  const dst = r.dst === undefined ? (r.dstLen > 0 ? `0/${r.dstLen}` : 'default') : r.dstLen === full ? r.dst : `${r.dst}/${r.dstLen}`;
  const table = routeTable(r);
  const out: Record<string, unknown> = {
    type: String(r.type),
    dst,
    from: r.src === undefined ? undefined : r.srcLen === full ? r.src : `${r.src}/${r.srcLen}`,
    gateway: r.gateway,
    dev: r.oif === undefined ? undefined : names.get(r.oif),
    table: table === 0 ? undefined : String(table),
    protocol: cloned ? undefined : String(r.protocol),
    scope: cloned ? undefined : String(r.scope),
    prefsrc: r.prefsrc,
    metric: r.metric,
    flags: routeFlags(r.flags),
    mark: r.mark === undefined || r.mark === 0 ? undefined : r.mark,
    uid: r.uid,
    cache: cloned && r.family === K.AF_INET ? cacheFlags(r.flags) : undefined,
    expires: r.cacheInfo !== undefined && r.cacheInfo.expires !== 0 ? Math.trunc(r.cacheInfo.expires / 100) : undefined,
    error: r.cacheInfo !== undefined && r.cacheInfo.error !== 0 ? r.cacheInfo.error : undefined,
    iif: r.iif === undefined ? undefined : names.get(r.iif),
    pref: r.pref === undefined ? undefined : PREF[r.pref],
  };
  return JSON.parse(JSON.stringify(out)) as Record<string, unknown>;
}

/** The `ip route get` words for a lookup. */
function ipWords(dst: string, opts: RouteGetOptions, names: Map<number, string>): string[] {
  const words = [dst];
  if (opts.src !== undefined) words.push('from', opts.src);
  if (opts.uid !== undefined) words.push('uid', String(opts.uid));
  if (opts.iif !== undefined) words.push('iif', names.get(opts.iif)!);
  if (opts.oif !== undefined) words.push('oif', names.get(opts.oif)!);
  if (opts.mark !== undefined) words.push('mark', String(opts.mark));
  if (opts.fibMatch === true) words.push('fibmatch');
  return words;
}

/** Looks dst up with the client and with `ip`; both must print the same. Returns our answer. */
async function agree(w: World, dst: string, opts: RouteGetOptions = {}): Promise<RouteMessage> {
  const ours = await w.rtnl.getRoute(dst, opts);
  const theirs = await w.ns.ipJson<Array<Record<string, unknown>>>('-d', '-N', 'route', 'get', ...ipWords(dst, opts, w.names));
  expect(theirs).toHaveLength(1);
  expect(ourRouteAsIp(ours, w.names)).toEqual(theirs[0]);
  return ours;
}

/** iproute2 prints strerror(errno) after "RTNETLINK answers: ". */
const STRERROR: Record<string, string> = {
  'Network is unreachable': 'ENETUNREACH',
  'No route to host': 'EHOSTUNREACH',
  'No such device': 'ENODEV',
  'Invalid argument': 'EINVAL',
};

/** Both refuse the lookup, with the same errno. Returns our error. */
async function bothRefuse(w: World, dst: string, opts: RouteGetOptions = {}): Promise<NetlinkRequestError> {
  const ours = await w.rtnl.getRoute(dst, opts).then(
    (r) => r,
    (e: unknown) => e,
  );
  expect(ours).toBeInstanceOf(NetlinkRequestError);
  const theirs = await w.ns.ip('route', 'get', ...ipWords(dst, opts, w.names)).then(
    (out) => new Error(`ip answered: ${out}`),
    (e: Error) => e,
  );
  const said = /RTNETLINK answers: ([^\n]+)/.exec(theirs.message)?.[1]?.trim();
  expect(said).toBeDefined();
  expect((ours as NetlinkRequestError).code).toBe(STRERROR[said!]);
  expect((ours as NetlinkRequestError).operation).toBe('route get');
  return ours as NetlinkRequestError;
}

/** A hand-built RTM_GETROUTE (what the client's builder will not write): answers kept raw. */
class RawGet implements RtnlRequest {
  readonly operation = 'raw route get';
  readonly target = '';
  readonly replyBudget = 8192;
  constructor(readonly body: Parameters<typeof writeRouteMessage>[2]) {}
  write(w: NetlinkWriter, seq: number): void {
    writeRouteMessage(w, { type: K.RTM_GETROUTE, flags: K.NLM_F_REQUEST | K.NLM_F_ACK, seq }, this.body);
  }
  decodeReply(_buf: Buffer, _off: number, h: NlMsgHeader): unknown {
    return h.type;
  }
}

describeKernel('route get: the kernel\'s lookup, as `ip route get` prints it', () => {
  it('IPv4: a more specific foreign route on the other link shadows the declared one', () =>
    scenario(async (w) => {
      const { idx } = w;
      // fibmatch: the FIB entry itself, its real prefix, protocol, table.
      const fib = await agree(w, '198.51.100.7', { fibMatch: true });
      expect(fib).toMatchObject({ family: K.AF_INET, dst: '198.51.100.0', dstLen: 25, oif: idx['tk-b0'], gateway: '203.0.113.126', protocol: K.RTPROT_STATIC, type: K.RTN_UNICAST });
      expect(routeTable(fib)).toBe(K.RT_TABLE_MAIN);
      expect(fib.flags & K.RTM_F_CLONED).toBe(0);

      // Without: the resolved result, a cloned host route out of the same link.
      const res = await agree(w, '198.51.100.7');
      expect(res).toMatchObject({ dst: '198.51.100.7', dstLen: 32, oif: idx['tk-b0'], gateway: '203.0.113.126', prefsrc: '203.0.113.1' });
      expect(res.flags & K.RTM_F_CLONED).toBe(K.RTM_F_CLONED);

      // Where nothing shadows it, the declared route answers.
      const declared = await agree(w, '198.51.100.200', { fibMatch: true });
      expect(declared).toMatchObject({ dst: '198.51.100.0', dstLen: 24, oif: idx['tk-a0'], gateway: '192.0.2.254', protocol: 116 });
      await agree(w, '198.51.100.200');

      // Bound to the declared link, the lookup finds the declared route even where it is shadowed.
      const bound = await agree(w, '198.51.100.7', { oif: idx['tk-a0'], fibMatch: true });
      expect(bound).toMatchObject({ dstLen: 24, oif: idx['tk-a0'], protocol: 116 });
      await agree(w, '198.51.100.7', { oif: idx['tk-a0'] });

      // The address as bytes is the same lookup.
      expect(await w.rtnl.getRoute(Uint8Array.from([198, 51, 100, 7]), { fibMatch: true })).toEqual(fib);
    }));

  it('IPv6: the same shadowing, the route\'s real table and metric', () =>
    scenario(async (w) => {
      const { idx } = w;
      const fib = await agree(w, '2001:db8:100:7::1', { fibMatch: true });
      expect(fib).toMatchObject({ family: K.AF_INET6, dst: '2001:db8:100:7::', dstLen: 64, oif: idx['tk-b0'], gateway: '2001:db8:b::fe', protocol: K.RTPROT_STATIC, metric: 1024 });
      expect(routeTable(fib)).toBe(K.RT_TABLE_MAIN);

      const res = await agree(w, '2001:db8:100:7::1');
      expect(res).toMatchObject({ dst: '2001:db8:100:7::1', dstLen: 128, oif: idx['tk-b0'], gateway: '2001:db8:b::fe', prefsrc: '2001:db8:b::1' });

      const declared = await agree(w, '2001:db8:100:8::1', { fibMatch: true });
      expect(declared).toMatchObject({ dst: '2001:db8:100::', dstLen: 48, oif: idx['tk-a0'], protocol: 116 });

      const bound = await agree(w, '2001:db8:100:7::1', { oif: idx['tk-a0'], fibMatch: true });
      expect(bound).toMatchObject({ dstLen: 48, oif: idx['tk-a0'], protocol: 116 });
      await agree(w, '2001:db8:100:7::1', { oif: idx['tk-a0'] });

      const bytes = Buffer.from('20010db8010000070000000000000001', 'hex');
      expect(await w.rtnl.getRoute(bytes, { fibMatch: true })).toEqual(fib);
    }));

  it('policy rules are honoured: `to` (with fall-through), fwmark and uidrange pick the table, IPv6 too', () =>
    scenario(
      async (w) => {
        const { idx } = w;
        // Table 100 covers the upper half: the rule sends .200 there...
        const upper = await agree(w, '198.51.100.200', { fibMatch: true });
        expect(upper).toMatchObject({ dst: '198.51.100.128', dstLen: 25, oif: idx['tk-b0'], protocol: 201 });
        expect(routeTable(upper)).toBe(100);
        // ...and the resolved result names the table the rules chose (RTM_F_LOOKUP_TABLE).
        expect(routeTable(await agree(w, '198.51.100.200'))).toBe(100);
        // .7 has no route in table 100: the lookup falls through to main.
        expect(routeTable(await agree(w, '198.51.100.7', { fibMatch: true }))).toBe(K.RT_TABLE_MAIN);

        const marked = await agree(w, '198.51.100.7', { mark: 7, fibMatch: true });
        expect([routeTable(marked), marked.protocol, marked.oif, marked.dstLen]).toEqual([200, 202, idx['tk-a0'], 24]);
        expect(routeTable(await agree(w, '198.51.100.7', { mark: 7 }))).toBe(200);

        const user = await agree(w, '198.51.100.7', { uid: 1000, fibMatch: true });
        expect([routeTable(user), user.protocol, user.dstLen]).toEqual([300, 203, 26]);
        expect(await agree(w, '198.51.100.7', { uid: 1000 })).toMatchObject({ uid: 1000, table: 300 });

        // IPv6 rules too; its answers always name the route's real table (no flag needed).
        const v6 = await agree(w, '2001:db8:100:8::1', { fibMatch: true });
        expect([routeTable(v6), v6.protocol, v6.dstLen, v6.oif]).toEqual([100, 201, 64, idx['tk-b0']]);
        expect(routeTable(await agree(w, '2001:db8:100:8::1'))).toBe(100);

        // Without the rule, table 100 is not consulted any more.
        await w.ns.ip('rule', 'del', 'to', '198.51.100.0/24', 'table', '100');
        const after = await agree(w, '198.51.100.200', { fibMatch: true });
        expect([routeTable(after), after.dstLen, after.protocol]).toEqual([K.RT_TABLE_MAIN, 24, 116]);
      },
      [
        ['route', 'add', '198.51.100.128/25', 'via', '203.0.113.126', 'dev', 'tk-b0', 'table', '100', 'proto', '201'],
        ['rule', 'add', 'to', '198.51.100.0/24', 'table', '100'],
        ['route', 'add', '198.51.100.0/24', 'via', '192.0.2.254', 'dev', 'tk-a0', 'table', '200', 'proto', '202'],
        ['rule', 'add', 'fwmark', '7', 'table', '200'],
        ['route', 'add', '198.51.100.0/26', 'via', '203.0.113.126', 'dev', 'tk-b0', 'table', '300', 'proto', '203'],
        ['rule', 'add', 'uidrange', '1000-1000', 'table', '300'],
        ['-6', 'route', 'add', '2001:db8:100:8::/64', 'via', '2001:db8:b::fe', 'dev', 'tk-b0', 'table', '100', 'proto', '201'],
        ['-6', 'rule', 'add', 'to', '2001:db8:100::/48', 'table', '100'],
      ],
    ));

  it('input routing: a packet from 192.0.2.9 arriving on tk-a0 is forwarded out of tk-b0 (refused while forwarding is off)', () =>
    scenario(async (w) => {
      const { idx } = w;
      const fwd: RouteGetOptions = { src: '192.0.2.9', iif: idx['tk-a0'] };
      await bothRefuse(w, '198.51.100.7', fwd); // EHOSTUNREACH: this namespace does not forward
      await w.ns.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
      const res = await agree(w, '198.51.100.7', fwd);
      expect(res).toMatchObject({ src: '192.0.2.9', iif: idx['tk-a0'], oif: idx['tk-b0'], gateway: '203.0.113.126' });
      const fib = await agree(w, '198.51.100.7', { ...fwd, fibMatch: true });
      expect(fib).toMatchObject({ dstLen: 25, oif: idx['tk-b0'], protocol: K.RTPROT_STATIC });
    }));

  it('refusals carry the kernel\'s errno (and its ext-ack text where it gives one)', () =>
    scenario(async (w) => {
      const { idx } = w;
      // Nothing routes these: no default route in the namespace.
      const v4 = await bothRefuse(w, '203.0.113.200');
      expect(v4.message).toBe('route get 203.0.113.200: ENETUNREACH (network is unreachable)');
      expect((await bothRefuse(w, '203.0.113.200', { fibMatch: true })).code).toBe('ENETUNREACH');
      expect((await bothRefuse(w, '2001:db8:ffff::1')).code).toBe('ENETUNREACH');
      expect((await bothRefuse(w, '2001:db8:ffff::1', { fibMatch: true })).code).toBe('ENETUNREACH');

      // Bound to a link no route goes through: IPv4 assumes the destination is on that link, but
      // no FIB entry matches, so fibmatch has nothing to answer with.
      const onLink = await agree(w, '198.51.100.7', { oif: idx['tk-b1'] });
      expect(onLink).toMatchObject({ oif: idx['tk-b1'], dstLen: 32 });
      expect(onLink.gateway).toBeUndefined();
      const unmatched = await bothRefuse(w, '198.51.100.7', { oif: idx['tk-b1'], fibMatch: true });
      expect(unmatched.code).toBe('EHOSTUNREACH');
      expect(unmatched.target).toBe(`198.51.100.7 oif ${idx['tk-b1']} fibmatch`);

      // A link that does not exist (`ip` cannot even send this: it resolves names first).
      const gone = Math.max(...Object.values(idx)) + 100;
      const noDev = await w.rtnl.getRoute('198.51.100.7', { oif: gone }).catch((e: unknown) => e);
      expect(noDev).toBeInstanceOf(NetlinkRequestError);
      expect((noDev as NetlinkRequestError).code).toBe('ENODEV');
      const noIif = await w.rtnl.getRoute('198.51.100.7', { iif: gone, src: '192.0.2.9' }).catch((e: unknown) => e);
      expect((noIif as NetlinkRequestError).code).toBe('ENODEV');
      // IPv6 does not look the output link up first: no route goes through it.
      const noDev6 = await w.rtnl.getRoute('2001:db8:100:7::1', { oif: gone }).catch((e: unknown) => e);
      expect((noDev6 as NetlinkRequestError).code).toBe('ENETUNREACH');

      // The kernel's own words come through: a lookup cannot be pinned to a table (RTA_TABLE is
      // refused, which is why getRoute has no `table` option), nor can IPv6 take LOOKUP_TABLE.
      const [t4, t6, lt6] = await w.rtnl.batch([
        new RawGet({ family: K.AF_INET, dstLen: 32, flags: K.RTM_F_LOOKUP_TABLE, dst: '198.51.100.7', table: 100 }),
        new RawGet({ family: K.AF_INET6, dstLen: 128, dst: '2001:db8:100:7::1', table: 100 }),
        new RawGet({ family: K.AF_INET6, dstLen: 128, flags: K.RTM_F_LOOKUP_TABLE, dst: '2001:db8:100:7::1' }),
      ]);
      const refusal = (r: typeof t4) => (r !== undefined && !r.ok ? [r.error.code, r.error.extAck] : ['no error', undefined]);
      expect(refusal(t4)).toEqual(['EINVAL', 'ipv4: Unsupported attribute in route get request']);
      expect(refusal(t6)).toEqual(['EINVAL', 'ipv6: Unsupported attribute in get route request']);
      expect(refusal(lt6)).toEqual(['EINVAL', 'ipv6: Invalid flags for get route request']);
      // The same hand-built request without the table is answered: the refusal was the table.
      const [ok] = await w.rtnl.batch([new RawGet({ family: K.AF_INET, dstLen: 32, flags: K.RTM_F_LOOKUP_TABLE, dst: '198.51.100.7' })]);
      expect(ok).toEqual({ ok: true, replies: [K.RTM_NEWROUTE] });
    }));
});

describe('route get oracle helpers', () => {
  it('print like iproute2: dst as prefix or host, cache flags of a cloned IPv4 result', () => {
    const names = new Map([[3, 'tk-b0']]);
    const r: RouteMessage = { family: K.AF_INET, dstLen: 32, srcLen: 0, tos: 0, headerTable: 254, protocol: 0, scope: 0, type: 1, flags: K.RTM_F_CLONED | 0x80000000, table: 254, dst: '198.51.100.7', oif: 3, uid: 0 };
    expect(ourRouteAsIp(r, names)).toEqual({ type: '1', dst: '198.51.100.7', dev: 'tk-b0', table: '254', flags: [], uid: 0, cache: ['local'] });
    expect(ourRouteAsIp({ ...r, dstLen: 25, flags: 0, protocol: 4 }, names)).toMatchObject({ dst: '198.51.100.7/25', protocol: '4', scope: '0' });
    expect(cacheFlags(0x01000000 | 0x00000200)).toEqual(['redirect']);
  });
});
