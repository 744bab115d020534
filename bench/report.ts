/**
 * The one benchmark report (DESIGN.md, "Benchmarks: one report"): row shaping, the ratio's
 * orientation, the JSON document and the printed table. Pure: no I/O, no clock.
 */

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
}

export interface Report {
  benchmarks: ReportRow[];
}

/** What a benchmark knows about itself. */
export interface RowMeta {
  name: string;
  unit: string;
  better: Better;
}

/** What one run of a benchmark measured. */
export interface Figures {
  project: number;
  reference: number | null;
  referenceName: string | null;
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

export function shapeRow(meta: RowMeta, figures: Figures): ReportRow {
  const ratio = ratioOf(figures.project, figures.reference, meta.better);
  return {
    name: meta.name,
    unit: meta.unit,
    project: roundFigure(figures.project),
    reference: figures.reference === null ? null : roundFigure(figures.reference),
    referenceName: figures.reference === null ? null : figures.referenceName,
    ratio: ratio === null ? null : roundRatio(ratio),
    better: meta.better,
  };
}

export function toReport(rows: readonly ReportRow[]): Report {
  return { benchmarks: rows.map((r) => ({ ...r })) };
}

export function reportJson(rows: readonly ReportRow[]): string {
  return JSON.stringify(toReport(rows), null, 2) + '\n';
}

function formatNumber(x: number | null): string {
  if (x === null) return '-';
  return x.toLocaleString('en-US', { maximumFractionDigits: 3 });
}

/** The report as an aligned text table (numbers right-aligned), one row per benchmark. */
export function formatTable(rows: readonly ReportRow[]): string {
  const header = ['benchmark', 'unit', 'better', 'tunkeeper', 'reference', 'ratio', 'reference tool'];
  const numeric = [false, false, false, true, true, true, false];
  const cells = rows.map((r) => [
    r.name,
    r.unit,
    r.better,
    formatNumber(r.project),
    formatNumber(r.reference),
    r.ratio === null ? '-' : `${r.ratio.toFixed(3)}x`,
    r.referenceName ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string =>
    c
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n';
}
