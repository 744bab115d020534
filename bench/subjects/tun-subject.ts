/**
 * The tunkeeper side of tun-read-pps / tun-write-pps, run as its own process (pinned like the C
 * reference, fresh V8 per sample). Same arguments and line protocol as bench/ref/tun_loop.c:
 *
 *   tun-subject.js read|write DEV WARMUP_S SECONDS SRC DST PAYLOAD [BATCH [plain|offload]]
 *
 * offload: the Tun opened with vnetHdr and offload 'auto'; reads count the wire packets of
 * batches read with { segment: true } (the reader thread splits GSO super-packets), writes go through
 * Tun.writeCoalesced() (runs of one flow merged into super-packets where the kernel allows).
 * BATCH (default 64) is the readBatch of reads and the packets per writePacked call of writes
 * (the bench's throughput-against-batch-size chart varies it).
 * attaches to the existing TUN device DEV with tunkeeper's Tun, prints "ready", waits for a line
 * on stdin, runs WARMUP_S seconds uncounted, then SECONDS counted, and prints one JSON line:
 * {"packets", "seconds", "cpuSeconds"(all threads of the process), "firstLen"(read only)}.
 */
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildIpv4Udp } from '../packet.js';

/** The part of tunkeeper's Tun this subject uses (typed here so the bench does not depend on more). */
interface BatchLike {
  readonly count: number;
  readonly lengths: Uint32Array;
}
interface ListLike {
  readonly buffer: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly count: number;
}
interface TunLike {
  onBatches(cb: (batch: BatchLike & ListLike) => void, options?: { segment?: boolean }): () => void;
  writeCoalesced(list: ListLike): number;
  writePacked(bytes: Uint8Array, lengths: Uint32Array, count?: number): number;
  close(): Promise<void>;
}
interface TunModule {
  Tun?: { open(options: { name: string; mode: 'tun'; readBatch?: number; vnetHdr?: boolean; offload?: 'auto' }): Promise<TunLike>; prototype?: Partial<TunLike> };
}

const DEFAULT_BATCH = 64;

function fail(msg: string): never {
  process.stderr.write(`tun-subject: ${msg}\n`);
  process.exit(1);
}

async function openTun(dev: string, readBatch: number | undefined, offload: boolean): Promise<TunLike> {
  const mod = (await import('../../tun-native/index.js')) as unknown as TunModule;
  if (typeof mod.Tun?.open !== 'function') fail('tunkeeper/tun exports no Tun yet (is the Tun facade built?)');
  if (typeof mod.Tun.prototype?.onBatches !== 'function') fail('tunkeeper/tun has no Tun.onBatches/writePacked (is the Tun facade built?)');
  return mod.Tun.open({ name: dev, mode: 'tun', ...(readBatch === undefined ? {} : { readBatch }), ...(offload ? { vnetHdr: true, offload: 'auto' as const } : {}) });
}

async function handshake(): Promise<void> {
  process.stdout.write('ready\n');
  const rl = createInterface({ input: process.stdin });
  const it = rl[Symbol.asyncIterator]();
  const first = await it.next();
  rl.close();
  if (first.done) fail('stdin closed before go');
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function nowSeconds(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

async function read(dev: string, warmup: number, seconds: number, batch: number, offload: boolean): Promise<object> {
  const tun = await openTun(dev, batch, offload);
  await handshake();
  let count = 0;
  let firstLen = -1;
  // The fastest public read path: batches lent in place, as a consumer that parses packets where
  // they lie would use it; offloaded, the batches hold wire packets split on the reader thread.
  const off = tun.onBatches(
    (batch) => {
      if (firstLen < 0 && batch.count > 0) firstLen = batch.lengths[0]!;
      count += batch.count;
    },
    { segment: offload },
  );
  await sleep(warmup * 1000);
  const [n0, t0, c0] = [count, nowSeconds(), cpuSeconds()];
  await sleep(seconds * 1000);
  const [n1, t1, c1] = [count, nowSeconds(), cpuSeconds()];
  off();
  await tun.close();
  return { packets: n1 - n0, seconds: t1 - t0, cpuSeconds: c1 - c0, firstLen };
}

async function write(dev: string, warmup: number, seconds: number, src: string, dst: string, payload: number, batch: number, offload: boolean): Promise<object> {
  const tun = await openTun(dev, undefined, offload);
  const packet = buildIpv4Udp({ src, dst, srcPort: 4000, dstPort: 9, payload });
  // The fastest public write path: the batch built packed (packets back to back, their lengths
  // beside), as an application that assembles packets into one buffer would; written again and again.
  const packed = Buffer.concat(Array.from({ length: batch }, () => packet));
  const lengths = new Uint32Array(batch).fill(packet.length);
  const list: ListLike = { buffer: packed, offsets: Uint32Array.from({ length: batch }, (_, i) => i * packet.length), lengths, count: batch };
  // One call writes the whole batch either way: writePacked one write per packet, writeCoalesced as few as GRO allows.
  const writeAll = offload ? (): number => (tun.writeCoalesced(list), batch) : (): number => tun.writePacked(packed, lengths);
  await handshake();
  let count = 0;
  let deadline = nowSeconds() + warmup;
  let t = nowSeconds();
  while (t < deadline) {
    writeAll();
    t = nowSeconds();
  }
  const [t0, c0] = [t, cpuSeconds()];
  deadline = t0 + seconds;
  while (t < deadline) {
    count += writeAll();
    t = nowSeconds();
  }
  const c1 = cpuSeconds();
  await tun.close();
  return { packets: count, seconds: t - t0, cpuSeconds: c1 - c0 };
}

async function main(): Promise<void> {
  const [mode, dev, warmupArg, secondsArg, src, dst, payloadArg, batchArg, pathArg] = process.argv.slice(2);
  const offload = pathArg === 'offload';
  const batch = batchArg === undefined ? DEFAULT_BATCH : Number(batchArg);
  const warmup = Number(warmupArg);
  const seconds = Number(secondsArg);
  const payload = Number(payloadArg);
  if ((mode !== 'read' && mode !== 'write') || !dev || !(warmup >= 0) || !(seconds > 0) || !src || !dst || !(payload >= 0) || !(Number.isInteger(batch) && batch >= 1) || (pathArg !== undefined && pathArg !== 'plain' && pathArg !== 'offload')) {
    fail('usage: tun-subject.js read|write DEV WARMUP_S SECONDS SRC DST PAYLOAD [BATCH [plain|offload]]');
  }
  const result = mode === 'read' ? await read(dev, warmup, seconds, batch, offload) : await write(dev, warmup, seconds, src, dst, payload, batch, offload);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

main().catch((e: unknown) => fail(e instanceof Error ? (e.stack ?? e.message) : String(e)));
