import type { Benchmark } from '../benchmark.js';
import { measureTun, TUN_DEFAULT_SAMPLES } from '../tun-workload.js';

/** Packets per second one writer injects into a TUN: Tun.writePacked of 64 vs write(). */
export const tunWritePps: Benchmark = {
  name: 'tun-write-pps',
  unit: 'pps',
  better: 'higher',
  defaultSamples: TUN_DEFAULT_SAMPLES,
  description: '64-byte UDP packets written into a TUN for local delivery: tunkeeper writePacked(64) vs a C write() loop',
  run: (ctx) => measureTun(ctx, 'write'),
};
