/** What a benchmark is, and what the runner hands it. One benchmark per file in bench/benchmarks/. */
import type { BenchNetns } from './netns.js';
import type { Proc } from './processes.js';
import type { RefPrograms } from './ref-build.js';
import type { Figures, RowMeta } from './report.js';

/** CPUs (taskset lists) for the measured process and for the traffic it is measured against. */
export interface CpuPlan {
  subject: string | null;
  traffic: string | null;
}

export interface BenchContext {
  /** `--long`: a bigger run. */
  readonly long: boolean;
  /** Samples per side (tunkeeper and reference each), alternating which side goes first. */
  readonly samples: number;
  /** Measurement window of one sample, and the uncounted warm-up before it. */
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** A fresh namespace made for this benchmark; the runner deletes it afterwards. */
  readonly ns: BenchNetns;
  readonly cpus: CpuPlan;
  /** The compiled reference programs (bench/ref/*.c). */
  readonly refs: RefPrograms;
  /** Progress and per-sample detail, on stderr (stdout carries the table). */
  log(msg: string): void;
  /** Starts `cmd args` inside the namespace, pinned to `cpu` when it is not null. */
  spawn(label: string, cpu: string | null, cmd: string, args: readonly string[]): Proc;
}

export interface Benchmark extends RowMeta {
  /** One line for --list. */
  description: string;
  /** Samples per side in the default run (no --samples, no --long); 5 when not set. */
  defaultSamples?: number;
  run(ctx: BenchContext): Promise<Figures>;
}
