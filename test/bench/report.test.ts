// The bench's own report shaping (pure, no kernel): the ratio's orientation, rounding, the JSON
// document of DESIGN.md ("Benchmarks: one report"), the table, the statistics and the command
// line. No speed is asserted here: figures are measured by `npm run bench`, never by jest.
import { describe, expect, it } from '@jest/globals';
import { parseArgs, selectBenchmarks, UsageError } from '../../bench/args.js';
import { buildIpv4Udp, onesComplementSum } from '../../bench/packet.js';
import { formatFailures, formatTable, ratioOf, reportJson, roundFigure, shapeRow } from '../../bench/report.js';
import { median, percentile } from '../../bench/stats.js';

describe('ratioOf', () => {
  it('is project/reference when higher is better, so > 1 means tunkeeper is better', () => {
    expect(ratioOf(900, 1000, 'higher')).toBeCloseTo(0.9);
    expect(ratioOf(2000, 1000, 'higher')).toBeCloseTo(2);
  });

  it('is reference/project when lower is better, so > 1 still means tunkeeper is better', () => {
    expect(ratioOf(50, 100, 'lower')).toBeCloseTo(2);
    expect(ratioOf(200, 100, 'lower')).toBeCloseTo(0.5);
  });

  it('is null without a reference or with a zero denominator', () => {
    expect(ratioOf(5, null, 'higher')).toBeNull();
    expect(ratioOf(5, 0, 'higher')).toBeNull();
    expect(ratioOf(0, 7, 'lower')).toBeNull();
  });
});

describe('shapeRow', () => {
  const meta = { name: 'tun-read-pps', unit: 'pps', better: 'higher' as const };

  it('has exactly the fields of the contract, figures and ratio rounded', () => {
    const row = shapeRow(meta, { project: 912345.678, reference: 1000001.2, referenceName: 'C read() loop' });
    expect(row).toEqual({
      name: 'tun-read-pps',
      unit: 'pps',
      project: 912346,
      reference: 1000001,
      referenceName: 'C read() loop',
      ratio: 0.912,
      better: 'higher',
      median: null,
      p99: null,
      samples: null,
      referenceMedian: null,
      referenceP99: null,
      peers: [],
    });
    // DESIGN's fields are all still there under their names; the rest are additions.
    expect(Object.keys(row).sort()).toEqual(
      ['better', 'median', 'name', 'p99', 'peers', 'project', 'ratio', 'reference', 'referenceMedian', 'referenceName', 'referenceP99', 'samples', 'unit'],
    );
  });

  it('keeps small figures to four significant digits', () => {
    expect(roundFigure(12.34567)).toBe(12.35);
    expect(roundFigure(0.0123456)).toBe(0.01235);
    expect(roundFigure(1234.5)).toBe(1235);
  });

  it('computes the ratio from the unrounded figures', () => {
    const row = shapeRow({ name: 'drift-repair-p99-ms', unit: 'ms', better: 'lower' }, { project: 2.0004, reference: 3.0004, referenceName: 'x' });
    expect(row.ratio).toBe(1.5);
    expect(row.project).toBe(2);
  });

  it('nulls reference, referenceName and ratio where no reference can run', () => {
    const row = shapeRow({ name: 'rss-100k-routes-mb', unit: 'MB', better: 'lower' }, { project: 80, reference: null, referenceName: 'unused' });
    expect(row.reference).toBeNull();
    expect(row.referenceName).toBeNull();
    expect(row.ratio).toBeNull();
  });
});

describe('reportJson and formatTable', () => {
  const rows = [
    shapeRow({ name: 'tun-read-pps', unit: 'pps', better: 'higher' }, { project: 900000, reference: 1000000, referenceName: 'C read() loop' }),
    shapeRow({ name: 'rss-100k-routes-mb', unit: 'MB', better: 'lower' }, { project: 81.25, reference: null, referenceName: null }),
  ];

  it('writes {"benchmarks":[...]} that parses back to the same rows', () => {
    const doc = JSON.parse(reportJson(rows)) as { benchmarks: unknown[] };
    expect(Object.keys(doc)).toEqual(['benchmarks']);
    expect(doc.benchmarks).toEqual(rows);
  });

  it('prints one aligned line per benchmark with the ratio and dashes for missing values', () => {
    const lines = formatTable(rows).trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^benchmark\s+unit\s+better\s+tunkeeper\s+p99\s+reference\s+ratio\s+reference tool$/);
    expect(lines[2]).toContain('900,000');
    expect(lines[2]).toContain('1,000,000');
    expect(lines[2]).toContain('0.900x');
    expect(lines[2]).toContain('C read() loop');
    expect(lines[3]).toMatch(/rss-100k-routes-mb\s+MB\s+lower\s+81\.25\s+-\s+-\s+-\s+-$/);
    // Right-aligned numbers: the tunkeeper column ends at the same offset on every row.
    const end = lines[0]!.indexOf('tunkeeper') + 'tunkeeper'.length;
    expect(lines[2]!.slice(0, end).endsWith('900,000')).toBe(true);
    expect(lines[3]!.slice(0, end).endsWith('81.25')).toBe(true);
  });

  it('names each failed benchmark and its reason in the JSON and under the table; no failed key when none failed', () => {
    const failed = [{ name: 'tun-offload-gbps', error: 'iperf3 is not installed' }];
    const doc = JSON.parse(reportJson(rows, failed)) as { benchmarks: unknown[]; failed: unknown[] };
    expect(Object.keys(doc)).toEqual(['benchmarks', 'failed']);
    expect(doc.benchmarks).toEqual(rows);
    expect(doc.failed).toEqual(failed);
    expect(formatFailures(failed)).toBe('FAILED tun-offload-gbps: iperf3 is not installed\n');
    expect(formatFailures([])).toBe('');
  });

  it('prints just the header for an empty report', () => {
    expect(formatTable([]).trimEnd().split('\n')).toHaveLength(2);
    expect(JSON.parse(reportJson([]))).toEqual({ benchmarks: [] });
  });
});

describe('median and percentile', () => {
  it('takes the middle sample, or the mean of the middle two', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });

  it('uses nearest rank: p99 of fewer than 100 samples is the maximum', () => {
    const xs = Array.from({ length: 50 }, (_, i) => i + 1);
    expect(percentile(xs, 99)).toBe(50);
    expect(percentile(xs, 50)).toBe(25);
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 100)).toBe(100);
  });

  it('refuses empty or non-finite input instead of reporting NaN', () => {
    expect(() => median([])).toThrow(RangeError);
    expect(() => median([1, Number.NaN])).toThrow(RangeError);
    expect(() => percentile([1], 0)).toThrow(RangeError);
  });
});

describe('bench command line', () => {
  it('has quiet defaults', () => {
    expect(parseArgs([])).toEqual({ json: null, charts: null, only: null, long: false, samples: null, seconds: null, pin: true, priority: true, list: false, help: false });
  });

  it('takes --json FILE, --only lists (repeatable, also with =) and --long', () => {
    const a = parseArgs(['--json', 'out.json', '--only', 'tun-read-pps,tun-write-pps', '--only=dump-routes-65k', '--long', '--no-pin', '--no-priority']);
    expect(a.json).toBe('out.json');
    expect(a.only).toEqual(['tun-read-pps', 'tun-write-pps', 'dump-routes-65k']);
    expect(a.long).toBe(true);
    expect(a.pin).toBe(false);
    expect(a.priority).toBe(false);
  });

  it('rejects unknown flags, missing values and bad numbers', () => {
    expect(() => parseArgs(['--fast'])).toThrow(UsageError);
    expect(() => parseArgs(['--json'])).toThrow(UsageError);
    expect(() => parseArgs(['--only', ','])).toThrow(UsageError);
    expect(() => parseArgs(['--samples', '0'])).toThrow(UsageError);
    expect(() => parseArgs(['--seconds', 'x'])).toThrow(UsageError);
  });

  it('selects benchmarks in registry order and names unknown ones', () => {
    const all = [{ name: 'a' }, { name: 'b' }, { name: 'c' }];
    expect(selectBenchmarks(all, null).map((b) => b.name)).toEqual(['a', 'b', 'c']);
    expect(selectBenchmarks(all, ['c', 'a']).map((b) => b.name)).toEqual(['a', 'c']);
    expect(() => selectBenchmarks(all, ['a', 'zz'])).toThrow(/unknown benchmark\(s\): zz/);
  });
});

describe('bench packet builder', () => {
  const packet = buildIpv4Udp({ src: '198.18.1.1', dst: '198.18.0.1', srcPort: 4000, dstPort: 9, payload: 64 });

  it('builds a 92-byte IPv4/UDP packet with the payload pattern', () => {
    expect(packet).toHaveLength(92);
    expect(packet[0]).toBe(0x45);
    expect(packet.readUInt16BE(2)).toBe(92);
    expect(packet[9]).toBe(17);
    expect([...packet.subarray(12, 20)]).toEqual([198, 18, 1, 1, 198, 18, 0, 1]);
    expect(packet.readUInt16BE(22)).toBe(9);
    expect(packet.readUInt16BE(24)).toBe(72);
    expect([...packet.subarray(28, 32)]).toEqual([0, 1, 2, 3]);
  });

  it('carries checksums that verify (the sum over header, or pseudo-header and datagram, is 0xffff)', () => {
    expect(onesComplementSum(packet.subarray(0, 20))).toBe(0xffff);
    const pseudo = Buffer.from([198, 18, 1, 1, 198, 18, 0, 1, 0, 17, 0, 72]);
    expect(onesComplementSum(packet.subarray(20), onesComplementSum(pseudo))).toBe(0xffff);
  });
});
