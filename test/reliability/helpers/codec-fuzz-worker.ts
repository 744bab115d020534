/**
 * A fuzzing worker thread: runs cases [from, from + count) of a seed through the oracle and posts
 * one summary. Before each case it writes the case index into the shared progress array, so the
 * parent names the exact case if this thread hangs.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { checkBytes } from './codec-oracle.js';
import { loadCorpus, makeCase } from './codec-mutations.js';

export interface FuzzWorkerInput {
  seed: number;
  from: number;
  count: number;
  /** Int32Array over a SharedArrayBuffer: [slot] = the case running now. */
  progress: SharedArrayBuffer;
  slot: number;
  /** Stop after this many failures (each is reported with its case index). */
  maxFailures: number;
}

export interface FuzzFailure {
  seed: number;
  index: number;
  failure: string;
  steps: string[];
  hex: string;
}

export interface FuzzWorkerResult {
  tried: number;
  decoded: number;
  bytes: number;
  failures: FuzzFailure[];
}

// Most hostile inputs end in a NetlinkDecodeError; capturing a stack for each one would be most
// of the run's time. Failures are reported by message, with the case to replay.
Error.stackTraceLimit = 0;
const input = workerData as FuzzWorkerInput;
const progress = new Int32Array(input.progress);
const corpus = loadCorpus();
const result: FuzzWorkerResult = { tried: 0, decoded: 0, bytes: 0, failures: [] };
for (let index = input.from; index < input.from + input.count; index++) {
  Atomics.store(progress, input.slot, index);
  const c = makeCase(corpus, input.seed, index);
  const r = checkBytes(c.bytes, index);
  result.tried++;
  result.bytes += c.bytes.length;
  if (r.decoded) result.decoded++;
  if (r.failure !== undefined) {
    result.failures.push({ seed: input.seed, index, failure: r.failure, steps: c.steps, hex: c.bytes.subarray(0, 4096).toString('hex') });
    if (result.failures.length >= input.maxFailures) break;
  }
}
parentPort!.postMessage(result);
