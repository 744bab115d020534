/**
 * UDP through the offloaded data path against the real kernel: a GSO datagram a socket sends
 * (UDP_SEGMENT) reaches the reader as one unit and segment() gives back the datagrams it stands
 * for; datagrams written with writeCoalesced() reach a socket intact, in one write where the
 * kernel took USO. Checksums are checked by the receiving kernel and by a TS implementation.
 */
import { expect, it } from '@jest/globals';
import { PacketArena, readVnetHeader, Tun } from '../../tun-native/index.js';
import { withNetns } from '../helpers/netns.js';
import { ipv4Udp, parseUdp } from '../helpers/packets.js';
import { describeKernel } from '../helpers/tiers.js';
import { addressUp, firstMatching, udpListen } from '../helpers/tun-netns.js';

const GSO_SENDER = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('192.0.2.1', 4002))
s.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT: datagrams of 1000 bytes
s.sendto(bytes(range(256)) * 11 + b'tail', ('192.0.2.2', 5002))
`;

describeKernel('offload: UDP through vnetHdr TUNs', () => {
  it('reads a UDP GSO send as one unit and segments it into the datagrams, checksums right', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tku0', netns: ns.name, vnetHdr: true, offload: 'auto' });
      try {
        await addressUp(ns, 'tku0', '192.0.2.1/24');
        const batches = tun.packets();
        const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        const payload = Buffer.concat([...Array.from({ length: 11 }, () => bytes), Buffer.from('tail')]);
        await ns.exec('python3', ['-c', GSO_SENDER]);
        // The first packet of ours (port 5002) as the kernel handed it over.
        const raw = await firstMatching(batches, (p) => p.length > 10 + 28 && p.readUInt16BE(10 + 22) === 5002);
        await batches.return?.();
        const list = { buffer: raw, offsets: new Uint32Array([0]), lengths: new Uint32Array([raw.length]), count: 1 };
        // With USO the whole send is one super-packet; without, the kernel split it already.
        const segs = tun.segment(list);
        expect(readVnetHeader(raw).gsoType).toBe(tun.offload?.uso4 ? 'udp' : 'none');
        expect(segs.count).toBe(tun.offload?.uso4 ? 3 : 1);
        const datagrams = Array.from({ length: segs.count }, (_, i) => parseUdp(Buffer.from(segs.buffer.subarray(segs.offsets[i], segs.offsets[i]! + segs.lengths[i]!))));
        for (const d of datagrams) expect(d).toMatchObject({ checksumsOk: true, srcPort: 4002, dstPort: 5002 });
        if (tun.offload?.uso4) expect(Buffer.concat(datagrams.map((d) => d!.payload)).equals(payload)).toBe(true);
      } finally {
        await tun.close();
      }
    }));

  it('writes UDP datagrams of one flow with writeCoalesced: one write where the kernel took USO, all delivered intact', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tku1', netns: ns.name, vnetHdr: true, offload: 'auto' });
      try {
        await addressUp(ns, 'tku1', '192.0.2.1/24');
        const listener = udpListen(ns, '192.0.2.1', 5004, 4);
        await listener.ready;
        const payloads = [1200, 1200, 1200, 333].map((n, i) => Buffer.alloc(n, 0x41 + i));
        const packets = payloads.map((payload, i) => ipv4Udp({ src: '192.0.2.2', dst: '192.0.2.1', srcPort: 4004, dstPort: 5004, payload, id: i }));
        const arena = new PacketArena();
        arena.reserve(8192, 4);
        let at = 0;
        for (const [i, p] of packets.entries()) {
          p.copy(arena.buffer, at);
          arena.offsets[i] = at;
          arena.lengths[i] = p.length;
          at += p.length;
        }
        arena.count = packets.length;
        expect(tun.writeCoalesced(arena)).toBe(tun.offload?.uso4 ? 1 : 4);
        const got = await listener.received;
        expect(got.map((d) => d.payload)).toEqual(payloads);
      } finally {
        await tun.close();
      }
    }));

  it('passes a list read from one Tun to another with writeList, and a plain Tun segments and coalesces nothing', () =>
    withNetns(async (ns) => {
      const plain = await Tun.open({ name: 'tku2', netns: ns.name });
      try {
        await addressUp(ns, 'tku2', '192.0.2.1/24');
        const listener = udpListen(ns, '192.0.2.1', 5006, 2);
        await listener.ready;
        const packets = [0, 1].map((i) => ipv4Udp({ src: '192.0.2.2', dst: '192.0.2.1', srcPort: 4006, dstPort: 5006, payload: Buffer.alloc(100, i) }));
        const list = { buffer: Buffer.concat(packets), offsets: new Uint32Array([0, packets[0]!.length]), lengths: new Uint32Array(packets.map((p) => p.length)), count: 2 };
        expect(plain.segment(list)).toBe(list);
        expect(plain.writeCoalesced(list)).toBe(2);
        const got = await listener.received;
        expect(got.map((d) => d.payload)).toEqual([Buffer.alloc(100, 0), Buffer.alloc(100, 1)]);
        expect(() => plain.writeList({ ...list, lengths: new Uint32Array([1000, 1000]) })).toThrow(/outside/);
      } finally {
        await plain.close();
      }
    }));
});
