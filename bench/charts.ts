/**
 * The report's charts, as SVG files a person would rather look at than read: throughput against
 * batch size (tun-read-pps, tun-write-pps), the drift-repair latency distribution (a CDF of the
 * drift benchmark's repairs), relist cost against route count (dump-routes-65k's sweep), and the
 * fleet's convergence time and API requests per change against its size (fleet-converge).
 *
 * chartSpecs() is pure (figures in, Vega-Lite specs out) and tested; renderCharts() turns each
 * spec into SVG with vega + vega-lite (pinned devDependencies, no canvas: text is measured by
 * estimate, which is fine for axis labels).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Figures, SweepPoint } from './report.js';

/** A benchmark's name and what its run returned. */
export interface Measured {
  name: string;
  unit: string;
  figures: Figures;
}

export interface ChartSpec {
  /** File name in the charts directory. */
  file: string;
  title: string;
  /** A Vega-Lite v6 specification with its data inline. */
  spec: Record<string, unknown>;
}

const SIZE = { width: 560, height: 320 };

function lineChart(title: string, points: readonly SweepPoint[], x: { title: string; log: boolean }, y: { title: string; log: boolean }): Record<string, unknown> {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    ...SIZE,
    data: { values: points.map((p) => ({ series: p.series, x: p.x, y: p.y })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: x.title, scale: x.log ? { type: 'log' } : { zero: false } },
      y: { field: 'y', type: 'quantitative', title: y.title, scale: y.log ? { type: 'log' } : { zero: true } },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', columns: 2, labelLimit: 320 } },
    },
  };
}

/** The empirical CDF: each sorted sample with the share of samples at or below it. */
export function cdfPoints(samples: readonly number[]): { ms: number; share: number }[] {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted.map((ms, i) => ({ ms, share: (i + 1) / sorted.length }));
}

function latencyChart(title: string, samples: readonly number[]): Record<string, unknown> {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    ...SIZE,
    data: { values: cdfPoints(samples) },
    layer: [
      {
        mark: { type: 'line', interpolate: 'step-after' },
        encoding: {
          x: { field: 'ms', type: 'quantitative', title: 'repair latency (ms)' },
          y: { field: 'share', type: 'quantitative', title: 'share of repairs at or below', axis: { format: '%' } },
        },
      },
      {
        mark: { type: 'rule', strokeDash: [4, 4], color: 'firebrick' },
        data: { values: [{ p: 0.99 }] },
        encoding: { y: { field: 'p', type: 'quantitative' } },
      },
    ],
  };
}

/** The charts the measured benchmarks have data for, in a fixed order. */
export function chartSpecs(measured: readonly Measured[]): ChartSpec[] {
  const specs: ChartSpec[] = [];
  for (const direction of ['read', 'write'] as const) {
    const m = measured.find((x) => x.name === `tun-${direction}-pps`);
    if (m?.figures.sweep?.chart !== 'batch' || m.figures.sweep.points.length === 0) continue;
    const title = `TUN ${direction}s: packets per second against batch size (64-byte UDP)`;
    specs.push({
      file: `tun-${direction}-batch.svg`,
      title,
      spec: lineChart(title, m.figures.sweep.points, { title: direction === 'read' ? 'tunkeeper readBatch (packets per batch)' : 'tunkeeper packets per writePacked', log: true }, { title: 'packets per second', log: false }),
    });
  }
  const drift = measured.find((x) => x.name === 'drift-repair-p99-ms');
  if (drift?.figures.projectSamples !== undefined && drift.figures.projectSamples.length > 0) {
    const title = `Drift repair latency, ${drift.figures.projectSamples.length} repairs (CDF; dashed: p99)`;
    specs.push({ file: 'drift-repair-latency.svg', title, spec: latencyChart(title, drift.figures.projectSamples) });
  }
  const dump = measured.find((x) => x.name === 'dump-routes-65k');
  if (dump?.figures.sweep?.chart === 'routes' && dump.figures.sweep.points.length > 0) {
    const title = 'Relist cost: dump + decode one table against its route count';
    specs.push({ file: 'relist-cost.svg', title, spec: lineChart(title, dump.figures.sweep.points, { title: 'routes in the table', log: true }, { title: 'ms (lower is better)', log: true }) });
  }
  const fleet = measured.find((x) => x.name === 'fleet-converge');
  if (fleet?.figures.sweep?.chart === 'fleet' && fleet.figures.sweep.points.length > 0) {
    const pts = fleet.figures.sweep.points;
    const part = (prefix: string) => pts.filter((p) => p.series.startsWith(prefix)).map((p) => ({ ...p, series: p.series.slice(prefix.length) }));
    const time = 'Fleet convergence: a TunDevice change until the nodes report it, against the fleet size';
    specs.push({ file: 'fleet-converge-time.svg', title: time, spec: lineChart(time, part('time: '), { title: 'simulated nodes', log: true }, { title: 'ms (lower is better)', log: false }) });
    const req = 'Fleet API load: requests per node per change, by verb, against the fleet size';
    specs.push({ file: 'fleet-converge-requests.svg', title: req, spec: lineChart(req, part('requests: '), { title: 'simulated nodes', log: true }, { title: 'requests per node per change', log: false }) });
  }
  return specs;
}

/** Renders every spec to `dir/<file>` as SVG; returns the paths written. */
export async function renderCharts(dir: string, specs: readonly ChartSpec[]): Promise<string[]> {
  if (specs.length === 0) return [];
  // Loaded only when there is something to draw: the bench runs without them otherwise.
  const vega = await import('vega');
  const { compile } = await import('vega-lite');
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const c of specs) {
    const compiled = compile(c.spec as unknown as Parameters<typeof compile>[0]).spec;
    const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
    const svg = await view.toSVG();
    view.finalize();
    const path = join(dir, c.file);
    await writeFile(path, svg);
    written.push(path);
  }
  return written;
}
