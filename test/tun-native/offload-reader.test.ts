/**
 * The segmenting reader (ReadOptions.segment) against the real kernel: UDP GSO sends a socket
 * makes (UDP_SEGMENT) reach a vnetHdr TUN as super-packets, and the reader thread hands JS the
 * datagrams they stand for, one batch entry each, checksums verified by the independent TS
 * implementation in test/helpers/packets.ts. Packets are queued in the device before the reader
 * starts, so what lands in which batch is decided by the reader's limits alone.
 * UDP super-packets need USO (TUNSETOFFLOAD uso4: Linux 6.2+); TCP is covered by
 * offload-stream.test.ts (mode 'reader segments').
 */
import { expect, it } from '@jest/globals';
import { type PacketBatch, Tun, type TunOpenOptions } from '../../tun-native/index.js';
import { type Netns, withNetns } from '../helpers/netns.js';
import { parseUdp } from '../helpers/packets.js';
import { describeKernel } from '../helpers/tiers.js';
import { addressUp, until } from '../helpers/tun-netns.js';
import { expectedDatagrams, type Flow, payloadOf, queueSends as queueFlow, type Send } from '../helpers/udp-sends.js';

const FLOW: Flow = { srcPort: 4010, dstPort: 5010, stride: 7 };

/** Opens a vnetHdr TUN (IPv6 off in the namespace: only our packets in its queue) with 192.0.2.1/24 up. */
async function openQuiet(ns: Netns, name: string, opts: TunOpenOptions = {}): Promise<Tun> {
  await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  const tun = await Tun.open({ name, netns: ns.name, vnetHdr: true, offload: 'auto', ...opts });
  await addressUp(ns, name, '192.0.2.1/24');
  return tun;
}

const queueSends = (ns: Netns, dev: string, sends: Send[]): Promise<void> => queueFlow(ns, dev, FLOW, sends);

interface Read {
  /** Per batch, the datagrams of ours in it (UDP to port 5010), parsed. */
  batches: Array<Array<ReturnType<typeof parseUdp>>>;
  counts: number[];
  segmentedFlags: boolean[];
  vnetHeaderThrows: boolean;
  segmentIsIdentity: boolean;
}

/** Reads with { segment: true } until `want` datagrams of ours arrived. */
async function readSegmented(tun: Tun, want: number): Promise<Read> {
  const r: Read = { batches: [], counts: [], segmentedFlags: [], vnetHeaderThrows: true, segmentIsIdentity: true };
  let got = 0;
  const stop = tun.onBatches(
    (batch: PacketBatch) => {
      r.counts.push(batch.count);
      r.segmentedFlags.push(batch.segmented);
      r.segmentIsIdentity &&= tun.segment(batch) === batch;
      try {
        batch.vnetHeader(0);
        r.vnetHeaderThrows = false;
      } catch {
        // expected: wire packets carry no virtio-net header
      }
      const ours = [];
      for (let i = 0; i < batch.count; i++) {
        const udp = parseUdp(batch.copy(i));
        if (udp?.dstPort === 5010) ours.push(udp);
      }
      got += ours.length;
      r.batches.push(ours);
    },
    { segment: true },
  );
  try {
    await until(() => got >= want, `${want} datagrams through the segmenting reader`);
  } finally {
    stop();
  }
  return r;
}

describeKernel('segmenting reader: wire packets from a vnetHdr TUN, split on the reader thread', () => {
  it('splits UDP GSO super-packets in a batch that mixes them with plain packets: counts, lengths, checksums, order', () =>
    withNetns(async (ns) => {
      const tun = await openQuiet(ns, 'tksr0');
      try {
        expect(tun.offload?.uso4).toBe(true);
        const sends: Send[] = [{ plain: 300 }, { gso: 2820, size: 1000 }, { plain: 200 }, { gso: 1250, size: 500 }, { plain: 100 }];
        const expected = expectedDatagrams(FLOW, sends);
        await queueSends(ns, 'tksr0', sends);
        const r = await readSegmented(tun, expected.length);
        // All five reads fit one batch (readBatch 64): one entry per wire packet, in order.
        const first = r.batches.find((b) => b.length > 0)!;
        expect(first).toHaveLength(9);
        expect(first.map((d) => d!.payload)).toEqual(expected);
        expect(first.map((d) => d!.payload.length)).toEqual([300, 1000, 1000, 820, 200, 500, 500, 250, 100]);
        for (const d of first) expect(d).toMatchObject({ checksumsOk: true, srcPort: 4010, dstPort: 5010, src: '192.0.2.1', dst: '192.0.2.2' });
        // The segments of one super-packet carry consecutive IPv4 ids, as the kernel's own GSO would.
        expect(first[2]!.id - first[1]!.id).toBe(1);
        expect(r.segmentedFlags.every(Boolean)).toBe(true);
        expect(r.vnetHeaderThrows).toBe(true);
        expect(r.segmentIsIdentity).toBe(true);
        const stats = tun.stats();
        expect(stats).toMatchObject({ superPackets: 2, dropped: 0, malformed: 0 });
        expect(stats.packetsRead).toBeGreaterThanOrEqual(9);
      } finally {
        await tun.close();
      }
    }));

  it('drops a super-packet whole when the queue has no room left for all its segments (overflow drop), and reads on', () =>
    withNetns(async (ns) => {
      // Room for 4 wire packets: two plain ones take 2, the super-packet needs 3.
      const tun = await openQuiet(ns, 'tksr1', { readBatch: 4, queueLimit: 4 });
      try {
        const sends: Send[] = [{ plain: 64 }, { plain: 65 }, { gso: 3000, size: 1000 }, { plain: 66 }];
        await queueSends(ns, 'tksr1', sends);
        const r = await readSegmented(tun, 3);
        const ours = r.batches.flat();
        expect(ours.map((d) => d!.payload)).toEqual([payloadOf(FLOW, 0, 64), payloadOf(FLOW, 1, 65), payloadOf(FLOW, 3, 66)]);
        expect(ours.every((d) => d!.checksumsOk)).toBe(true);
        expect(tun.stats()).toMatchObject({ dropped: 3, superPackets: 0, malformed: 0 });
      } finally {
        await tun.close();
      }
    }));

  it("with overflow 'backpressure' holds a super-packet until room comes: nothing lost, its segments spread over batches", () =>
    withNetns(async (ns) => {
      const tun = await openQuiet(ns, 'tksr2', { readBatch: 2, queueLimit: 4, overflow: 'backpressure' });
      try {
        const sends: Send[] = [{ plain: 64 }, { plain: 65 }, { gso: 3000, size: 1000 }, { plain: 66 }];
        const expected = expectedDatagrams(FLOW, sends);
        await queueSends(ns, 'tksr2', sends);
        const r = await readSegmented(tun, expected.length);
        const ours = r.batches.flat();
        expect(ours.map((d) => d!.payload)).toEqual(expected);
        expect(ours.every((d) => d!.checksumsOk)).toBe(true);
        expect(r.counts.every((n) => n >= 1 && n <= 2)).toBe(true);
        // The three segments (entries 2..4 of ours) cannot share one batch of two.
        const batchOf = r.batches.flatMap((b, i) => b.map(() => i));
        expect(new Set(batchOf.slice(2, 5)).size).toBeGreaterThan(1);
        expect(tun.stats()).toMatchObject({ dropped: 0, superPackets: 1, malformed: 0 });
      } finally {
        await tun.close();
      }
    }));

  it('drops a super-packet with more segments than the whole queue holds, even with backpressure, and reads on', () =>
    withNetns(async (ns) => {
      const tun = await openQuiet(ns, 'tksr3', { readBatch: 2, queueLimit: 2, overflow: 'backpressure' });
      try {
        const sends: Send[] = [{ plain: 64 }, { gso: 3000, size: 1000 }, { plain: 66 }];
        await queueSends(ns, 'tksr3', sends);
        const r = await readSegmented(tun, 2);
        expect(r.batches.flat().map((d) => d!.payload)).toEqual([payloadOf(FLOW, 0, 64), payloadOf(FLOW, 2, 66)]);
        expect(tun.stats()).toMatchObject({ dropped: 3, superPackets: 0 });
      } finally {
        await tun.close();
      }
    }));

  it('packets() reads segmented too; without vnetHdr the option changes nothing; onBatches and onPackets refuse bad options', () =>
    withNetns(async (ns) => {
      const tun = await openQuiet(ns, 'tksr4');
      const plain = await Tun.open({ name: 'tksr5', netns: ns.name });
      try {
        const sends: Send[] = [{ gso: 2000, size: 1000 }];
        await queueSends(ns, 'tksr4', sends);
        const it = tun.packets({ segment: true });
        const got: Buffer[] = [];
        for await (const p of it) {
          if (parseUdp(p)?.dstPort === 5010) got.push(p);
          if (got.length === 2) break;
        }
        expect(got.map((p) => parseUdp(p)!.payload)).toEqual(expectedDatagrams(FLOW, sends));
        // A plain Tun reads wire packets anyway: the option is accepted and changes nothing.
        await addressUp(ns, 'tksr5', '198.51.100.1/24');
        const plainSeen: Array<{ segmented: boolean; udp: ReturnType<typeof parseUdp> }> = [];
        const stop = plain.onBatches(
          (b) => {
            for (let i = 0; i < b.count; i++) plainSeen.push({ segmented: b.segmented, udp: parseUdp(b.copy(i)) });
          },
          { segment: true },
        );
        await ns.exec('python3', ['-c', "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'plain', ('198.51.100.2', 5011))"]);
        await until(() => plainSeen.some((p) => p.udp?.dstPort === 5011), 'a datagram through the plain Tun');
        stop();
        expect(plainSeen.find((p) => p.udp?.dstPort === 5011)).toMatchObject({ segmented: false, udp: { checksumsOk: true, payload: Buffer.from('plain') } });
        expect(() => tun.onBatches(() => undefined, { segment: 'yes' as unknown as boolean })).toThrow(/segment must be a boolean/);
        expect(() => tun.onPackets(() => undefined, 42 as unknown as () => void)).toThrow(/onEnd or options/);
        const tap = await Tun.open({ name: 'tksr6', mode: 'tap', netns: ns.name, vnetHdr: true });
        try {
          expect(() => tap.onBatches(() => undefined, { segment: true })).toThrow(/IP packets/);
        } finally {
          await tap.close();
        }
      } finally {
        await tun.close();
        await plain.close();
      }
    }));
});
