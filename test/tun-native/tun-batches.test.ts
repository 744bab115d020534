/**
 * The zero-copy batch API against the real kernel: packets read through onBatches are lent in
 * place (exact bytes, valid only during the callback, copies stay valid), writePacked delivers
 * exact packets from one packed buffer, and the bounded queue still counts what a consumer that
 * does not keep up loses.
 */
import { execFileSync } from 'node:child_process';
import { expect, it } from '@jest/globals';
import { type PacketBatch, Tun, isNativeError } from '../../tun-native/index.js';
import { type Netns, withNetns } from '../helpers/netns.js';
import { ipv4Udp, parseUdp } from '../helpers/packets.js';
import { describeKernel } from '../helpers/tiers.js';
import { addressUp, linkDetails, udpListen, udpSend, until } from '../helpers/tun-netns.js';

const payload = (tag: string) => Buffer.from(`tunkeeper ${tag} ${'y'.repeat(33)}`);

/** Packets the kernel dropped before our reader (its own queue full), and that queue's length. */
async function kernelQueue(ns: Netns, dev: string): Promise<{ dropped: number; length: number }> {
  const [link] = await ns.ipJson<Array<{ txqlen: number; stats64: { tx: { dropped: number } } }>>('-s', 'link', 'show', 'dev', dev);
  return { dropped: link?.stats64.tx.dropped ?? 0, length: link?.txqlen ?? 0 };
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describeKernel('onBatches: packets lent in place', () => {
  it('reads the exact packets sockets send, as views into one ring, in order', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkbr0', netns: ns.name, readBatch: 8 });
      try {
        await addressUp(ns, 'tkbr0', '192.0.2.1/24');
        const copies: Buffer[] = [];
        const counts: number[] = [];
        let viewsOk = true;
        const stop = tun.onBatches((batch) => {
          counts.push(batch.count);
          for (let i = 0; i < batch.count; i++) {
            const view = batch.packet(i);
            // A view, not a copy: the batch's ring memory, at the slot's offset and length.
            viewsOk &&= view.buffer === batch.buffer.buffer && view.byteOffset === batch.buffer.byteOffset + batch.offsets[i]! && view.length === batch.lengths[i];
            viewsOk &&= batch.offsets[i]! % 4 === 0 && Buffer.isBuffer(view);
            const copy = batch.copy(i);
            viewsOk &&= copy.equals(view) && copy.buffer !== batch.buffer.buffer;
            copies.push(copy);
          }
        });
        const payloads = Array.from({ length: 30 }, (_, i) => payload(`r${i}`));
        await udpSend(ns, '192.0.2.2', 5100, payloads, { bindAddress: '192.0.2.1', bindPort: 4100 });
        const udp = () => copies.filter((p) => parseUdp(p)?.dstPort === 5100);
        await until(() => udp().length === 30, '30 packets through onBatches');
        stop();
        expect(viewsOk).toBe(true);
        expect(counts.every((n) => n >= 1 && n <= 8)).toBe(true);
        // In order, byte for byte what an independent construction gives (the kernel picks the IP id).
        udp().forEach((packet, i) => {
          const seen = parseUdp(packet);
          expect(seen).toMatchObject({ version: 4, src: '192.0.2.1', dst: '192.0.2.2', srcPort: 4100, dstPort: 5100, checksumsOk: true });
          const expected = ipv4Udp({ src: '192.0.2.1', dst: '192.0.2.2', srcPort: 4100, dstPort: 5100, payload: payloads[i]!, id: seen?.id, dontFragment: seen?.dontFragment });
          expect(packet.equals(expected)).toBe(true);
        });
        expect(tun.stats()).toMatchObject({ dropped: 0, batches: counts.length, packetsRead: copies.length });
      } finally {
        await tun.close();
      }
    }));

  it('lends a batch only for its callback: afterwards it is empty and its ring is reused; copies stay', () =>
    withNetns(async (ns) => {
      await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']); // the first packet is ours
      // queueLimit 256: a ring of about 400 KiB, which the traffic below goes round.
      const tun = await Tun.open({ name: 'tkbl0', netns: ns.name, readBatch: 16, queueLimit: 256 });
      try {
        await addressUp(ns, 'tkbl0', '192.0.2.1/24');
        let kept: PacketBatch | undefined;
        let firstView: Buffer | undefined;
        let firstCopy: Buffer | undefined;
        let all: Buffer[] | undefined;
        let seen = 0;
        let sameObject = true;
        const stop = tun.onBatches((batch) => {
          if (kept === undefined) {
            kept = batch;
            firstView = batch.packet(0);
            firstCopy = batch.copy(0);
            all = batch.copyAll();
          }
          sameObject &&= batch === kept; // one PacketBatch object for every batch
          seen += batch.count;
        });
        await udpSend(ns, '192.0.2.2', 5200, [payload('first')], { bindPort: 4200 });
        await until(() => seen >= 1, 'the first batch');
        expect(kept!.count).toBe(0);
        expect(() => kept!.packet(0)).toThrow(/valid only during the callback/);
        expect(() => kept!.copy(0)).toThrow(RangeError);
        const before = Buffer.from(firstCopy!);
        expect(firstView!.equals(before)).toBe(true); // nothing has reused its room yet

        // The ring (queueLimit 256 x 1,600 bytes) holds at most ~1,800 of these 228-byte packets:
        // once the reader has delivered more than that since the first, the first packet's room
        // has been written again. A busy machine drops part of a flood (the device's queue, the
        // reader's), so floods are sent until that many were delivered, not a fixed number.
        const ringPackets = Math.ceil((256 * 1600) / (20 + 8 + 200));
        let sent = 1;
        while (seen < 1 + ringPackets) {
          await udpSend(ns, '192.0.2.2', 5201, [Buffer.alloc(200, 0x5a)], { repeat: 3000, bindPort: 4201 });
          sent += 3000;
          await until(async () => seen + tun.stats().dropped + (await kernelQueue(ns, 'tkbl0')).dropped >= sent, 'a flood read or dropped');
        }
        stop();
        expect(sameObject).toBe(true);
        expect(firstView!.equals(before)).toBe(false); // a view kept past its callback: garbage
        expect(firstCopy!.equals(before)).toBe(true); // a copy: still the packet
        expect(all![0]!.equals(before)).toBe(true);
        expect(parseUdp(firstCopy!)?.payload).toEqual(payload('first'));
      } finally {
        await tun.close();
      }
    }));

  it('bounds the queue for a callback that blocks: the excess is dropped and counted', () =>
    withNetns(async (ns) => {
      const readBatch = 32;
      const queueLimit = 256;
      await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']); // only our UDP on the device
      const tun = await Tun.open({ name: 'tkbq0', netns: ns.name, readBatch, queueLimit });
      try {
        await addressUp(ns, 'tkbq0', '192.0.2.1/24');
        const sent = 4000;
        // A sender run synchronously: while it runs, the JS thread is stuck in the first callback
        // and the reader thread fills its queue.
        const sender = [
          "const s = require('node:dgram').createSocket('udp4'); const b = Buffer.alloc(64, 1); let left = " + sent + ';',
          "const next = () => left-- > 0 ? s.send(b, 5300, '192.0.2.2', next) : s.close(); next();",
        ].join('\n');
        let taken = 0;
        let blocked = false;
        const stop = tun.onBatches((batch) => {
          for (let i = 0; i < batch.count; i++) if (parseUdp(batch.packet(i))?.dstPort === 5300) taken++;
          if (!blocked) {
            blocked = true;
            execFileSync('ip', ['netns', 'exec', ns.name, process.execPath, '-e', sender]);
          }
        });
        await udpSend(ns, '192.0.2.2', 5300, [Buffer.alloc(64, 1)]); // the first batch, which blocks
        const kernelDropped = async () => (await kernelQueue(ns, 'tkbq0')).dropped;
        // Every packet is accounted for: taken, dropped by our queue, or by the kernel before it.
        await until(async () => taken + tun.stats().dropped + (await kernelDropped()) >= sent + 1, 'every packet to be accounted for');
        stop();
        expect(taken + tun.stats().dropped + (await kernelDropped())).toBe(sent + 1);
        expect(tun.stats().dropped).toBeGreaterThan(0);
        // What was kept while the callback blocked: at most our limit, plus the batch it held, plus
        // what still sat in the kernel's queue when it returned (if the reader thread lagged).
        const { length } = await kernelQueue(ns, 'tkbq0');
        expect(taken).toBeLessThanOrEqual(queueLimit + 2 * readBatch + length);
        expect(taken).toBeLessThan(sent / 2);
      } finally {
        await tun.close();
      }
    }));
  it('may be stopped or the Tun closed from inside the callback: no packet is lost or delivered twice', () =>
    withNetns(async (ns) => {
      await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']); // only our UDP on the device
      const tun = await Tun.open({ name: 'tkbs0', netns: ns.name, readBatch: 4 });
      try {
        await addressUp(ns, 'tkbs0', '192.0.2.1/24');
        const payloads = Array.from({ length: 12 }, (_, i) => payload(`s${i}`));
        const seen: string[] = [];
        let stop: () => void = () => undefined;
        stop = tun.onBatches((batch) => {
          for (let i = 0; i < batch.count; i++) seen.push(parseUdp(batch.packet(i))!.payload.toString());
          stop(); // after the first batch
        });
        await udpSend(ns, '192.0.2.2', 5500, payloads);
        await until(() => seen.length > 0, 'the first batch');
        // The rest waits in the reader's queue; a new consumer gets exactly the rest, in order.
        const rest = tun.packets();
        while (seen.length < 12) {
          const r = await rest.next();
          if (r.done) throw new Error('the iterator ended early');
          seen.push(parseUdp(r.value)!.payload.toString());
        }
        await rest.return?.();
        expect(seen).toEqual(payloads.map((p) => p.toString()));

        let ended: unknown = 'not yet';
        let batches = 0;
        tun.onBatches(
          (batch) => {
            batches++;
            batch.copyAll();
            void tun.close();
          },
          (error) => {
            ended = error;
          },
        );
        await udpSend(ns, '192.0.2.2', 5501, payloads);
        await until(() => tun.closed, 'the close from inside the callback');
        await tun.close();
        expect(batches).toBe(1);
        expect(ended).toBeUndefined(); // onEnd without an error: closed, not failed
        expect(await linkDetails(ns, 'tkbs0')).toBeUndefined();
      } finally {
        await tun.close();
      }
    }));
});

describeKernel('writePacked: one packed buffer per batch', () => {
  const packet = (i: number) => ipv4Udp({ src: '192.0.2.2', dst: '192.0.2.1', srcPort: 4400, dstPort: 5400, payload: payload(`p${i}`.repeat(1 + (i % 5))), id: i });

  it('delivers the exact packets of a packed batch, each once, and honours count', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkbw0', netns: ns.name });
      try {
        await addressUp(ns, 'tkbw0', '192.0.2.1/24');
        const listener = udpListen(ns, '192.0.2.1', 5400, 13);
        await listener.ready;
        const packets = Array.from({ length: 13 }, (_, i) => packet(i)); // of different sizes
        const packed = Buffer.concat(packets.slice(0, 10));
        const lengths = Uint32Array.from(packets.slice(0, 10), (p) => p.length);
        expect(tun.writePacked(packed, lengths)).toBe(10);
        // count: only the first ones; a Uint8Array that is a view into a larger buffer works too.
        const tail = Buffer.concat([Buffer.alloc(7), ...packets.slice(10)]);
        const view = new Uint8Array(tail.buffer, tail.byteOffset + 7, tail.length - 7);
        const tailLengths = Uint32Array.from([...packets.slice(10).map((p) => p.length), 999]);
        expect(tun.writePacked(view, tailLengths, 3)).toBe(3);
        expect(tun.writePacked(view, tailLengths, 0)).toBe(0);
        const got = await listener.received;
        expect(got.map((d) => d.payload.toString()).sort()).toEqual(packets.map((p) => parseUdp(p)!.payload.toString()).sort());
        for (const d of got) expect([d.from, d.port]).toEqual(['192.0.2.2', 4400]);
        const bytes = packets.reduce((n, p) => n + p.length, 0);
        expect(tun.stats()).toMatchObject({ packetsWritten: 13, bytesWritten: bytes });
      } finally {
        await tun.close();
      }
    }));

  it('checks its arguments before writing anything; stops at the first failing packet like writeBatch', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkbx0', netns: ns.name });
      try {
        await addressUp(ns, 'tkbx0', '192.0.2.1/24');
        const good = packet(1);
        const two = Buffer.concat([good, good]);
        expect(() => tun.writePacked(two, Uint32Array.of(good.length, good.length + 1))).toThrow(/add up to .* more than the .* given \(nothing was written\)/);
        expect(() => tun.writePacked(two, Uint32Array.of(good.length), 2)).toThrow(RangeError);
        expect(() => tun.writePacked(two, Uint32Array.of(good.length), 0.5)).toThrow(/whole number/);
        expect(() => tun.writePacked(two, [good.length] as unknown as Uint32Array)).toThrow(/Uint32Array of lengths/);
        expect(() => tun.writePacked('x' as unknown as Buffer, Uint32Array.of(1))).toThrow(/Buffer or Uint8Array/);
        expect(tun.stats().packetsWritten).toBe(0);
        // An empty frame is refused by the kernel: after a good one, the count says so...
        expect(tun.writePacked(two, Uint32Array.of(good.length, 0, good.length))).toBe(1);
        // ...and first, it throws the kernel's error.
        expect(isNativeError(thrown(() => tun.writePacked(two, Uint32Array.of(0, good.length))), 'EINVAL')).toBe(true);
        expect(tun.stats().packetsWritten).toBe(1);
        await tun.close();
        expect(isNativeError(thrown(() => tun.writePacked(good, Uint32Array.of(good.length))), 'EBADF')).toBe(true);
      } finally {
        await tun.close();
      }
    }));
});
