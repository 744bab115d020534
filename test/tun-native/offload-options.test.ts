/**
 * The offload data path's open options and read-side backpressure. Options: what offload: 'auto'
 * and overflow turn into, and what they refuse. Backpressure, against the kernel: a reader that
 * falls behind leaves packets in the device's kernel queue instead of reading and dropping them
 * (what keeps a forwarded TCP stream from losing segments).
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from '@jest/globals';
import { netnsPath, Tun } from '../../tun-native/index.js';
import { IFF_VNET_HDR, resolveOpenOptions, TUN_F, offloadFromBits, type TunOpenOptions } from '../../tun-native/tun-options.js';
import { type Netns, withNetns } from '../helpers/netns.js';
import { parseUdp } from '../helpers/packets.js';
import { describeKernel } from '../helpers/tiers.js';
import { addressUp, udpSend, until } from '../helpers/tun-netns.js';

const resolve = (opts: TunOpenOptions) => resolveOpenOptions(opts, netnsPath).request;

describe('offload and overflow options', () => {
  it("offload: 'auto' asks for csum, TSO and USO, with USO optional (dropped on kernels that refuse it)", () => {
    const r = resolve({ vnetHdr: true, offload: 'auto' });
    expect(r.flags & IFF_VNET_HDR).toBe(IFF_VNET_HDR);
    expect(r.offload).toBe(TUN_F.csum | TUN_F.tso4 | TUN_F.tso6 | TUN_F.uso4 | TUN_F.uso6);
    expect(r.offloadOptional).toBe(TUN_F.uso4 | TUN_F.uso6);
    expect(() => resolve({ offload: 'auto' })).toThrow(/offload needs vnetHdr: true/);
    expect(resolve({ vnetHdr: true, offload: { csum: true } }).offloadOptional).toBeUndefined();
  });

  it('names the offloads a set of TUN_F bits stands for', () => {
    expect(offloadFromBits(TUN_F.csum | TUN_F.tso4)).toEqual({ csum: true, tso4: true, tso6: false, tsoEcn: false, ufo: false, uso4: false, uso6: false });
  });

  it("takes overflow 'drop' or 'backpressure', nothing else", () => {
    expect(resolve({ overflow: 'backpressure' }).overflow).toBe('backpressure');
    expect(resolve({ overflow: 'drop' }).overflow).toBeUndefined();
    expect(() => resolve({ overflow: 'block' as never })).toThrow(/overflow must be 'drop' or 'backpressure'/);
  });
});

async function kernelDropped(ns: Netns, dev: string): Promise<number> {
  const [link] = await ns.ipJson<Array<{ stats64: { tx: { dropped: number } } }>>('-s', 'link', 'show', 'dev', dev);
  return link?.stats64.tx.dropped ?? 0;
}

describeKernel('overflow: backpressure', () => {
  it('a callback that blocks makes the reader wait, not drop: every packet arrives, in order', () =>
    withNetns(async (ns) => {
      await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']); // only our UDP on the device
      // A queue of 16 packets: the flood below is 20 times that.
      const tun = await Tun.open({ name: 'tkbp0', netns: ns.name, readBatch: 8, queueLimit: 16, overflow: 'backpressure' });
      try {
        await addressUp(ns, 'tkbp0', '192.0.2.1/24');
        await ns.ip('link', 'set', 'tkbp0', 'txqueuelen', '1000');
        const sent = 320;
        // Run synchronously from inside the first callback: meanwhile the JS thread is stuck and
        // the reader's queue is full long before the sender is done.
        const sender = [
          "const s = require('node:dgram').createSocket('udp4'); let i = 0;",
          `const next = () => { if (i >= ${sent}) return s.close(); const b = Buffer.alloc(64); b.writeUInt32BE(i++); s.send(b, 5400, '192.0.2.2', next); }; next();`,
        ].join('\n');
        const order: number[] = [];
        let blocked = false;
        const stop = tun.onBatches((batch) => {
          for (let i = 0; i < batch.count; i++) {
            const udp = parseUdp(batch.packet(i));
            if (udp?.dstPort === 5400 && udp.payload.length === 64) order.push(udp.payload.readUInt32BE(0));
          }
          if (!blocked) {
            blocked = true;
            execFileSync('ip', ['netns', 'exec', ns.name, process.execPath, '-e', sender]);
          }
        });
        await udpSend(ns, '192.0.2.2', 5401, [Buffer.alloc(8)]); // the first batch, which blocks
        await until(() => order.length >= sent, `all ${sent} packets`);
        stop();
        expect(order).toEqual(Array.from({ length: sent }, (_, i) => i));
        expect(tun.stats().dropped).toBe(0);
        expect(await kernelDropped(ns, 'tkbp0')).toBe(0);
      } finally {
        await tun.close();
      }
    }));
});
