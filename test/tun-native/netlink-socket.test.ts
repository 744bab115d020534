import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from '@jest/globals';
import { NativeError, NetlinkSocket } from '../../tun-native/index.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_MULTI,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWNEXTHOP,
  RTM_NEWROUTE,
  RTM_NEWMULTICAST,
  RTNLGRP_IPV4_IFADDR,
  RTNLGRP_IPV4_ROUTE,
  RTNLGRP_IPV4_MCADDR,
  RTNLGRP_LINK,
  RTNLGRP_NEXTHOP,
  Recorder,
  family,
  linkDump,
  linkName,
  newRoute,
  parseAck,
  parseDone,
  routeDst,
} from '../helpers/nlmsg-raw.js';
import { describeKernel } from '../helpers/tiers.js';

async function ifindex(ns: Netns, name: string): Promise<number> {
  const [link] = await ns.ipJson<{ ifindex: number }[]>('link', 'show', 'dev', name);
  return link!.ifindex;
}

async function withSocket<T>(opts: Parameters<typeof NetlinkSocket.open>[0], fn: (s: NetlinkSocket, r: Recorder) => Promise<T>): Promise<T> {
  const s = await NetlinkSocket.open(opts);
  try {
    return await fn(s, new Recorder(s));
  } finally {
    s.close();
  }
}

const facadeUrl = new URL('../../tun-native/index.js', import.meta.url).href;

describe('NetlinkSocket options', () => {
  it('rejects invalid options before touching the kernel', async () => {
    await expect(NetlinkSocket.open({ protocol: 99 })).rejects.toThrow(RangeError);
    await expect(NetlinkSocket.open({ groups: [0] })).rejects.toThrow(RangeError);
    await expect(NetlinkSocket.open({ rcvbuf: -1 })).rejects.toThrow(RangeError);
    await expect(NetlinkSocket.open({ netns: '' })).rejects.toThrow(TypeError);
  });
});

describeKernel('NetlinkSocket in a network namespace', () => {
  it('fails with a typed error for a namespace that does not exist', async () => {
    const err = await NetlinkSocket.open({ netns: 'tunkeeper-no-such-namespace' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NativeError);
    expect((err as NativeError).code).toBe('ENOENT');
    expect((err as NativeError).syscall).toBe('open');
    expect((err as NativeError).message).toContain('/run/netns/tunkeeper-no-such-namespace');
  });

  it('dumps the links of its own namespace only, opened by name and by path', async () => {
    const hostLinks = (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map((l) => l.ifname);
    await withNetns(async (ns) => {
      await ns.ip('tuntap', 'add', 'dev', 'tkt-tun0', 'mode', 'tun');
      await ns.ip('link', 'add', 'tkt-veth0', 'type', 'veth', 'peer', 'name', 'tkt-veth1');
      const expected = (await ns.ipJson<{ ifname: string }[]>('link', 'show')).map((l) => l.ifname).sort();
      expect(expected).toEqual(['lo', 'tkt-tun0', 'tkt-veth0', 'tkt-veth1'].sort());

      for (const netns of [ns.name, ns.path]) {
        await withSocket({ netns }, async (s, r) => {
          expect(s.portId).toBeGreaterThan(0);
          expect(s.features).toEqual({ extAck: true, strictCheck: true, capAck: true });
          // 4 MiB asked for; the kernel reports twice what it was given.
          expect(s.rcvbuf).toBeGreaterThanOrEqual(4 << 20);
          s.send(linkDump(7));
          const answers = await r.finished(7);
          const done = answers.filter((m) => m.type === NLMSG_DONE);
          expect(done).toHaveLength(1);
          expect(parseDone(done[0]!).error).toBe(0);
          const links = answers.filter((m) => m.type === RTM_NEWLINK);
          for (const m of answers) {
            expect(m.flags & NLM_F_MULTI).toBe(NLM_F_MULTI);
            expect(m.pid).toBe(s.portId);
          }
          expect(links.map(linkName).sort()).toEqual(expected);
          const hostOnly = hostLinks.filter((n) => !expected.includes(n));
          for (const name of hostOnly) expect(links.map(linkName)).not.toContain(name);
        });
      }
    });
  });

  it('answers an invalid request with NLMSG_ERROR carrying the extended-ack text, capped', async () => {
    await withNetns(async (ns) => {
      const request = newRoute(11, '192.0.2.0', 33, 1);
      await withSocket({ netns: ns.name }, async (s, r) => {
        s.send(request);
        const [err] = await r.finished(11);
        expect(err!.type).toBe(NLMSG_ERROR);
        expect(err!.flags & NLM_F_ACK_TLVS).toBe(NLM_F_ACK_TLVS);
        expect(err!.flags & NLM_F_CAPPED).toBe(NLM_F_CAPPED);
        const ack = parseAck(err!);
        expect(ack.error).toBe(-22);
        expect(ack.extAckMsg).toBe('Invalid prefix length');
        // Capped: the request's header came back, its body did not.
        expect(err!.payload.subarray(4, 20).equals(request.subarray(0, 16))).toBe(true);
        expect(err!.payload.indexOf(request.subarray(16))).toBe(-1);
      });
      // Without capAck and extAck the kernel echoes the whole request and gives no text.
      await withSocket({ netns: ns.name, capAck: false, extAck: false }, async (s, r) => {
        expect(s.features).toEqual({ extAck: false, strictCheck: true, capAck: false });
        s.send(request);
        const [err] = await r.finished(11);
        const ack = parseAck(err!);
        expect(ack.error).toBe(-22);
        expect(err!.flags & NLM_F_CAPPED).toBe(0);
        expect(ack.extAckMsg).toBeUndefined();
        expect(err!.payload.subarray(4).equals(request)).toBe(true);
      });
    });
  });

  it('with strict checking rejects a dump request with a bogus header field that is otherwise accepted', async () => {
    await withNetns(async (ns) => {
      const bogus = linkDump(21, { change: 0xffffffff });
      await withSocket({ netns: ns.name, strictCheck: true }, async (s, r) => {
        s.send(bogus);
        const answers = await r.finished(21);
        expect(answers.filter((m) => m.type === RTM_NEWLINK)).toHaveLength(0);
        const end = answers.find((m) => m.type === NLMSG_DONE || m.type === NLMSG_ERROR)!;
        const status = end.type === NLMSG_DONE ? parseDone(end) : parseAck(end);
        expect(status.error).toBe(-22);
        expect(status.extAckMsg).toMatch(/invalid values in header/i);
      });
      await withSocket({ netns: ns.name, strictCheck: false }, async (s, r) => {
        expect(s.features.strictCheck).toBe(false);
        s.send(bogus);
        const answers = await r.finished(21);
        expect(answers.filter((m) => m.type === RTM_NEWLINK).map(linkName)).toEqual(['lo']);
        expect(parseDone(answers.find((m) => m.type === NLMSG_DONE)!).error).toBe(0);
      });
    });
  });

  it('sends many requests in one datagram and gets one ack each', async () => {
    await withNetns(async (ns) => {
      await ns.ip('link', 'add', 'tkt-v0', 'type', 'veth', 'peer', 'name', 'tkt-v1');
      await ns.ip('link', 'set', 'tkt-v0', 'up');
      await ns.ip('link', 'set', 'tkt-v1', 'up');
      const oif = await ifindex(ns, 'tkt-v0');
      const seqs = Array.from({ length: 100 }, (_, i) => 1000 + i);
      const batch = Buffer.concat(seqs.map((seq, i) => newRoute(seq, `198.18.${i >> 8}.${i & 255}`, 32, oif)));
      await withSocket({ netns: ns.name }, async (s, r) => {
        s.send(batch);
        await r.until(() => r.messages.filter((m) => m.type === NLMSG_ERROR).length >= 100);
        const acks = r.messages.filter((m) => m.type === NLMSG_ERROR);
        expect(acks.map((m) => m.seq)).toEqual(seqs);
        expect(acks.map((m) => parseAck(m).error)).toEqual(seqs.map(() => 0));
      });
      const routes = await ns.ipJson<{ dst: string }[]>('route', 'show', 'proto', '116');
      expect(routes).toHaveLength(100);
    });
  });

  it('receives multicast events, including groups above 32', async () => {
    await withNetns(async (ns) => {
      const groups = [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_NEXTHOP, RTNLGRP_IPV4_MCADDR];
      await withSocket({ netns: ns.name, groups }, async (s, r) => {
        expect(s.memberships()).toEqual(groups);
        // Notifications carry the seq and port of the request that caused them (here: ip's).
        const seen = (type: number, pred: (m: (typeof r.messages)[number]) => boolean = () => true) => () =>
          r.messages.some((m) => m.type === type && m.pid !== s.portId && pred(m));

        await ns.ip('link', 'add', 'tkt-v0', 'type', 'veth', 'peer', 'name', 'tkt-v1');
        await r.until(seen(RTM_NEWLINK, (m) => linkName(m) === 'tkt-v0'));
        await ns.ip('link', 'set', 'tkt-v0', 'up');
        await ns.ip('link', 'set', 'tkt-v1', 'up');
        // Group 37 is beyond the 32 bits of nl_groups: NETLINK_ADD_MEMBERSHIP is the only way in.
        // An interface coming up joins the IPv4 all-hosts group, which the kernel announces there.
        await r.until(seen(RTM_NEWMULTICAST, (m) => family(m) === 2));
        await ns.ip('addr', 'add', '192.0.2.1/24', 'dev', 'tkt-v0');
        await r.until(seen(RTM_NEWADDR));
        await ns.ip('route', 'add', '198.51.100.0/24', 'dev', 'tkt-v0');
        await r.until(seen(RTM_NEWROUTE, (m) => routeDst(m) === '198.51.100.0/24'));
        await ns.ip('nexthop', 'add', 'id', '7', 'dev', 'tkt-v0');
        await r.until(seen(RTM_NEWNEXTHOP));
        expect(r.overflows).toBe(0);
        expect(r.errors).toEqual([]);

        s.dropMembership(RTNLGRP_IPV4_MCADDR);
        s.dropMembership(RTNLGRP_LINK);
        expect(s.memberships()).toEqual([RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_NEXTHOP]);
        s.addMembership(RTNLGRP_IPV4_MCADDR);
        expect(s.memberships()).toEqual([RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_NEXTHOP, RTNLGRP_IPV4_MCADDR]);
        expect(() => s.addMembership(100000)).toThrow(NativeError);
      });
    });
  });

  it('falls back to SO_RCVBUF, silently, where SO_RCVBUFFORCE is not permitted', async () => {
    // Ask for more than net.core.rmem_max: with CAP_NET_ADMIN (SO_RCVBUFFORCE) it is granted;
    // as root of a user namespace only SO_RCVBUF works, capped at rmem_max.
    const rmemMax = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
    const asked = rmemMax + (1 << 20);
    await withNetns(async (ns) => {
      await withSocket({ netns: ns.name, rcvbuf: asked }, async (s) => {
        expect(s.rcvbuf).toBe(2 * asked);
      });
    });
    const script = `
      const { NetlinkSocket } = await import(process.argv[1]);
      const s = await NetlinkSocket.open({ rcvbuf: Number(process.argv[2]) });
      console.log(s.rcvbuf);
      s.close();
    `;
    // A fresh user and network namespace: never the host's network namespace.
    const { stdout, stderr } = await promisify(execFile)('unshare', [
      '--user', '--map-root-user', '--net', process.execPath, '--input-type=module', '-e', script, facadeUrl, String(asked),
    ]);
    expect(stderr).toBe('');
    expect(Number(stdout.trim())).toBe(2 * rmemMax);
  });
});

