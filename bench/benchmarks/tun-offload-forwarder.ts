/**
 * tunkeeper's forwarder for tun-offload-gbps, run as its own process (pinned like the peers):
 *
 *   tun-offload-forwarder.js MODE NETNS_A DEV_A NETNS_B DEV_B
 *
 * Creates TUN device DEV_A in NETNS_A and DEV_B in NETNS_B with tunkeeper's Tun, prints "ready",
 * and forwards each batch the reader lends from one device to the other until killed. Modes:
 *   offload       vnetHdr + offload 'auto', read with { segment: true }: the reader thread splits
 *                 super-packets into wire packets (as a VPN that must see every packet needs),
 *                 each batch written with writeCoalesced (GRO) — the same work tun-rs's
 *                 recv_multiple/send_multiple do;
 *   offload-js    the same with segment() on the JS thread (each lent batch of super-packets
 *                 split into an arena there), then writeCoalesced;
 *   pass-through  vnetHdr + offload 'auto': super-packets written on untouched (writeList);
 *   plain         no vnetHdr: MTU-sized packets, writeList — the same JS code, which is what the
 *                 3× target is measured against.
 */
import { Tun, type PacketBatch } from '../../tun-native/index.js';

type Mode = 'offload' | 'offload-js' | 'pass-through' | 'plain';

function fail(msg: string): never {
  process.stderr.write(`tun-offload-forwarder: ${msg}\n`);
  process.exit(1);
}

let dropped = 0;

function forward(from: Tun, to: Tun, mode: Mode): void {
  const write =
    mode === 'offload'
      ? (batch: PacketBatch) => to.writeCoalesced(batch)
      : mode === 'offload-js'
        ? (batch: PacketBatch) => to.writeCoalesced(from.segment(batch))
        : (batch: PacketBatch) => to.writeList(batch);
  from.onBatches(
    (batch) => {
      try {
        write(batch);
      } catch {
        // EIO before the link is up, or a packet the kernel refuses: dropped, as forwarders do.
        dropped++;
      }
    },
    {
      segment: mode === 'offload',
      onEnd: (error) => {
        if (error) fail(`reader of ${from.name} ended: ${error.message}`);
      },
    },
  );
}

async function main(): Promise<void> {
  const [mode, nsA, devA, nsB, devB] = process.argv.slice(2);
  if ((mode !== 'offload' && mode !== 'offload-js' && mode !== 'pass-through' && mode !== 'plain') || !nsA || !devA || !nsB || !devB) {
    fail('usage: tun-offload-forwarder.js offload|offload-js|pass-through|plain NETNS_A DEV_A NETNS_B DEV_B');
  }
  const vnet = mode !== 'plain';
  // Backpressure: a TCP stream is slowed by the kernel's queue rather than losing segments that
  // were read and could not be queued.
  const open = (netns: string, name: string) =>
    Tun.open({
      name,
      netns,
      overflow: 'backpressure',
      ...(vnet ? { vnetHdr: true, offload: 'auto' as const } : {}),
      // Segmented, a batch counts wire packets: a TSO super-packet is ~45 of them, and one cut by
      // a batch boundary is coalesced into two writes. 1,024 keeps about 22 super-packets per batch.
      ...(mode === 'offload' ? { readBatch: 1024 } : {}),
    });
  const a = await open(nsA, devA);
  const b = await open(nsB, devB);
  if (vnet && !(a.offload?.tso4 && b.offload?.tso4)) fail('the kernel did not take TCP segmentation offload');
  forward(a, b, mode);
  forward(b, a, mode);
  process.on('SIGTERM', () => {
    // For profiling: crossings into JS (batches) against packets read and written.
    const s = [a.stats(), b.stats()];
    const sum = (k: 'batches' | 'packetsRead' | 'packetsWritten' | 'bytesRead') => s[0]![k] + s[1]![k];
    process.stderr.write(
      `tun-offload-forwarder: ${sum('batches')} batches, ${sum('packetsRead')} packets read (${sum('bytesRead')} bytes), ` +
        `${sum('packetsWritten')} written, ${dropped} batch write(s) failed\n`,
    );
    process.exit(0);
  });
  process.stdout.write('ready\n');
}

main().catch((e: unknown) => fail(e instanceof Error ? (e.stack ?? e.message) : String(e)));
