/**
 * Decoder fuzzing at scale (issue #6, item 8): a million mutated netlink inputs per CI-sized run
 * (twenty million with --long), made from the kernel-captured golden fixtures by
 * helpers/codec-mutations.ts and judged by helpers/codec-oracle.ts through every decoder the
 * Monitor and the dumps use: zero crashes (only NetlinkDecodeError may be thrown), zero hangs,
 * decode → encode → decode exact for everything that decodes.
 *
 * Worker threads share the cases (2 cores); every case is a pure function of (seed, index), so a
 * failure prints the two numbers and replays alone:
 *   TUNKEEPER_FUZZ_SEED=<seed> TUNKEEPER_FUZZ_FROM=<index> TUNKEEPER_FUZZ_CASES=1 \
 *     npm run test:reliability -- dist/test/reliability/fuzz-codec
 * A hang is caught by a watchdog reading the case each worker is on (shared memory), which then
 * names that case; jest's timeout is only the last guard.
 */
import { describe, expect, it } from '@jest/globals';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { checkBytes } from './helpers/codec-oracle.js';
import { loadCorpus, makeCase } from './helpers/codec-mutations.js';
import type { FuzzFailure, FuzzWorkerInput, FuzzWorkerResult } from './helpers/codec-fuzz-worker.js';
import { scale } from './helpers/scale.js';

const SEED = Number(process.env.TUNKEEPER_FUZZ_SEED ?? 0x7c0dec);
const FROM = Number(process.env.TUNKEEPER_FUZZ_FROM ?? 0);
const CASES = Number(process.env.TUNKEEPER_FUZZ_CASES ?? scale(1_000_000, 20_000_000));
const CHUNK = 50_000;
/** No case takes more than milliseconds; a worker on the same case this long is hung. */
const STUCK_MS = 60_000;
const WORKER_URL = new URL('./helpers/codec-fuzz-worker.js', import.meta.url);

interface RunSummary {
  tried: number;
  decoded: number;
  bytes: number;
  failures: FuzzFailure[];
  hangs: FuzzFailure[];
}

/** Runs cases [from, from + count) on `threads` workers, chunk by chunk. */
async function runCases(seed: number, from: number, count: number, threads: number): Promise<RunSummary> {
  const summary: RunSummary = { tried: 0, decoded: 0, bytes: 0, failures: [], hangs: [] };
  const progress = new SharedArrayBuffer(4 * threads);
  const cursor = new Int32Array(progress);
  let next = from;
  const end = from + count;

  const runChunk = (slot: number, start: number, n: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const input: FuzzWorkerInput = { seed, from: start, count: n, progress, slot, maxFailures: 20 };
      Atomics.store(cursor, slot, start);
      const worker = new Worker(WORKER_URL, { workerData: input });
      let last = start;
      let lastMoved = Date.now();
      const watchdog = setInterval(() => {
        const now = Atomics.load(cursor, slot);
        if (now !== last) {
          last = now;
          lastMoved = Date.now();
          return;
        }
        if (Date.now() - lastMoved > STUCK_MS) {
          clearInterval(watchdog);
          const c = makeCase(corpus, seed, now);
          summary.hangs.push({ seed, index: now, failure: `no progress for ${STUCK_MS} ms`, steps: c.steps, hex: c.bytes.subarray(0, 4096).toString('hex') });
          void worker.terminate().then(() => resolve());
        }
      }, 1000);
      worker.once('message', (r: FuzzWorkerResult) => {
        clearInterval(watchdog);
        summary.tried += r.tried;
        summary.decoded += r.decoded;
        summary.bytes += r.bytes;
        summary.failures.push(...r.failures);
        resolve();
      });
      worker.once('error', (e) => {
        clearInterval(watchdog);
        reject(new Error(`fuzz worker crashed near case ${Atomics.load(cursor, slot)} of seed ${seed}: ${e.message}`));
      });
    });

  const lane = async (slot: number): Promise<void> => {
    while (next < end && summary.failures.length < 20 && summary.hangs.length === 0) {
      const start = next;
      const n = Math.min(CHUNK, end - start);
      next += n;
      await runChunk(slot, start, n);
    }
  };
  await Promise.all(Array.from({ length: threads }, (_, i) => lane(i)));
  return summary;
}

const corpus = loadCorpus();

function report(f: FuzzFailure): string {
  return `seed ${f.seed} case ${f.index}: ${f.failure}\n  made by: ${f.steps.join(' ; ')}\n  bytes: ${f.hex}\n  replay: TUNKEEPER_FUZZ_SEED=${f.seed} TUNKEEPER_FUZZ_FROM=${f.index} TUNKEEPER_FUZZ_CASES=1`;
}

describe('decoder fuzzing (reliability)', () => {
  it('the oracle holds for the unmutated corpus, and rejects what it must', () => {
    expect(corpus.datagrams.length).toBeGreaterThan(30);
    expect(corpus.messages.length).toBeGreaterThan(100);
    for (const d of corpus.datagrams) expect(checkBytes(d, 0)).toEqual({ decoded: true });
    // A message length past the end is refused as a decode error, not a crash or a success.
    const lie = Buffer.from(corpus.messages[0]!);
    lie.writeUInt32LE(lie.length + 4, 0);
    expect(checkBytes(lie, 0)).toEqual({ decoded: false });
  });

  it('the same (seed, index) always makes the same case', () => {
    for (const index of [0, 1, 99_999, 123_456_789]) {
      const a = makeCase(corpus, SEED, index);
      const b = makeCase(corpus, SEED, index);
      expect(b.steps).toEqual(a.steps);
      expect(Buffer.compare(a.bytes, b.bytes)).toBe(0);
    }
    expect(makeCase(corpus, SEED, 1).steps).not.toEqual(makeCase(corpus, SEED, 2).steps);
  });

  it(
    `${CASES.toLocaleString('en')} mutated netlink inputs: no crash, no hang, exact round trips`,
    async () => {
      const threads = Math.max(1, Math.min(2, availableParallelism()));
      const s = await runCases(SEED, FROM, CASES, threads);
      console.log(
        `decoder fuzzing: seed ${SEED}, cases ${FROM}..${FROM + CASES - 1}: ${s.tried} inputs (${s.bytes} bytes) tried on ${threads} threads, ` +
          `${s.decoded} decoded and round-tripped, ${s.failures.length} failures, ${s.hangs.length} hangs`,
      );
      const problems = [...s.hangs, ...s.failures].map(report);
      expect(problems).toEqual([]);
      expect(s.tried).toBe(CASES);
      // The mutations must leave a good share decodable, or the round trip is barely exercised.
      expect(s.decoded).toBeGreaterThan(CASES / 10);
    },
    scale(15, 300) * 60_000,
  );
});
