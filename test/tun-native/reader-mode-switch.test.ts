/**
 * A reader stopped with packets still queued in its ring, then started again with the other
 * `segment` setting: the leftovers must reach the new consumer in a form it can tell, never
 * labelled as the other form. onBatches() gets them in batches of their own whose flag says what
 * they are; onPackets() gets them converted to the form it asked for.
 *
 * Deterministic leftovers: packets are queued in the device first; the reader runs with overflow
 * 'backpressure' and queueLimit 8, so it reads exactly until its queue (the lent batch included)
 * is full and then waits. The first callback waits (synchronously, the reader thread runs on)
 * until the device's tx counter (tun counts a packet when a reader takes it) shows the reader has
 * stopped there, then stops the consumer: the rest of the queue stays in the ring.
 * Every entry is checked against what its flag says with the independent code of
 * test/helpers/packets.ts: wire packets by their checksums, virtio-net packets by their header,
 * IPv4 header checksum, lengths and (partial checksums completed as a device would) UDP checksum.
 */
import { execFileSync } from 'node:child_process';
import { expect, it } from '@jest/globals';
import { Tun } from '../../tun-native/index.js';
import { type Netns, withNetns } from '../helpers/netns.js';
import { checksum, parseUdp, parseVnetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_UDP_L4 } from '../helpers/packets.js';
import { describeKernel } from '../helpers/tiers.js';
import { addressUp, until } from '../helpers/tun-netns.js';
import { expectedDatagrams, type Flow, queueSends, type Send } from '../helpers/udp-sends.js';

const FLOW: Flow = { srcPort: 4020, dstPort: 5020, stride: 5 };

/** The device's tx packets: packets a reader has taken from its queue. Synchronous on purpose. */
function txTaken(ns: Netns, dev: string): number {
  const out = execFileSync('ip', ['-n', ns.name, '-s', '-j', 'link', 'show', 'dev', dev], { encoding: 'utf8' });
  return (JSON.parse(out) as Array<{ stats64: { tx: { packets: number } } }>)[0]!.stats64.tx.packets;
}

/**
 * The datagrams one entry stands for, read as `segmented` says it is; throws if it is not that.
 * Wire packet: an IPv4 UDP packet whose checksums verify. Otherwise: a virtio-net header, then an
 * IPv4 UDP packet (whole, header checksum valid); a GSO super-packet stands for its payload cut
 * at gsoSize; a partial checksum is completed from csumStart as a device would, then verified.
 */
function decode(entry: Buffer, segmented: boolean): Buffer[] {
  if (segmented) {
    const udp = parseUdp(entry);
    if (!udp || udp.dstPort !== 5020) throw new Error(`not one of our wire packets: ${entry.subarray(0, 16).toString('hex')}`);
    if (!udp.checksumsOk) throw new Error('a wire packet with a wrong checksum');
    return [udp.payload];
  }
  const { hdr, payload } = parseVnetHdr(entry);
  const ip = Buffer.from(payload);
  if (ip[0] !== 0x45) throw new Error(`no IPv4 header after the virtio-net header: ${entry.subarray(0, 16).toString('hex')}`);
  if (ip.readUInt16BE(2) !== ip.length) throw new Error(`IP total length ${ip.readUInt16BE(2)}, entry holds ${ip.length}`);
  if (checksum(ip.subarray(0, 20)) !== 0) throw new Error('IPv4 header checksum wrong');
  if (ip.readUInt16BE(22) !== 5020) throw new Error('not our datagram');
  if (hdr.gsoType !== VIRTIO_NET_HDR_GSO_NONE && hdr.gsoType !== VIRTIO_NET_HDR_GSO_UDP_L4) throw new Error(`gso type ${hdr.gsoType}`);
  const data = ip.subarray(28);
  if (hdr.gsoType === VIRTIO_NET_HDR_GSO_UDP_L4) {
    if (hdr.gsoSize === 0 || data.length <= hdr.gsoSize) throw new Error(`a super-packet of ${data.length} bytes with gsoSize ${hdr.gsoSize}`);
    return Array.from({ length: Math.ceil(data.length / hdr.gsoSize) }, (_, k) => Buffer.from(data.subarray(k * hdr.gsoSize, (k + 1) * hdr.gsoSize)));
  }
  if (hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    if (hdr.csumStart !== 20 || hdr.csumOffset !== 6) throw new Error(`csumStart ${hdr.csumStart} csumOffset ${hdr.csumOffset}`);
    ip.writeUInt16BE(checksum(ip.subarray(hdr.csumStart)), hdr.csumStart + hdr.csumOffset);
  }
  const udp = parseUdp(ip);
  if (!udp?.checksumsOk) throw new Error('UDP checksum wrong after the virtio-net header');
  return [udp.payload];
}

interface Batch {
  segmented: boolean;
  datagrams: Buffer[];
}

/** Decodes a batch by a flag; a failure is kept (thrown later) rather than thrown into the reader. */
function record(batches: Batch[], failures: string[], entries: Buffer[], segmented: boolean): number {
  const datagrams: Buffer[] = [];
  for (const e of entries) {
    try {
      datagrams.push(...decode(e, segmented));
    } catch (err) {
      failures.push(`${segmented ? 'segmented' : 'plain'} batch: ${(err as Error).message}`);
    }
  }
  batches.push({ segmented, datagrams });
  return datagrams.length;
}

interface Case {
  first: boolean;
  second: 'batches' | 'packets';
  sends: Send[];
  /** tx packets once the first reader waits for room. */
  fill: number;
  /** Sends whose datagrams are lost: a super-packet the segmenting reader held when stopped. */
  lost: number[];
  /** Wire packets counted dropped. */
  dropped: number;
}

// First reader plain: one entry per send, it reads 8 sends and waits; sends 4.. mix super-packets and datagrams.
const PLAIN_FIRST: Send[] = [
  { gso: 3000, size: 1000 }, { plain: 300 }, { gso: 2000, size: 1000 }, { plain: 200 }, { gso: 1500, size: 500 }, { plain: 100 },
  { gso: 2000, size: 1000 }, { plain: 64 }, { gso: 3000, size: 1000 }, { plain: 65 }, { plain: 66 }, { gso: 1000, size: 500 },
];
// First reader segmenting: two wire packets per super-packet: sends 0-3 fill its 8, it reads send 4 and
// holds it waiting for room; stopped, it drops those 2 and counts them.
const SEGMENTED_FIRST: Send[] = [
  { gso: 2000, size: 1000 }, { gso: 2000, size: 1000 }, { gso: 1600, size: 800 }, { gso: 1200, size: 600 }, { gso: 2000, size: 1000 },
  { plain: 300 }, { gso: 1500, size: 500 }, { plain: 200 }, { gso: 3000, size: 1000 }, { plain: 100 },
];

async function runCase(ns: Netns, dev: string, c: Case): Promise<void> {
  await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  const tun = await Tun.open({ name: dev, netns: ns.name, vnetHdr: true, offload: 'auto', readBatch: 4, queueLimit: 8, overflow: 'backpressure' });
  try {
    await addressUp(ns, dev, '192.0.2.1/24');
    expect(tun.offload?.uso4).toBe(true);
    await queueSends(ns, dev, FLOW, c.sends);

    const firstBatches: Batch[] = [];
    const failures: string[] = [];
    let fillSeen = -1;
    let firstDone = false;
    const stopFirst = tun.onBatches(
      (b) => {
        if (firstDone) return;
        firstDone = true;
        record(firstBatches, failures, Array.from({ length: b.count }, (_, i) => b.copy(i)), b.segmented);
        // The reader thread reads on until its queue is full (this batch counts): wait for that.
        for (let spins = 0; spins < 20000 && fillSeen < c.fill; spins++) fillSeen = txTaken(ns, dev);
        stopFirst();
      },
      { segment: c.first },
    );
    await until(() => firstDone, 'the first batch');
    expect(fillSeen).toBe(c.fill);
    expect(firstBatches[0]!.segmented).toBe(c.first);

    const expected = expectedDatagrams(FLOW, c.sends, new Set(c.lost));
    const secondBatches: Batch[] = [];
    let got = firstBatches[0]!.datagrams.length;
    const stop =
      c.second === 'batches'
        ? tun.onBatches(
            (b) => {
              got += record(secondBatches, failures, Array.from({ length: b.count }, (_, i) => b.copy(i)), b.segmented);
            },
            { segment: !c.first },
          )
        : tun.onPackets(
            (packets) => {
              // A Buffer carries no flag: each must be in the form this consumer asked for.
              got += record(secondBatches, failures, packets, !c.first);
            },
            { segment: !c.first },
          );
    try {
      await until(() => got >= expected.length || failures.length > 0, `${expected.length} datagrams`);
    } finally {
      stop();
    }
    expect(failures).toEqual([]);
    expect([...firstBatches, ...secondBatches].flatMap((b) => b.datagrams)).toEqual(expected);
    if (c.second === 'batches') {
      // The leftovers came first, in batches of their own flagged as the first reader wrote them.
      const flags = secondBatches.map((b) => b.segmented);
      const leftovers = flags.indexOf(!c.first);
      expect(leftovers).toBeGreaterThan(0);
      expect(flags.slice(0, leftovers).every((f) => f === c.first)).toBe(true);
      expect(flags.slice(leftovers).every((f) => f === !c.first)).toBe(true);
    }
    expect(tun.stats()).toMatchObject({ dropped: c.dropped, malformed: 0 });
  } finally {
    await tun.close();
  }
}

const plainFirst = { first: false, sends: PLAIN_FIRST, fill: 8, lost: [], dropped: 0 };
const segmentedFirst = { first: true, sends: SEGMENTED_FIRST, fill: 5, lost: [4], dropped: 2 };

describeKernel('a reader restarted with the other segment setting: leftovers in the ring keep their form', () => {
  it('plain, then segmenting onBatches: the leftover super-packets come in batches flagged not segmented', () =>
    withNetns((ns) => runCase(ns, 'tkms0', { ...plainFirst, second: 'batches' })));

  it('segmenting, then plain onBatches: the leftover wire packets come flagged segmented; the held super-packet is counted dropped', () =>
    withNetns((ns) => runCase(ns, 'tkms1', { ...segmentedFirst, second: 'batches' })));

  it('plain, then segmenting onPackets: the leftovers are split into wire packets for it', () =>
    withNetns((ns) => runCase(ns, 'tkms2', { ...plainFirst, second: 'packets' })));

  it('segmenting, then plain onPackets: the leftover wire packets come after an all-zero virtio-net header', () =>
    withNetns((ns) => runCase(ns, 'tkms3', { ...segmentedFirst, second: 'packets' })));
});
