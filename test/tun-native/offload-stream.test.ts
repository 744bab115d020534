/**
 * The offloaded data path against the real kernel: a TCP stream from a client in one namespace to
 * a server in another, through two vnetHdr TUN devices and a forwarder in this process. What the
 * client sends must arrive intact (sha256 of the whole stream), and the forwarder must really have
 * carried super-packets: the kernel handed it GSO packets, and its writes merged segments.
 *
 *   ns A: client ── tka (192.0.2.1, 2001:db8:a::1) ─┐
 *                                                   forwarder (this process): A ⇄ B
 *   ns B: server ── tkb (198.51.100.1, 2001:db8:b::1) ┘
 */
import { expect, it } from '@jest/globals';
import { type PacketBatch, Tun } from '../../tun-native/index.js';
import { type Netns, withNetns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { checksum, onesSum } from '../helpers/packets.js';
import { addressUp, runNode } from '../helpers/tun-netns.js';

const SERVER = `
import net from 'node:net';
import { createHash } from 'node:crypto';
const [host, port] = process.argv.slice(1);
const server = net.createServer((sock) => {
  const hash = createHash('sha256');
  let bytes = 0;
  sock.on('data', (d) => { hash.update(d); bytes += d.length; });
  sock.on('end', () => { process.stdout.write(JSON.stringify({ bytes, sha256: hash.digest('hex') }) + '\\n'); sock.end(); server.close(); });
});
server.listen(Number(port), host, () => process.stdout.write('listening\\n'));
`;

// Sends `mb` MiB of pseudo-random bytes (a fresh stream each run) in large writes, so the kernel
// builds TSO super-packets, and prints what it sent.
const CLIENT = `
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
const [host, port, mb] = process.argv.slice(1);
const hash = createHash('sha256');
const sock = net.connect({ host, port: Number(port) });
const chunk = 256 * 1024;
let left = Number(mb) * 1024 * 1024;
let bytes = 0;
sock.on('connect', () => {
  const pump = () => {
    while (left > 0) {
      const b = randomBytes(Math.min(chunk, left));
      left -= b.length;
      bytes += b.length;
      hash.update(b);
      if (!sock.write(b)) return void sock.once('drain', pump);
    }
    sock.end();
  };
  pump();
});
sock.on('close', () => process.stdout.write(JSON.stringify({ bytes, sha256: hash.digest('hex') }) + '\\n'));
sock.resume();
`;

/** 'reader segments': the reader thread splits (onBatches with { segment: true }), writes coalesce. */
type Mode = 'segment+coalesce' | 'reader segments' | 'pass-through';

interface Route {
  a: string;
  b: string;
  netA: string;
  netB: string;
}

const V4: Route = { a: '192.0.2.1/24', b: '198.51.100.1/24', netA: '192.0.2.0/24', netB: '198.51.100.0/24' };
const V6: Route = { a: '2001:db8:a::1/64', b: '2001:db8:b::1/64', netA: '2001:db8:a::/64', netB: '2001:db8:b::/64' };

interface Seen {
  gsoReads: number;
  packetsIn: number;
  writes: number;
  /** Segments whose IPv4 header and TCP checksums an independent TS checksum verified, and failed. */
  verified: number;
  bad: number;
  /** Wire packets longer than the MTU: a super-packet left whole. */
  oversized: number;
}

/** The IPv4 header checksum and the TCP checksum (pseudo-header included) of a wire packet, checked in TS. */
function checksumsOk(p: Uint8Array): boolean {
  const v6 = (p[0] as number) >> 4 === 6;
  const ipLen = v6 ? 40 : ((p[0] as number) & 0x0f) * 4;
  const l4 = p.subarray(ipLen);
  const addrs = v6 ? p.subarray(8, 40) : p.subarray(12, 20);
  const proto = v6 ? (p[6] as number) : (p[9] as number);
  const pseudo = Buffer.concat([addrs, Buffer.from([0, 0, l4.length >> 8, l4.length & 0xff, 0, 0, 0, proto])]);
  return (v6 || checksum(p.subarray(0, ipLen)) === 0) && checksum(l4, onesSum(pseudo)) === 0;
}

/** Forwards every batch read from `from` to `to`, counting super-packets read and writes made. */
function forward(from: Tun, to: Tun, mode: Mode, seen: Seen): () => void {
  if (mode === 'reader segments') {
    return from.onBatches(
      (batch: PacketBatch) => {
        seen.packetsIn += batch.count;
        for (let i = 0; i < batch.count; i++) {
          const at = batch.offsets[i] as number;
          const len = batch.lengths[i] as number;
          if (len > 1500) seen.oversized++;
          if (checksumsOk(batch.buffer.subarray(at, at + len))) seen.verified++;
          else seen.bad++;
        }
        seen.writes += to.writeCoalesced(batch);
      },
      { segment: true },
    );
  }
  return from.onBatches((batch: PacketBatch) => {
    for (let i = 0; i < batch.count; i++) if (batch.vnetHeader(i).gsoType !== 'none') seen.gsoReads++;
    if (mode === 'pass-through') {
      seen.packetsIn += batch.count;
      seen.writes += to.writeList(batch);
      return;
    }
    const segments = from.segment(batch);
    seen.packetsIn += segments.count;
    for (let i = 0; i < segments.count; i++) {
      const at = segments.offsets[i] as number;
      if (checksumsOk(segments.buffer.subarray(at, at + (segments.lengths[i] as number)))) seen.verified++;
      else seen.bad++;
    }
    seen.writes += to.writeCoalesced(segments);
  });
}

async function streamThrough(mode: Mode, route: Route, mb: number): Promise<{ sent: string; received: string; bytes: number; a: Seen; b: Seen; superPackets: number }> {
  const withBoth = async (nsA: Netns, nsB: Netns) => {
    const tka = await Tun.open({ name: 'tka', netns: nsA.name, vnetHdr: true, offload: 'auto', mtu: 1500 });
    const tkb = await Tun.open({ name: 'tkb', netns: nsB.name, vnetHdr: true, offload: 'auto', mtu: 1500 });
    const a: Seen = { gsoReads: 0, packetsIn: 0, writes: 0, verified: 0, bad: 0, oversized: 0 };
    const b: Seen = { gsoReads: 0, packetsIn: 0, writes: 0, verified: 0, bad: 0, oversized: 0 };
    const stops: (() => void)[] = [];
    try {
      await addressUp(nsA, 'tka', route.a);
      await addressUp(nsB, 'tkb', route.b);
      stops.push(forward(tka, tkb, mode, a), forward(tkb, tka, mode, b));
      await nsA.ip('route', 'add', route.netB, 'dev', 'tka');
      await nsB.ip('route', 'add', route.netA, 'dev', 'tkb');
      const serverHost = route.b.split('/')[0] as string;
      const server = runNode(SERVER, { netns: nsB.name, args: [serverHost, '5201'], guardMs: 120_000 });
      // The server starts in its own time: connect until the port answers through the tunnel.
      // The limit is a hang guard (a server that never listens fails here, not in a hang).
      const guard = Date.now() + 60_000;
      let client: Awaited<ReturnType<typeof runNode>>;
      for (;;) {
        client = await runNode(CLIENT, { netns: nsA.name, args: [serverHost, '5201', String(mb)] });
        if (client.code === 0 && client.stdout.includes('sha256') && !client.stderr.includes('ECONNREFUSED')) break;
        if (Date.now() > guard) throw new Error(`the client never got its stream through: ${client.stderr.trim()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const done = await server;
      const sent = JSON.parse(client.stdout.trim().split('\n').at(-1) ?? '{}') as { bytes: number; sha256: string };
      const received = JSON.parse(done.stdout.trim().split('\n').at(-1) ?? '{}') as { bytes: number; sha256: string };
      expect(received.bytes).toBe(mb * 1024 * 1024);
      return { sent: sent.sha256, received: received.sha256, bytes: received.bytes, a, b, superPackets: tka.stats().superPackets };
    } finally {
      for (const stop of stops) stop();
      await tka.close();
      await tkb.close();
    }
  };
  return withNetns((nsA) => withNetns((nsB) => withBoth(nsA, nsB), 'ofb'), 'ofa');
}

describeKernel('offload: a TCP stream through two vnetHdr TUNs', () => {
  it('offload: "auto" sets checksum and TCP segmentation offload (and UDP where the kernel has it)', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tko0', netns: ns.name, vnetHdr: true, offload: 'auto' });
      try {
        expect(tun.offload).toMatchObject({ csum: true, tso4: true, tso6: true, tsoEcn: false, ufo: false });
        expect(tun.offload?.uso4).toBe(tun.offload?.uso6);
        const plain = await Tun.open({ name: 'tko1', netns: ns.name });
        expect(plain.offload).toBeNull();
        await plain.close();
      } finally {
        await tun.close();
      }
    }));

  for (const [family, route] of [['IPv4', V4], ['IPv6', V6]] as const) {
    it(`${family}: segmented on read and coalesced on write, the stream arrives intact`, async () => {
      const r = await streamThrough('segment+coalesce', route, 24);
      expect(r.received).toBe(r.sent);
      // The client's data went A → B: the kernel handed over super-packets, and the forwarder's
      // writes carried several segments each.
      expect(r.a.gsoReads).toBeGreaterThan(0);
      expect(r.a.writes).toBeLessThan(r.a.packetsIn);
      // Every wire packet segment() produced, both ways, carries checksums an independent TS
      // implementation accepts.
      expect(r.a.verified + r.b.verified).toBe(r.a.packetsIn + r.b.packetsIn);
      expect(r.a.bad + r.b.bad).toBe(0);
    });
  }

  for (const [family, route] of [['IPv4', V4], ['IPv6', V6]] as const) {
    it(`${family}: segmented by the reader thread (segment: true) and coalesced on write, the stream arrives intact`, async () => {
      const r = await streamThrough('reader segments', route, 24);
      expect(r.received).toBe(r.sent);
      // The reader split TSO super-packets (counted in its stats), JS saw only MTU-sized wire
      // packets whose checksums an independent TS implementation accepts, and the writes merged
      // them again.
      expect(r.superPackets).toBeGreaterThan(0);
      expect(r.a.oversized + r.b.oversized).toBe(0);
      expect(r.a.verified + r.b.verified).toBe(r.a.packetsIn + r.b.packetsIn);
      expect(r.a.bad + r.b.bad).toBe(0);
      expect(r.a.writes).toBeLessThan(r.a.packetsIn);
    });
  }

  it('IPv4: super-packets passed through untouched, the stream arrives intact', async () => {
    const r = await streamThrough('pass-through', V4, 24);
    expect(r.received).toBe(r.sent);
    expect(r.a.gsoReads).toBeGreaterThan(0);
  });
});
