/**
 * Lifecycle orderings, after the kernel's tun selftests: open/close/reopen, closing under a
 * blocked reader, deleting the device from outside, garbage collection, process and worker exit,
 * fd leaks over many cycles, and the bounded reader queue under a flood.
 */
import { expect, it } from '@jest/globals';
import { NativeError, Tun, isNativeError } from '../../tun-native/index.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { ipv4Udp, parseUdp } from '../helpers/packets.js';
import { describeKernel } from '../helpers/tiers.js';
import { addressUp, firstMatching, linkDetails, openFdCount, runNode, tunModuleUrl, udpSend, until } from '../helpers/tun-netns.js';

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

describeKernel('lifecycle', () => {
  it('opens, closes and reopens the same name; close is idempotent', () =>
    withNetns(async (ns) => {
      for (let i = 0; i < 3; i++) {
        const tun = await Tun.open({ name: 'tkl0', netns: ns.name });
        expect(tun.closed).toBe(false);
        expect((await linkDetails(ns, 'tkl0'))?.ifindex).toBe(tun.ifindex);
        const closing = tun.close();
        expect(tun.closed).toBe(true);
        expect(tun.close()).toBe(closing);
        await closing;
        await tun.close();
        expect(await linkDetails(ns, 'tkl0')).toBeUndefined();
      }
    }));

  it('close() wakes a reader blocked in packets(): the loop completes', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkw0', netns: ns.name });
      let received = 0;
      const loop = (async () => {
        for await (const _packet of tun.packets()) received++;
        return 'completed';
      })();
      await tick(50); // the loop is now waiting in next(), the native reader in poll()
      await tun.close();
      expect(await loop).toBe('completed');
      expect(received).toBe(0);
    }));

  it('close() ends an onPackets consumer (onEnd without error) and later use gets EBADF', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkw1', netns: ns.name });
      const ends: Array<NativeError | undefined> = [];
      tun.onPackets(
        () => undefined,
        (err) => ends.push(err),
      );
      await tun.close();
      expect(ends).toEqual([undefined]);
      const checks: Array<() => unknown> = [
        () => tun.writeSync(Buffer.alloc(40)),
        () => tun.writeBatch([Buffer.alloc(40)]),
        () => tun.packets(),
        () => tun.onPackets(() => undefined),
        () => tun.setPersist(true),
        () => tun.setOwner(1),
      ];
      for (const check of checks) {
        let caught: unknown;
        try {
          check();
        } catch (e) {
          caught = e;
        }
        expect(isNativeError(caught, 'EBADF')).toBe(true);
        expect((caught as Error).message).toMatch(/tun device 'tkw1'.*the handle is closed/);
      }
      await expect(tun.write(Buffer.alloc(40))).rejects.toMatchObject({ code: 'EBADF' });
    }));

  it('ends the reader with ENODEV when the device is deleted from outside', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkd0', netns: ns.name });
      const it2 = tun.packets();
      const next = it2.next().then(
        () => undefined,
        (e: unknown) => e,
      );
      await tick(20);
      await ns.ip('link', 'del', 'tkd0');
      const caught = await next;
      expect(isNativeError(caught, 'ENODEV')).toBe(true);
      expect((caught as Error).message).toMatch(/tun device 'tkd0' \(it was deleted while open\)/);
      expect(await it2.next()).toEqual({ value: undefined, done: true });
      // Writes say the same; close still works.
      expect(() => tun.writeSync(ipv4Udp({ src: '192.0.2.2', dst: '192.0.2.1', srcPort: 1, dstPort: 2, payload: Buffer.alloc(8) }))).toThrow(
        /deleted while open/,
      );
      await tun.close();

      const cb = await Tun.open({ name: 'tkd1', netns: ns.name });
      const ended = new Promise<NativeError | undefined>((resolve) => cb.onPackets(() => undefined, resolve));
      await ns.ip('link', 'del', 'tkd1');
      expect((await ended)?.code).toBe('ENODEV');
      // The consumer is gone: a new one may start (and ends the same way at once).
      const again = new Promise<NativeError | undefined>((resolve) => cb.onPackets(() => undefined, resolve));
      expect((await again)?.code).toBe('ENODEV');
      await cb.close();
    }));

  it('leaks no fds over many open/read/close cycles', () =>
    withNetns(async (ns) => {
      const cycle = async (i: number) => {
        const tun = await Tun.open({ name: 'tkfd0', netns: ns.name, multiQueue: true, persist: i % 5 === 0 ? false : undefined });
        const queue = await tun.openQueue();
        if (i % 2 === 0) {
          const it2 = tun.packets();
          await it2.return?.();
          tun.packets();
        } else {
          const stop = queue.onPackets(() => undefined);
          if (i % 3 === 0) stop();
        }
        await Promise.all([tun.close(), queue.close()]);
      };
      await cycle(0); // warm-up: the libuv pool and its fds exist from here on
      const before = openFdCount();
      for (let i = 1; i <= 60; i++) await cycle(i);
      expect(openFdCount()).toBe(before);
      expect(await linkDetails(ns, 'tkfd0')).toBeUndefined();
    }));

  it('bounds the reader queue: a consumer that does not keep up loses packets, counted, not memory', () =>
    withNetns(async (ns) => {
      const readBatch = 32;
      const queueLimit = 256;
      await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']); // only our UDP on the device
      const tun = await Tun.open({ name: 'tkq0', netns: ns.name, readBatch, queueLimit });
      try {
        await addressUp(ns, 'tkq0', '192.0.2.1/24');
        const packets = tun.packets(); // started, but nothing is taken for now
        const flood = async (n: number) => {
          await udpSend(ns, '192.0.2.2', 5000, [Buffer.alloc(64, 1)], { repeat: n });
        };
        const kernelDropped = async () => {
          const [link] = await ns.ipJson<Array<{ stats64: { tx: { dropped: number } } }>>('-s', 'link', 'show', 'dev', 'tkq0');
          return link?.stats64.tx.dropped ?? 0;
        };
        // Takes packets until every one sent is accounted for: taken by us, dropped by our
        // queue, or dropped by the kernel before it (if the reader thread fell behind).
        let taken = 0;
        const drain = async (sent: number) => {
          let tookNow = 0;
          await until(async () => {
            while (tun.stats().packetsRead > taken) {
              const r = await packets.next();
              if (!r.done && parseUdp(r.value)?.dstPort === 5000) {
                taken++;
                tookNow++;
              }
            }
            return taken + tun.stats().dropped + (await kernelDropped()) >= sent;
          }, 'every packet of the flood to be accounted for');
          expect(taken + tun.stats().dropped + (await kernelDropped())).toBe(sent);
          return tookNow;
        };

        const sent1 = 4000;
        await flood(sent1);
        // JS holds about one batch (the iterator pauses deliveries), the rest waits natively.
        expect(tun.stats().packetsRead).toBeLessThanOrEqual(2 * readBatch);
        // Never more than the limit plus what JS held was kept.
        expect(await drain(sent1)).toBeLessThanOrEqual(queueLimit + 2 * readBatch);
        // Counted once drained, not right after the flood (a reader thread not yet scheduled has
        // dropped nothing then): the device's queue (500) is longer than ours plus what JS holds
        // (256 + 64), so the reader drops some however late it ran.
        const dropped1 = tun.stats().dropped;
        expect(dropped1).toBeGreaterThan(0);
        const rssAfterFirst = process.memoryUsage().rss;

        // A ten times bigger flood costs no more memory: the excess is dropped, not buffered.
        await flood(10 * sent1);
        expect(process.memoryUsage().rss - rssAfterFirst).toBeLessThan(64 << 20);
        expect(await drain(11 * sent1)).toBeLessThanOrEqual(queueLimit + 2 * readBatch);
        // (drain() checked that taken + ours + the kernel's drops add up to what was sent; which
        // of the two queues drops more depends on how fast the reader thread is scheduled.)
        expect(tun.stats().dropped).toBeGreaterThan(dropped1);

        // And the reader still works once the consumer has caught up.
        await udpSend(ns, '192.0.2.2', 5009, [Buffer.from('after the flood')]);
        const after = await firstMatching(packets, (p) => parseUdp(p)?.dstPort === 5009);
        expect(parseUdp(after)?.payload.toString()).toBe('after the flood');
        await packets.return?.();
      } finally {
        await tun.close();
      }
    }));
});

async function gone(ns: Netns, name: string): Promise<boolean> {
  return (await linkDetails(ns, name)) === undefined;
}

describeKernel('lifecycle: garbage collection and exit', () => {
  it('closes the fd of a handle that is garbage-collected', () =>
    withNetns(async (ns) => {
      const script = `
        import { readdirSync } from 'node:fs';
        const { Tun } = await import(${JSON.stringify(tunModuleUrl)});
        const ns = process.argv[1];
        const fds = () => readdirSync('/proc/self/fd').length;
        await (await Tun.open({ name: 'tkgc0', netns: ns })).close(); // warm-up
        const before = fds();
        await Tun.open({ name: 'tkgc0', netns: ns }); // dropped at once
        const during = fds();
        // Collected and closed in the runtime's own time: collect until the fd is gone, for as
        // long as a hang guard allows (a handle that leaks its fd fails below).
        const guard = Date.now() + 30000;
        while (fds() > before && Date.now() < guard) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
        console.log(JSON.stringify({ before, during, after: fds() }));
      `;
      const r = await runNode(script, { args: [ns.name], nodeFlags: ['--expose-gc'] });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const { before, during, after } = JSON.parse(r.stdout) as { before: number; during: number; after: number };
      expect(during).toBe(before + 1);
      expect(after).toBe(before);
      expect(await gone(ns, 'tkgc0')).toBe(true);
    }));

  it('exits promptly and cleanly with open devices and running readers', () =>
    withNetns(async (ns) => {
      const prelude = `
        const { Tun } = await import(${JSON.stringify(tunModuleUrl)});
        const ns = process.argv[1];
        const tun = await Tun.open({ name: 'tkex0', netns: ns, persist: false });
        const idle = await Tun.open({ name: 'tkex1', netns: ns }); // no reader at all
        await new Promise((r) => setTimeout(r, 0));
      `;
      const variants: Record<string, string> = {
        'process.exit() with a referenced reader': `tun.onPackets(() => {}); setTimeout(() => process.exit(0), 50);`,
        'an unreferenced reader lets the loop end': `tun.onPackets(() => {}); tun.unref();`,
        'an unreferenced iterator lets the loop end': `tun.packets().next().then(() => {}, () => {}); tun.unref();`,
        'ref() after unref() keeps it alive until close()': `tun.onPackets(() => {}); tun.unref(); tun.ref(); setTimeout(() => tun.close(), 100);`,
        'process.exit() in a busy reader': `tun.onPackets(() => { const t = Date.now(); while (Date.now() - t < 5); }); setTimeout(() => process.exit(0), 50);`,
      };
      for (const [what, body] of Object.entries(variants)) {
        const r = await runNode(prelude + body, { args: [ns.name], guardMs: 60000 });
        expect({ what, code: r.code, signal: r.signal, stderr: r.stderr }).toEqual({ what, code: 0, signal: null, stderr: '' });
        expect(await gone(ns, 'tkex0')).toBe(true);
        expect(await gone(ns, 'tkex1')).toBe(true);
      }
    }));

  it('closes devices and stops readers of a worker thread that is terminated', () =>
    withNetns(async (ns) => {
      const script = `
        import { Worker } from 'node:worker_threads';
        import { readdirSync } from 'node:fs';
        const fds = () => readdirSync('/proc/self/fd').length;
        const ns = process.argv[1];
        const body = \`
          const { parentPort, workerData } = await import('node:worker_threads');
          const { Tun } = await import(\${JSON.stringify(${JSON.stringify(tunModuleUrl)})});
          const tun = await Tun.open({ name: 'tkwk' + workerData.i, netns: workerData.ns });
          tun.onPackets(() => {});
          const q = await Tun.open({ name: 'tkwq' + workerData.i, netns: workerData.ns });
          parentPort.postMessage('ready');
        \`;
        const run = async (i) => {
          const w = new Worker(body, { eval: true, workerData: { ns, i } });
          await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
          await w.terminate();
        };
        await run(0); // warm-up
        const before = fds();
        for (let i = 1; i <= 5; i++) await run(i);
        console.log(JSON.stringify({ before, after: fds() }));
      `;
      const r = await runNode(script, { args: [ns.name] });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const { before, after } = JSON.parse(r.stdout) as { before: number; after: number };
      expect(after).toBe(before);
      const links = await ns.ipJson<Array<{ ifname: string }>>('link', 'show');
      expect(links.map((l) => l.ifname)).toEqual(['lo']);
    }));
});
