/**
 * Real packets both ways through TUN and TAP devices in a fresh namespace: what a UDP socket in
 * the namespace sends reaches the reader byte for byte, and what is written to the device reaches
 * a UDP socket listening in the namespace. Also with packet info and virtio-net headers.
 */
import { expect, it } from '@jest/globals';
import { Tun, isNativeError } from '../../tun-native/index.js';
import { withNetns } from '../helpers/netns.js';
import {
  ETH_P_IP,
  ETH_P_IPV6,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_UDP_L4,
  ethernetFrame,
  ipv4Udp,
  ipv6Udp,
  parseEthernet,
  parseTunPi,
  parseUdp,
  parseVnetHdr,
  plainVnetHdr,
  tunPi,
} from '../helpers/packets.js';
import { describeKernel } from '../helpers/tiers.js';
import { addressUp, firstMatching, linkDetails, udpListen, udpSend, until } from '../helpers/tun-netns.js';

const payload = (tag: string) => Buffer.from(`tunkeeper ${tag} ${'x'.repeat(40)}`);
const isUdpTo = (port: number) => (p: Buffer) => parseUdp(p)?.dstPort === port;

describeKernel('tun: IPv4 and IPv6 packets both ways', () => {
  it('reads the exact IPv4/UDP packet a socket in the namespace sends through the device', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkr0', netns: ns.name });
      try {
        await addressUp(ns, 'tkr0', '192.0.2.1/24');
        const packets = tun.packets();
        const data = payload('v4 read');
        await udpSend(ns, '192.0.2.2', 5000, [data], { bindAddress: '192.0.2.1', bindPort: 4000 });
        const packet = await firstMatching(packets, isUdpTo(5000));
        const seen = parseUdp(packet);
        expect(seen).toMatchObject({ version: 4, src: '192.0.2.1', dst: '192.0.2.2', srcPort: 4000, dstPort: 5000, checksumsOk: true });
        // Byte for byte what an independent construction gives (the kernel picks the IP id).
        const expected = ipv4Udp({ src: '192.0.2.1', dst: '192.0.2.2', srcPort: 4000, dstPort: 5000, payload: data, id: seen?.id, dontFragment: seen?.dontFragment });
        expect(packet.equals(expected)).toBe(true);
        await packets.return?.();
        expect(tun.stats()).toMatchObject({ dropped: 0 });
        expect(tun.stats().packetsRead).toBeGreaterThanOrEqual(1);
      } finally {
        await tun.close();
      }
    }));

  it('delivers IPv4/UDP packets written to the device to a socket in the namespace (write, writeSync, writeBatch)', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkw0', netns: ns.name });
      try {
        await addressUp(ns, 'tkw0', '192.0.2.1/24');
        const listener = udpListen(ns, '192.0.2.1', 5001, 12);
        await listener.ready;
        const packet = (i: number) => ipv4Udp({ src: '192.0.2.2', dst: '192.0.2.1', srcPort: 4001, dstPort: 5001, payload: payload(`w${i}`), id: i });
        await tun.write(packet(0));
        tun.writeSync(packet(1));
        expect(tun.writeBatch(Array.from({ length: 10 }, (_, i) => packet(i + 2)))).toBe(10);
        const got = await listener.received;
        expect(got.map((d) => d.payload.toString()).sort()).toEqual(Array.from({ length: 12 }, (_, i) => payload(`w${i}`).toString()).sort());
        for (const d of got) expect([d.from, d.port]).toEqual(['192.0.2.2', 4001]);
        const bytes = Array.from({ length: 12 }, (_, i) => packet(i).length).reduce((a, b) => a + b);
        expect(tun.stats()).toMatchObject({ packetsWritten: 12, bytesWritten: bytes });
      } finally {
        await tun.close();
      }
    }));

  it('carries IPv6/UDP both ways', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tk6', netns: ns.name });
      try {
        await addressUp(ns, 'tk6', '2001:db8:1::1/64');
        const packets = tun.packets();
        const data = payload('v6 read');
        await udpSend(ns, '2001:db8:1::2', 5000, [data], { bindAddress: '2001:db8:1::1', bindPort: 4000 });
        const packet = await firstMatching(packets, isUdpTo(5000));
        const seen = parseUdp(packet);
        expect(seen).toMatchObject({ version: 6, src: '2001:db8:1::1', dst: '2001:db8:1::2', srcPort: 4000, checksumsOk: true });
        const expected = ipv6Udp({ src: '2001:db8:1::1', dst: '2001:db8:1::2', srcPort: 4000, dstPort: 5000, payload: data });
        // Version 6, traffic class 0; the flow label is the kernel's choice.
        expect(packet.readUInt32BE(0) >>> 20).toBe(0x600);
        expected.writeUInt32BE(packet.readUInt32BE(0), 0);
        expect(packet.equals(expected)).toBe(true);
        await packets.return?.();

        const listener = udpListen(ns, '2001:db8:1::1', 5003);
        await listener.ready;
        tun.writeSync(ipv6Udp({ src: '2001:db8:1::2', dst: '2001:db8:1::1', srcPort: 4003, dstPort: 5003, payload: payload('v6 write') }));
        const [got] = await listener.received;
        expect(got).toEqual({ from: '2001:db8:1::2', port: 4003, payload: payload('v6 write') });
      } finally {
        await tun.close();
      }
    }));

  it('hands batches to onPackets and stops when asked', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkb0', netns: ns.name, readBatch: 16 });
      try {
        await addressUp(ns, 'tkb0', '192.0.2.1/24');
        const batches: Buffer[][] = [];
        const stop = tun.onPackets((batch) => batches.push(batch));
        await udpSend(ns, '192.0.2.2', 5000, [payload('cb')], { repeat: 100 });
        const udp = () => batches.flat().filter(isUdpTo(5000)).length;
        await until(() => udp() === 100, '100 packets through onPackets');
        expect(batches.every((b) => b.length >= 1 && b.length <= 16)).toBe(true);
        expect(tun.stats().batches).toBe(batches.length);
        stop();
        // A new consumer can start after stop().
        const it2 = tun.packets();
        await udpSend(ns, '192.0.2.2', 5002, [payload('after')]);
        expect(parseUdp(await firstMatching(it2, isUdpTo(5002)))?.payload).toEqual(payload('after'));
        expect(() => tun.onPackets(() => undefined)).toThrow(/already active/);
        await it2.return?.();
      } finally {
        await tun.close();
      }
    }));

  it('writeBatch stops at the first failing packet and throws only if it is the first', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tke0', netns: ns.name });
      try {
        await addressUp(ns, 'tke0', '192.0.2.1/24');
        const good = ipv4Udp({ src: '192.0.2.2', dst: '192.0.2.1', srcPort: 1, dstPort: 9, payload: payload('b') });
        const huge = Buffer.alloc(70000);
        expect(tun.writeBatch([])).toBe(0);
        expect(tun.writeBatch([good, huge, good])).toBe(1);
        let caught: unknown;
        try {
          tun.writeBatch([huge, good]);
        } catch (e) {
          caught = e;
        }
        expect(isNativeError(caught, 'EMSGSIZE')).toBe(true);
        expect((caught as Error).message).toMatch(/70000-byte packet to tun device 'tke0'/);
        await expect(tun.write(huge)).rejects.toMatchObject({ code: 'EMSGSIZE', syscall: 'write' });
        expect(() => tun.writeSync('nope' as unknown as Buffer)).toThrow(/write expects a Buffer or Uint8Array/);
        expect(() => tun.writeBatch([good, 'nope' as unknown as Buffer])).toThrow(/element 1 is not a Buffer.*nothing was written/);
        expect(tun.stats().packetsWritten).toBe(1);
      } finally {
        await tun.close();
      }
    }));

  it('writes big batches (no gathering) with the same results', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkbig', netns: ns.name });
      try {
        await addressUp(ns, 'tkbig', '192.0.2.1/24');
        // Three 60 kB datagrams fit the listener's default receive buffer.
        const listener = udpListen(ns, '192.0.2.1', 5007, 3);
        await listener.ready;
        const big = (i: number) => ipv4Udp({ src: '192.0.2.2', dst: '192.0.2.1', srcPort: 4007, dstPort: 5007, payload: Buffer.alloc(60000, i), id: i });
        const batch = [big(1), big(2), big(3), big(4), big(5)];
        expect(tun.writeBatch(batch)).toBe(5);
        const got = await listener.received;
        expect(got.map((d) => [d.payload.length, d.payload[0]])).toEqual([
          [60000, 1],
          [60000, 2],
          [60000, 3],
        ]);
        expect(tun.stats()).toMatchObject({ packetsWritten: 5, bytesWritten: 5 * (big(1).length) });
        expect(tun.writeBatch([big(6), Buffer.alloc(70000), big(7), big(8), big(9)])).toBe(1);
        expect(() => tun.writeBatch([Buffer.alloc(70000), big(7), big(8), big(9), big(10)])).toThrow(/EMSGSIZE/);
      } finally {
        await tun.close();
      }
    }));
});

describeKernel('tap: Ethernet frames both ways', () => {
  it('reads the exact frame and delivers a written frame', () =>
    withNetns(async (ns) => {
      const tap = await Tun.open({ name: 'tkt0', mode: 'tap', netns: ns.name });
      try {
        await addressUp(ns, 'tkt0', '192.0.2.1/24');
        const mac = (await linkDetails(ns, 'tkt0'))?.address as string;
        const peer = '02:00:5e:00:02:02';
        // A static neighbour, so the kernel sends the datagram at once instead of ARPing first.
        await ns.ip('neigh', 'add', '192.0.2.2', 'lladdr', peer, 'dev', 'tkt0', 'nud', 'permanent');
        const frames = tap.packets();
        const data = payload('tap read');
        await udpSend(ns, '192.0.2.2', 5000, [data], { bindAddress: '192.0.2.1', bindPort: 4000 });
        const frame = await firstMatching(frames, (f) => {
          const eth = parseEthernet(f);
          return eth?.etherType === ETH_P_IP && parseUdp(eth.payload)?.dstPort === 5000;
        });
        const ip = parseUdp(parseEthernet(frame)?.payload as Buffer);
        const expected = ethernetFrame(peer, mac, ETH_P_IP, ipv4Udp({ src: '192.0.2.1', dst: '192.0.2.2', srcPort: 4000, dstPort: 5000, payload: data, id: ip?.id, dontFragment: ip?.dontFragment }));
        expect(frame.equals(expected)).toBe(true);
        await frames.return?.();

        const listener = udpListen(ns, '192.0.2.1', 5001);
        await listener.ready;
        tap.writeSync(ethernetFrame(mac, peer, ETH_P_IP, ipv4Udp({ src: '192.0.2.2', dst: '192.0.2.1', srcPort: 4001, dstPort: 5001, payload: payload('tap write') })));
        const [got] = await listener.received;
        expect(got).toEqual({ from: '192.0.2.2', port: 4001, payload: payload('tap write') });
      } finally {
        await tap.close();
      }
    }));
});

describeKernel('headers: packet info and virtio-net', () => {
  it('prefixes reads with struct tun_pi and takes it on writes (packetInfo)', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkpi0', netns: ns.name, packetInfo: true });
      try {
        await addressUp(ns, 'tkpi0', '192.0.2.1/24', '2001:db8:1::1/64');
        const packets = tun.packets();
        await udpSend(ns, '192.0.2.2', 5000, [payload('pi')]);
        const withPi = await firstMatching(packets, (p) => p.length > 4 && isUdpTo(5000)(parseTunPi(p).payload));
        const pi = parseTunPi(withPi);
        expect([pi.flags, pi.proto]).toEqual([0, ETH_P_IP]);
        expect(parseUdp(pi.payload)?.payload).toEqual(payload('pi'));
        await udpSend(ns, '2001:db8:1::2', 5006, [payload('pi6')]);
        const withPi6 = await firstMatching(packets, (p) => p.length > 4 && isUdpTo(5006)(parseTunPi(p).payload));
        expect(parseTunPi(withPi6).proto).toBe(ETH_P_IPV6);
        await packets.return?.();

        const listener = udpListen(ns, '192.0.2.1', 5001);
        await listener.ready;
        const ip = ipv4Udp({ src: '192.0.2.2', dst: '192.0.2.1', srcPort: 4001, dstPort: 5001, payload: payload('pi write') });
        tun.writeSync(Buffer.concat([tunPi(ETH_P_IP), ip]));
        const [got] = await listener.received;
        expect(got?.payload).toEqual(payload('pi write'));
      } finally {
        await tun.close();
      }
    }));

  it('prefixes reads with a virtio-net header that reflects the offloads, and takes it on writes (vnetHdr)', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkv0', netns: ns.name, vnetHdr: true });
      try {
        await addressUp(ns, 'tkv0', '192.0.2.1/24');
        const packets = tun.packets();
        const udpAfterHdr = (port: number) => (p: Buffer) => p.length > 10 && isUdpTo(port)(parseVnetHdr(p).payload);

        // No offloads: the stack completes the checksum itself.
        await udpSend(ns, '192.0.2.2', 5000, [payload('plain')]);
        const plain = parseVnetHdr(await firstMatching(packets, udpAfterHdr(5000)));
        expect(plain.hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM).toBe(0);
        expect(plain.hdr.gsoType).toBe(0);
        expect(parseUdp(plain.payload)?.checksumsOk).toBe(true);

        // Checksum offload: the reader is told where to put the checksum.
        tun.setOffload({ csum: true });
        await udpSend(ns, '192.0.2.2', 5001, [payload('partial')]);
        const partial = parseVnetHdr(await firstMatching(packets, udpAfterHdr(5001)));
        expect(partial.hdr).toMatchObject({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 20, csumOffset: 6 });

        // UDP segmentation offload: one 3000-byte GSO datagram stays one packet.
        tun.setOffload({ csum: true, uso4: true, uso6: true });
        const gso = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT: segments of 1000 bytes
s.sendto(b'g' * 3000, ('192.0.2.2', 5002))
`;
        await ns.exec('python3', ['-c', gso]);
        const big = parseVnetHdr(await firstMatching(packets, udpAfterHdr(5002)));
        expect(big.hdr).toMatchObject({ gsoType: VIRTIO_NET_HDR_GSO_UDP_L4, gsoSize: 1000 });
        expect(big.payload.length).toBe(20 + 8 + 3000);

        // Without it the kernel segments before the device: three packets.
        tun.setOffload({ csum: true });
        await ns.exec('python3', ['-c', gso.replace('5002', '5003')]);
        for (let i = 0; i < 3; i++) {
          const seg = parseVnetHdr(await firstMatching(packets, udpAfterHdr(5003)));
          expect(seg.hdr.gsoType).toBe(0);
          expect(seg.payload.length).toBe(20 + 8 + 1000);
        }
        await packets.return?.();

        const listener = udpListen(ns, '192.0.2.1', 5004);
        await listener.ready;
        const ip = ipv4Udp({ src: '192.0.2.2', dst: '192.0.2.1', srcPort: 4004, dstPort: 5004, payload: payload('vnet write') });
        tun.writeSync(Buffer.concat([plainVnetHdr(), ip]));
        const [got] = await listener.received;
        expect(got?.payload).toEqual(payload('vnet write'));
      } finally {
        await tun.close();
      }
    }));
});

describeKernel('multi-queue traffic', () => {
  it('spreads flows over the queues; together they see every packet', () =>
    withNetns(async (ns) => {
      const first = await Tun.open({ name: 'tkmq0', netns: ns.name, multiQueue: true });
      const second = await first.openQueue();
      try {
        await addressUp(ns, 'tkmq0', '192.0.2.1/24');
        const seen = [0, 0];
        const stops = [first, second].map((q, i) =>
          q.onPackets((batch) => {
            seen[i] = (seen[i] as number) + batch.filter(isUdpTo(5000)).length;
          }),
        );
        // 64 flows (distinct source ports), 4 packets each.
        const ports = Array.from({ length: 64 }, (_, i) => 20000 + i);
        await udpSend(ns, '192.0.2.2', 5000, [payload('mq')], { bindAddress: '192.0.2.1', bindPort: ports, repeat: 4 });
        await until(() => (seen[0] as number) + (seen[1] as number) === 256, 'all 256 packets on the two queues');
        expect(seen[0]).toBeGreaterThan(0);
        expect(seen[1]).toBeGreaterThan(0);
        stops.forEach((stop) => stop());
      } finally {
        await Promise.all([first.close(), second.close()]);
      }
    }));
});
