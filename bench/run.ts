/**
 * `npm run bench -- [--json FILE] [--only NAME[,NAME]] [--long]`: runs the registered benchmarks,
 * each in a fresh network namespace, and reports tunkeeper against its reference as a table on
 * stdout (progress on stderr) and, with --json, as {"benchmarks":[...]} (DESIGN.md).
 */
import { writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs, selectBenchmarks, usage, UsageError, type BenchArgs } from './args.js';
import type { Benchmark, BenchContext, CpuPlan } from './benchmark.js';
import { installAbortHandlers } from './cleanup.js';
import { createBenchNetns, removeStaleBenchNamespaces } from './netns.js';
import { nicePrefix, raiseAutogroup } from './priority.js';
import { Proc } from './processes.js';
import { buildReferencePrograms } from './ref-build.js';
import { benchmarks } from './registry.js';
import { chartSpecs, renderCharts, type Measured } from './charts.js';
import { refOutDir } from './paths.js';
import { peersNote } from './peer-build.js';
import { formatFailures, formatTable, reportJson, shapeRow, type FailedRow, type ReportRow } from './report.js';

const log = (msg: string): void => {
  process.stderr.write(msg + '\n');
};

function cpuPlan(args: BenchArgs): CpuPlan {
  // Two CPUs: the measured process gets one to itself and the traffic the other, for both sides.
  if (!args.pin || availableParallelism() < 2) return { subject: null, traffic: null };
  return { subject: '1', traffic: '0' };
}

async function main(): Promise<number> {
  let args: BenchArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    log(`${e.message}\n${usage}`);
    return 2;
  }
  if (args.help) {
    console.log(usage);
    return 0;
  }
  if (args.list) {
    for (const b of benchmarks) {
      const peers = peersNote(b.name);
      console.log(`${b.name.padEnd(28)} ${b.description}${peers === '' ? '' : `\n${' '.repeat(29)}${peers}`}`);
    }
    return 0;
  }
  let selected;
  try {
    selected = selectBenchmarks(benchmarks, args.only);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    log(e.message);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    log('bench: needs root (it creates network namespaces and TUN devices); run it as root');
    return 1;
  }

  const runStarted = Date.now();
  installAbortHandlers(log);
  for (const name of removeStaleBenchNamespaces()) log(`bench: removed namespace ${name} left by an earlier, killed run`);
  const refs = await buildReferencePrograms(log);
  const cpus = cpuPlan(args);
  const samplesOf = (b: Benchmark): number => args.samples ?? (args.long ? 11 : (b.defaultSamples ?? 5));
  const seconds = args.seconds ?? (args.long ? 3 : 1);
  const warmupSeconds = args.long ? 0.5 : 0.3;
  log(
    `bench: ${selected.length} benchmark(s), ${[...new Set(selected.map(samplesOf))].join(' or ')} samples per side, ${seconds} s windows` +
      (cpus.subject ? `, measured process on CPU ${cpus.subject}, traffic on CPU ${cpus.traffic}` : ', unpinned') +
      (args.priority ? ', raised priority' : ''),
  );

  const rows: ReportRow[] = [];
  const measured: Measured[] = [];
  const failed: FailedRow[] = [];
  for (const bench of selected) {
    const samples = samplesOf(bench);
    log(`bench: ${bench.name} (${samples} samples per side)`);
    const started = Date.now();
    const ns = await createBenchNetns(bench.name);
    const ctx: BenchContext = {
      long: args.long,
      samples,
      seconds,
      warmupSeconds,
      ns,
      cpus,
      refs,
      log,
      spawn: (label, cpu, cmd, cmdArgs) => {
        const command = [...(args.priority ? nicePrefix() : []), ...(cpu === null ? [] : ['taskset', '-c', cpu]), cmd, ...cmdArgs];
        const proc = Proc.start(label, 'ip', ns.execArgs(command[0]!, command.slice(1)), { newSession: args.priority });
        // ip, nice and taskset each exec the next: the pid is the measured process's own.
        if (args.priority) raiseAutogroup(proc.pid);
        return proc;
      },
    };
    try {
      const figures = await bench.run(ctx);
      const took = Math.round((Date.now() - started) / 100) / 10;
      rows.push({ ...shapeRow(bench, figures), seconds: took });
      measured.push({ name: bench.name, unit: bench.unit, figures });
      log(`bench: ${bench.name} done in ${took.toFixed(1)} s`);
    } catch (e) {
      // One benchmark that cannot run (a missing tool, a failed build) says why and the others go on.
      const error = e instanceof Error ? e.message : String(e);
      failed.push({ name: bench.name, error });
      log(`bench: ${bench.name} FAILED: ${error}`);
    } finally {
      await ns.delete();
    }
  }

  process.stdout.write('\n' + formatTable(rows) + formatFailures(failed));
  if (args.json !== null) {
    await writeFile(args.json, reportJson(rows, failed));
    log(`bench: wrote ${args.json}`);
  }
  try {
    const charts = await renderCharts(args.charts ?? join(refOutDir, 'charts'), chartSpecs(measured));
    for (const c of charts) log(`bench: wrote chart ${c}`);
  } catch (e) {
    // The figures are out already; a chart that cannot be drawn must not hide them.
    log(`bench: charts FAILED: ${e instanceof Error ? e.message : String(e)}`);
  }
  const perBenchmark = rows.map((r) => `${r.name} ${r.seconds?.toFixed(0)} s`).join(', ');
  log(`bench: whole run ${((Date.now() - runStarted) / 1000).toFixed(1)} s (reference and peer builds included)${perBenchmark === '' ? '' : `: ${perBenchmark}`}`);
  if (failed.length > 0) {
    log(`bench: ${failed.length} benchmark(s) failed: ${failed.map((f) => f.name).join(', ')}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    log(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
