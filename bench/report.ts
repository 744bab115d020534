/**
 * The one benchmark report (DESIGN.md, "Benchmarks: one report"): row shaping, the ratio's
 * orientation, the JSON document and the printed table. Pure: no I/O, no clock.
 */

import { median, percentile } from './stats.js';

export type Better = 'higher' | 'lower';

export interface ReportRow {
  name: string;
  unit: string;
  project: number;
  reference: number | null;
  referenceName: string | null;
  /** > 1 means tunkeeper is better, whichever way `better` points; null without a reference. */
  ratio: number | null;
  better: Better;
  /** The project's samples: their median and nearest-rank p99, and how many (null: one figure only). */
  median: number | null;
  p99: number | null;
  samples: number | null;
  /** The reference's median and p99 over its samples in the same run (null without them). */
  referenceMedian: number | null;
  referenceP99: number | null;
  /** Libraries people would otherwise pick, measured on the same work in the same run. */
  peers: PeerRow[];
  /** Wall time the benchmark took in this run (namespace, samples, sweeps), so the run's budget is visible. */
  seconds?: number;
  /** A benchmark's own figures (Figures.fields), written into the JSON row beside the common ones. */
  fields?: RowFields;
}

/** JSON values a benchmark adds to its row (fleet-converge: nodes, requestsPerNodePerChange, ...). */
export type FieldValue = number | string | boolean | null | FieldValue[] | { [key: string]: FieldValue };
export type RowFields = Record<string, FieldValue>;

/** One peer's figure; `ratio` oriented like the row's (> 1: tunkeeper better); `error` when it could not run. */
export interface PeerRow {
  name: string;
  value: number | null;
  ratio: number | null;
  /** The tunkeeper figure the ratio holds the peer against, when not `project` (e.g. tunkeeper's own offload path). */
  versus?: { name: string; value: number };
  median: number | null;
  p99: number | null;
  samples: number | null;
  error?: string;
  /** Why the peer was not measured in this run although it could be (e.g. only with --long). */
  note?: string;
}

export interface Report {
  benchmarks: ReportRow[];
  /** Benchmarks that could not run, and why; absent when every one ran. */
  failed?: FailedRow[];
}

/** A benchmark that failed: it has no row, only its name and its error. */
export interface FailedRow {
  name: string;
  error: string;
}

/** What a benchmark knows about itself. */
export interface RowMeta {
  name: string;
  unit: string;
  better: Better;
}

/** What one run of a benchmark measured. */
export interface Figures {
  /** The headline figure, as DESIGN.md defines it for the benchmark. */
  project: number;
  reference: number | null;
  referenceName: string | null;
  /** Every per-sample figure behind `project` / `reference` (for median, p99 and the charts). */
  projectSamples?: readonly number[];
  referenceSamples?: readonly number[];
  peers?: readonly PeerFigures[];
  /** Extra points for the charts (not part of the JSON contract's rows). */
  sweep?: Sweep;
  /**
   * Figures of the benchmark's own, added to its JSON row as top-level keys (the common keys
   * above cannot be overwritten by them).
   */
  fields?: RowFields;
}

/** A point of a chart's line: `series` (who) at `x` (batch size, route count) measured `y`. */
export interface SweepPoint {
  series: string;
  x: number;
  y: number;
}

export interface Sweep {
  /**
   * batch: throughput against batch size; routes: dump time against route count; fleet:
   * convergence time (series `time: ...`) and API requests per node per change (`requests: ...`)
   * against the fleet's size.
   */
  chart: 'batch' | 'routes' | 'fleet';
  points: SweepPoint[];
}

/** A peer's figure (same kind as `project`) and its samples, or why it could not be measured. */
export interface PeerFigures {
  name: string;
  value: number | null;
  /** Compare with this tunkeeper figure instead of `project` (like against like). */
  versus?: { name: string; value: number };
  samples?: readonly number[];
  error?: string;
  /** Not measured in this run, and why (e.g. 'runs with --long (about a minute)'): no failure. */
  note?: string;
}

/**
 * project/reference when higher is better, reference/project when lower is better; null when
 * there is no reference or the division means nothing (a zero denominator).
 */
export function ratioOf(project: number, reference: number | null, better: Better): number | null {
  if (reference === null) return null;
  const [num, den] = better === 'higher' ? [project, reference] : [reference, project];
  if (den === 0 || !Number.isFinite(num) || !Number.isFinite(den)) return null;
  return num / den;
}

/** Figures at the precision they deserve: whole numbers from 1000 up, else 4 significant digits. */
export function roundFigure(x: number): number {
  if (!Number.isFinite(x)) throw new RangeError(`not a finite figure: ${x}`);
  if (Math.abs(x) >= 1000) return Math.round(x);
  return Number(x.toPrecision(4));
}

export function roundRatio(r: number): number {
  return Math.round(r * 1000) / 1000;
}

interface Spread {
  median: number | null;
  p99: number | null;
  samples: number | null;
}

function spreadOf(xs: readonly number[] | undefined): Spread {
  if (xs === undefined || xs.length === 0) return { median: null, p99: null, samples: null };
  return { median: roundFigure(median(xs)), p99: roundFigure(percentile(xs, 99)), samples: xs.length };
}

function roundedRatio(project: number, other: number | null, better: Better): number | null {
  const r = ratioOf(project, other, better);
  return r === null ? null : roundRatio(r);
}

/**
 * A peer's ratio is tunkeeper against the peer, oriented like the row's (> 1: tunkeeper better),
 * so `peerValue / project` when lower is better, `project / peerValue` when higher is.
 */
export function shapePeer(meta: RowMeta, project: number, peer: PeerFigures): PeerRow {
  const row: PeerRow = {
    name: peer.name,
    value: peer.value === null ? null : roundFigure(peer.value),
    ratio: roundedRatio(peer.versus?.value ?? project, peer.value, meta.better),
    ...spreadOf(peer.samples),
  };
  if (peer.versus !== undefined) row.versus = { name: peer.versus.name, value: roundFigure(peer.versus.value) };
  if (peer.error !== undefined) row.error = peer.error;
  if (peer.note !== undefined) row.note = peer.note;
  return row;
}

export function shapeRow(meta: RowMeta, figures: Figures): ReportRow {
  const ref = spreadOf(figures.referenceSamples);
  return {
    name: meta.name,
    unit: meta.unit,
    project: roundFigure(figures.project),
    reference: figures.reference === null ? null : roundFigure(figures.reference),
    referenceName: figures.reference === null ? null : figures.referenceName,
    ratio: roundedRatio(figures.project, figures.reference, meta.better),
    better: meta.better,
    ...spreadOf(figures.projectSamples),
    referenceMedian: figures.reference === null ? null : ref.median,
    referenceP99: figures.reference === null ? null : ref.p99,
    peers: (figures.peers ?? []).map((p) => shapePeer(meta, figures.project, p)),
    ...(figures.fields !== undefined ? { fields: figures.fields } : {}),
  };
}

export function toReport(rows: readonly ReportRow[], failed: readonly FailedRow[] = []): Report {
  return {
    benchmarks: rows.map(({ fields, ...r }) => ({
      // A benchmark's own figures first: the common keys win over a field of the same name.
      ...(fields ?? {}),
      ...r,
      peers: r.peers.map((p) => ({ ...p, ...(p.versus === undefined ? {} : { versus: { ...p.versus } }) })),
    })),
    ...(failed.length === 0 ? {} : { failed: failed.map((f) => ({ ...f })) }),
  };
}

export function reportJson(rows: readonly ReportRow[], failed: readonly FailedRow[] = []): string {
  return JSON.stringify(toReport(rows, failed), null, 2) + '\n';
}

/** The lines under the table naming each benchmark that failed and why (empty when none did). */
export function formatFailures(failed: readonly FailedRow[]): string {
  return failed.map((f) => `FAILED ${f.name}: ${f.error}\n`).join('');
}

function formatNumber(x: number | null): string {
  if (x === null) return '-';
  return x.toLocaleString('en-US', { maximumFractionDigits: 3 });
}

function formatRatio(r: number | null): string {
  return r === null ? '-' : `${r.toFixed(3)}x`;
}

/** A peer's cell: its figure and tunkeeper's ratio against it, or why it is missing. */
function peerCell(p: PeerRow | undefined): string {
  if (p === undefined) return '';
  if (p.value === null) return p.error !== undefined ? 'failed' : p.note !== undefined ? 'not run' : '-';
  return `${formatNumber(p.value)} (${formatRatio(p.ratio)}${p.versus === undefined ? '' : ` vs ${p.versus.name}`})`;
}

/**
 * The report as an aligned text table (numbers right-aligned), one row per benchmark; one column
 * per peer that any row measured, each cell "figure (tunkeeper's ratio against it)"; below it,
 * why a peer marked "not run" was not.
 */
export function formatTable(rows: readonly ReportRow[]): string {
  const peerNames = [...new Set(rows.flatMap((r) => r.peers.map((p) => p.name)))];
  const header = ['benchmark', 'unit', 'better', 'tunkeeper', 'p99', 'reference', 'ratio', ...peerNames, 'reference tool'];
  const numeric = [false, false, false, true, true, true, true, ...peerNames.map(() => true), false];
  const cells = rows.map((r) => [
    r.name,
    r.unit,
    r.better,
    formatNumber(r.project),
    formatNumber(r.p99),
    formatNumber(r.reference),
    formatRatio(r.ratio),
    ...peerNames.map((n) => peerCell(r.peers.find((p) => p.name === n))),
    r.referenceName ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string =>
    c
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const notes = rows.flatMap((r) => r.peers.filter((p) => p.value === null && p.note !== undefined).map((p) => `${p.name} in ${r.name}: not run, ${p.note}`));
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line), ...(notes.length > 0 ? ['', ...notes] : [])].join('\n') + '\n';
}
