/**
 * Every benchmark, in the order they run. A new benchmark is one file in bench/benchmarks/ and one
 * line here; its name is one of the stable names in DESIGN.md ("Benchmarks: one report").
 */
import type { Benchmark } from './benchmark.js';
import { tunReadPps } from './benchmarks/tun-read-pps.js';
import { tunWritePps } from './benchmarks/tun-write-pps.js';

export const benchmarks: readonly Benchmark[] = [tunReadPps, tunWritePps];
