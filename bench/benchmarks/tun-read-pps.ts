import type { Benchmark } from '../benchmark.js';
import { measureTun, TUN_DEFAULT_SAMPLES } from '../tun-workload.js';

/** Packets per second one reader gets out of a flooded TUN: Tun.onBatches (readBatch 64, packets lent in place) vs read(). */
export const tunReadPps: Benchmark = {
  name: 'tun-read-pps',
  unit: 'pps',
  better: 'higher',
  defaultSamples: TUN_DEFAULT_SAMPLES,
  description: '64-byte UDP packets read from a flooded TUN: tunkeeper onBatches (readBatch 64) vs a C read() loop',
  run: (ctx) => measureTun(ctx, 'read'),
};
