/**
 * TUN lifecycle across process exit, and under a flood (issue #6, item 9).
 * - A child process opens a device (persistent or not), with or without a reader blocked in
 *   `for await`, and ends every way a process ends: it returns after close(), calls
 *   process.exit() with the handle open, dies of an uncaught exception, or is SIGKILLed. A
 *   non-persistent device goes with it; a persistent one stays, and this process reattaches to
 *   the very same device (same ifindex) and can remove it.
 * - A reader that does not keep up under a flood counts drops instead of growing memory: rounds
 *   of ever more packets leave the RSS where the first round left it, the drops are counted, and
 *   close() still wakes the reader.
 */
import { expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { Tun } from '../../tun-native/index.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { addressUp, linkDetails, openFdCount, tunModuleUrl, udpSend, until } from '../helpers/tun-netns.js';
import { scale } from './helpers/scale.js';

type Ending = 'return' | 'exit' | 'throw' | 'sigkill';
const ENDINGS: Ending[] = ['return', 'exit', 'throw', 'sigkill'];

const CHILD = `
const { Tun } = await import(process.argv[1]);
const [, , ns, name, persist, reader, ending] = process.argv;
const tun = await Tun.open({ name, netns: ns, persist: persist === 'true' });
let loop;
if (reader === 'true') loop = (async () => { for await (const _p of tun.packets()); return 'completed'; })();
process.stdout.write('ready ' + tun.ifindex + '\\n');
await new Promise((r) => setTimeout(r, 20));
if (ending === 'return') { await tun.close(); if (loop) process.stdout.write((await loop) + '\\n'); }
else if (ending === 'exit') process.exit(0);
else if (ending === 'throw') throw new Error('the child fails');
else setInterval(() => {}, 1000); // waits for SIGKILL
`;

interface ChildEnd {
  ifindex: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
}

function runChild(ns: Netns, name: string, persist: boolean, reader: boolean, ending: Ending): Promise<ChildEnd> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, '--', tunModuleUrl, ns.name, name, String(persist), String(reader), ending], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let ifindex = 0;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const m = /ready (\d+)/.exec(stdout);
      if (m && ifindex === 0) {
        ifindex = Number(m[1]);
        if (ending === 'sigkill') child.kill('SIGKILL');
      }
    });
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ ifindex, code, signal, stdout }));
  });
}

describeKernel('TUN lifecycle: process exit, and a flooded reader', () => {
  it('every way a process ends × persistent or not × with or without a blocked reader', () =>
    withNetns(async (ns) => {
      const cases = ENDINGS.flatMap((ending) => [false, true].flatMap((persist) => [false, true].map((reader) => ({ ending, persist, reader }))));
      const results = await Promise.all(
        cases.map(async (c, i) => {
          const name = `tk-exit${i}`;
          const end = await runChild(ns, name, c.persist, c.reader, c.ending);
          return { ...c, name, end };
        }),
      );
      for (const r of results) {
        const what = `${r.ending}, persist ${r.persist}, reader ${r.reader}`;
        expect({ what, started: r.end.ifindex > 0 }).toEqual({ what, started: true });
        const how = r.ending === 'sigkill' ? 'SIGKILL' : r.ending === 'throw' ? 'code 1' : 'code 0';
        expect({ what, ended: r.end.signal ?? `code ${r.end.code}` }).toEqual({ what, ended: how });
        if (r.ending === 'return' && r.reader) expect(r.end.stdout).toContain('completed'); // close() woke the reader
        const link = await linkDetails(ns, r.name);
        expect({ what, exists: link !== undefined }).toEqual({ what, exists: r.persist });
        if (r.persist) {
          // The same device, reattached by another process; then removed by turning persist off.
          const tun = await Tun.open({ name: r.name, netns: ns.name });
          expect({ what, ifindex: tun.ifindex }).toEqual({ what, ifindex: r.end.ifindex });
          tun.setPersist(false);
          await tun.close();
          expect(await linkDetails(ns, r.name)).toBeUndefined();
        }
      }
      expect(results).toHaveLength(16);
    }));

  it('a reader that does not keep up drops and counts, memory stays put, close() wakes it', () =>
    withNetns(async (ns) => {
      await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']); // only our UDP on the device
      const fdsBefore = openFdCount();
      const tun = await Tun.open({ name: 'tk-flood0', netns: ns.name, queueLimit: 1024 });
      try {
        await addressUp(ns, 'tk-flood0', '192.0.2.1/24');
        const packets = tun.packets(); // started, never taken from until the end
        const first = packets.next(); // one waiter: the reader is running and blocked
        const payload = Buffer.alloc(512, 7);
        const perRound = scale(20_000, 200_000);
        const rounds = scale(4, 8);
        const rss: number[] = [];
        let sent = 0;
        const kernelDropped = async () => {
          const [l] = await ns.ipJson<Array<{ stats64: { tx: { dropped: number } } }>>('-s', 'link', 'show', 'dev', 'tk-flood0');
          return l!.stats64.tx.dropped;
        };
        for (let r = 0; r < rounds; r++) {
          await udpSend(ns, '192.0.2.2', 5000, [payload], { repeat: perRound });
          sent += perRound;
          // Settled: the reader has taken (and queued or dropped) whatever reached the device.
          let last = -1;
          let still = 0;
          await until(async () => {
            const seen = tun.stats().packetsRead + tun.stats().dropped + (await kernelDropped());
            still = seen === last ? still + 1 : 0;
            last = seen;
            return still >= 3;
          }, 'the flood to settle');
          (globalThis as { gc?: () => void }).gc?.();
          rss.push(process.memoryUsage().rss);
        }
        const s = tun.stats();
        const dk = await kernelDropped();
        console.log(
          `flooded reader: ${sent} packets of ${payload.length} bytes in ${rounds} rounds; read ${s.packetsRead}, dropped by the reader ${s.dropped}, ` +
            `dropped by the kernel ${dk}; RSS ${rss.map((x) => Math.round(x / 2 ** 20)).join(' → ')} MiB`,
        );
        // Held in memory: at most the queue limit and what JS holds (one batch), not the flood.
        expect(s.packetsRead).toBeLessThanOrEqual(1024 + 2 * 64);
        // Most of the flood is dropped. Which queue drops it depends on how fast the reader thread
        // is scheduled: a starved one leaves it to the device's own queue (500). The reader drops
        // some in any case: each settled round hands it at least those 500, and four rounds are
        // more than its limit plus what JS holds.
        expect(s.dropped).toBeGreaterThan(0);
        expect(s.dropped + dk).toBeGreaterThan(sent / 2);
        // Rounds 2.. add as many packets again each time, and no memory: the growth from the first
        // round to the last is below one round's payload (perRound × 512 bytes ≥ 9.7 MiB).
        expect(rss[rss.length - 1]! - rss[0]!).toBeLessThan(perRound * payload.length);

        // The blocked reader got its packet; close() then ends the iteration (no hang, no error).
        expect((await first).done).toBe(false);
        const rest = (async () => {
          let n = 0;
          for await (const _p of packets) n++;
          return n;
        })();
        await tun.close();
        expect(await rest).toBeLessThanOrEqual(1024 + 2 * 64);
      } finally {
        await tun.close();
      }
      expect(await linkDetails(ns, 'tk-flood0')).toBeUndefined();
      expect(openFdCount()).toBe(fdsBefore);
    }), scale(5, 30) * 60_000);
});
