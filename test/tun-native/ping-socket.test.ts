/**
 * PingSocket / icmpEcho against the real kernel in namespaces of their own: echoes answered over
 * loopback and through a TUN device (by the echo responder, or by hand to see the request bytes),
 * the device binding, replies matched by sequence and source, timeouts, aborts, close, and the
 * ping_group_range refusal of a fresh namespace.
 */
import { expect, it } from '@jest/globals';
import { icmpEcho, isIcmpEchoTimeoutError, isNativeError, isPingGroupRangeError, PingSocket, Tun } from '../../tun-native/index.js';
import { EchoResponder } from '../helpers/echo-responder.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { echoReplyTo, ipv4Bytes, parseEcho } from '../helpers/packets.js';
import { describeKernel } from '../helpers/tiers.js';
import { addressUp, firstMatching } from '../helpers/tun-netns.js';

async function allowPing(ns: Netns): Promise<void> {
  await ns.exec('sysctl', ['-w', 'net.ipv4.ping_group_range=0 2147483647']);
}

/** A TUN device tk-p0 with 192.0.2.1/24 and 2001:db8:1::1/64, held by the returned handle. */
async function tunWithAddresses(ns: Netns, name = 'tk-p0', v4 = '192.0.2.1/24', v6 = '2001:db8:1::1/64'): Promise<Tun> {
  const tun = await Tun.open({ name, mode: 'tun', netns: ns.name });
  await addressUp(ns, name, v4, v6);
  return tun;
}

describeKernel('ping socket: echo without raw sockets', () => {
  it('a fresh namespace refuses ping sockets: EACCES that names ping_group_range, its value there and the fix', () =>
    withNetns(async (ns) => {
      for (const family of [4, 6] as const) {
        const err = await icmpEcho({ netns: ns.name, family, to: family === 4 ? '127.0.0.1' : '::1', ifname: 'lo', timeoutMs: 1000 }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(isNativeError(err, 'EACCES')).toBe(true);
        expect(isPingGroupRangeError(err)).toBe(true);
        expect(err).toMatchObject({ syscall: family === 4 ? 'socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)' : 'socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)', pingGroupRange: '1 0', gid: process.getegid!() });
        const message = (err as Error).message;
        expect(message).toContain(`open an ${family === 4 ? 'ICMP' : 'ICMPv6'} ping socket in network namespace ${ns.path}: EACCES (Permission denied)`);
        expect(message).toContain(`the process's group (gid ${process.getegid!()}) is outside net.ipv4.ping_group_range ("1 0" there)`);
        expect(message).toContain('sysctl -w net.ipv4.ping_group_range="0 2147483647"');
      }
    }, 'ping'));

  it('echoes over loopback, IPv4 and IPv6, with the sequence asked for', () =>
    withNetns(async (ns) => {
      await allowPing(ns);
      const v4 = await icmpEcho({ netns: ns.name, family: 4, to: '127.0.0.1', ifname: 'lo', timeoutMs: 30_000, sequence: 4242 });
      expect(v4.sequence).toBe(4242);
      expect(v4.rttMs).toBeGreaterThanOrEqual(0);
      const v6 = await icmpEcho({ netns: ns.name, family: 6, to: '::1', ifname: 'lo', timeoutMs: 30_000 });
      expect(v6.sequence).toBeGreaterThanOrEqual(0);
    }, 'ping'));

  it('a missing device is ENODEV from SO_BINDTODEVICE', () =>
    withNetns(async (ns) => {
      await allowPing(ns);
      const err = await PingSocket.open({ netns: ns.name, family: 4, ifname: 'tk-none0' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'ENODEV', syscall: 'setsockopt(SO_BINDTODEVICE)' });
      expect((err as Error).message).toContain('bind an ICMP ping socket to device tk-none0');
    }, 'ping'));

  it('the request leaves through the bound device even when the routing table points elsewhere; the kernel fills id and checksum', () =>
    withNetns(async (ns) => {
      await allowPing(ns);
      const a = await tunWithAddresses(ns, 'tk-pa', '192.0.2.1/24', '2001:db8:1::1/64');
      const b = await tunWithAddresses(ns, 'tk-pb', '203.0.113.1/24', '2001:db8:2::1/64');
      const sock = await PingSocket.open({ netns: ns.name, family: 4, ifname: 'tk-pa' });
      try {
        await ns.ip('route', 'add', '198.51.100.0/24', 'dev', 'tk-pb');
        expect(sock.ifindex).toBe(a.ifindex);
        const packets = a.packets();
        const echo = sock.echo('198.51.100.9', { timeoutMs: 30_000, sequence: 7 });
        const request = await firstMatching(packets, (p) => parseEcho(p)?.kind === 'request', 30_000, 'the echo request on tk-pa');
        expect(parseEcho(request)).toMatchObject({ version: 4, dst: '198.51.100.9', sequence: 7, checksumsOk: true });
        expect(parseEcho(request)!.data.toString('latin1')).toBe('tunkeeper probe\0');
        await a.write(echoReplyTo(request)!);
        expect((await echo).sequence).toBe(7);
      } finally {
        sock.close();
        await a.close();
        await b.close();
      }
    }, 'ping'));

  it('many echoes at once on one socket, to two addresses and both families, each matched to its reply', () =>
    withNetns(async (ns) => {
      await allowPing(ns);
      // Persistent, so that the responder attaches to it by name.
      const tun = await Tun.open({ name: 'tk-p0', mode: 'tun', persist: true, netns: ns.name });
      await addressUp(ns, 'tk-p0', '192.0.2.1/24', '2001:db8:1::1/64');
      await tun.close();
      const responder = await EchoResponder.start(ns, 'tk-p0');
      const v4 = await PingSocket.open({ netns: ns.name, family: 4, ifname: 'tk-p0' });
      const v6 = await PingSocket.open({ netns: ns.name, family: 6, ifname: 'tk-p0' });
      try {
        const echoes = [
          ...[1, 2, 3, 4, 5].map((i) => v4.echo(i % 2 ? '192.0.2.254' : '192.0.2.77', { timeoutMs: 30_000 })),
          ...[1, 2, 3].map(() => v6.echo('2001:db8:1::fe', { timeoutMs: 30_000 })),
        ];
        const results = await Promise.all(echoes);
        expect(new Set(results.slice(0, 5).map((r) => r.sequence)).size).toBe(5);
        expect(new Set(results.slice(5).map((r) => r.sequence)).size).toBe(3);
        expect(responder.answered).toBe(8);
      } finally {
        v4.close();
        v6.close();
        await responder.stop();
      }
    }, 'ping'));

  it('a reply from another address is not the answer: the echo times out with IcmpEchoTimeoutError', () =>
    withNetns(async (ns) => {
      await allowPing(ns);
      const tun = await tunWithAddresses(ns);
      const sock = await PingSocket.open({ netns: ns.name, family: 4, ifname: 'tk-p0' });
      try {
        const packets = tun.packets();
        const echo = sock.echo('192.0.2.254', { timeoutMs: 300, sequence: 9 }).then(
          () => undefined,
          (e: unknown) => e,
        );
        const request = await firstMatching(packets, (p) => parseEcho(p)?.kind === 'request', 30_000, 'the echo request');
        // The same identifier and sequence, from 192.0.2.253: the kernel hands it to the socket, the facade must not take it.
        const forged = Buffer.from(request);
        ipv4Bytes('192.0.2.253').copy(forged, 16);
        await tun.write(echoReplyTo(forged)!);
        const err = await echo;
        expect(isIcmpEchoTimeoutError(err)).toBe(true);
        expect(err).toMatchObject({ code: 'ETIMEDOUT', to: '192.0.2.254', ifname: 'tk-p0', sequence: 9, timeoutMs: 300 });
      } finally {
        sock.close();
        await tun.close();
      }
    }, 'ping'));

  it('abort rejects with the reason; close rejects what is outstanding with EBADF, and later echoes too', () =>
    withNetns(async (ns) => {
      await allowPing(ns);
      const tun = await tunWithAddresses(ns);
      const sock = await PingSocket.open({ netns: ns.name, family: 6, ifname: 'tk-p0' });
      try {
        const ac = new AbortController();
        const aborted = sock.echo('2001:db8:1::fe', { timeoutMs: 30_000, signal: ac.signal });
        const reason = new Error('superseded');
        ac.abort(reason);
        await expect(aborted).rejects.toBe(reason);
        const outstanding = sock.echo('2001:db8:1::fe', { timeoutMs: 30_000 });
        sock.close();
        await expect(outstanding).rejects.toMatchObject({ code: 'EBADF' });
        await expect(sock.echo('2001:db8:1::fe', { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'EBADF' });
        sock.close();
      } finally {
        await tun.close();
      }
    }, 'ping'));
});
