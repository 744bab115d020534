// The report's additions for issue #7 (pure, no kernel, no timing): median/p99/samples, the peers
// array and its ratio orientation, the peer columns of the table, how the peers' pinned versions
// are read, the relist chart's route names, and the charts (specs, and SVG rendered by vega).
import { describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from '../../bench/args.js';
import { cdfPoints, chartSpecs, renderCharts, type Measured } from '../../bench/charts.js';
import { cargoLockVersion, goModVersion, pinnedPyroute2 } from '../../bench/peer-build.js';
import { formatTable, reportJson, shapePeer, shapeRow } from '../../bench/report.js';
import { routePrefix, sweepPrefix } from '../../bench/routes-workload.js';

const dumpMeta = { name: 'dump-routes-65k', unit: 'ms', better: 'lower' as const };
const readMeta = { name: 'tun-read-pps', unit: 'pps', better: 'higher' as const };

describe('median, p99 and samples', () => {
  it('come from the samples, while project stays the headline figure the benchmark chose', () => {
    const row = shapeRow(dumpMeta, { project: 40, reference: 80, referenceName: 'ip', projectSamples: [42, 40, 39, 41, 60], referenceSamples: [80, 81, 79] });
    expect(row.project).toBe(40);
    expect(row.median).toBe(41);
    expect(row.p99).toBe(60);
    expect(row.samples).toBe(5);
    expect(row.referenceMedian).toBe(80);
    expect(row.referenceP99).toBe(81);
  });
});

describe('peers', () => {
  it('orients each ratio like the row: > 1 means tunkeeper is better, for lower-is-better', () => {
    const p = shapePeer(dumpMeta, 40, { name: 'pyroute2', value: 2000, samples: [2000] });
    expect(p).toEqual({ name: 'pyroute2', value: 2000, ratio: 50, median: 2000, p99: 2000, samples: 1 });
  });

  it('and for higher-is-better', () => {
    const p = shapePeer(readMeta, 900_000, { name: 'tun-rs', value: 1_000_000, samples: [1_000_000, 980_000] });
    expect(p.ratio).toBe(0.9);
    expect(p.samples).toBe(2);
  });

  it('holds a peer against another tunkeeper figure when told to (like against like) and says so', () => {
    const p = shapePeer(readMeta, 700_000, { name: 'tun-rs offload', value: 8_000_000, samples: [8_000_000], versus: { name: 'tunkeeper offload', value: 7_200_000 } });
    expect(p.ratio).toBe(0.9);
    expect(p.versus).toEqual({ name: 'tunkeeper offload', value: 7_200_000 });
    const line = formatTable([shapeRow(readMeta, { project: 700_000, reference: 800_000, referenceName: 'C', peers: [{ name: 'tun-rs offload', value: 8_000_000, versus: { name: 'tunkeeper offload', value: 7_200_000 } }] })]).split('\n')[2]!;
    expect(line).toContain('8,000,000 (0.900x vs tunkeeper offload)');
  });

  it('keeps a peer that could not run, with null figures and the reason', () => {
    const p = shapePeer(dumpMeta, 40, { name: 'vishvananda/netlink', value: null, error: 'go not found (install Go)' });
    expect(p).toEqual({ name: 'vishvananda/netlink', value: null, ratio: null, median: null, p99: null, samples: null, error: 'go not found (install Go)' });
  });

  it('puts the peers array in the JSON row and one column per peer in the table', () => {
    const rows = [
      shapeRow(dumpMeta, {
        project: 40,
        reference: 80,
        referenceName: 'ip route show',
        peers: [
          { name: 'pyroute2', value: 2000, samples: [2000] },
          { name: 'vishvananda/netlink', value: null, error: 'no go' },
        ],
      }),
      shapeRow(readMeta, { project: 900_000, reference: 1_000_000, referenceName: 'C', peers: [{ name: 'tun-rs', value: 1_000_000, samples: [1_000_000] }] }),
    ];
    const doc = JSON.parse(reportJson(rows)) as { benchmarks: { peers: { name: string; ratio: number | null }[] }[] };
    expect(doc.benchmarks[0]!.peers.map((p) => [p.name, p.ratio])).toEqual([
      ['pyroute2', 50],
      ['vishvananda/netlink', null],
    ]);
    const lines = formatTable(rows).trimEnd().split('\n');
    expect(lines[0]).toMatch(/ratio\s+pyroute2\s+vishvananda\/netlink\s+tun-rs\s+reference tool$/);
    expect(lines[2]).toContain('2,000 (50.000x)');
    expect(lines[2]).toContain('failed');
    expect(lines[3]).toContain('1,000,000 (0.900x)');
  });
});

describe('peer pins', () => {
  it('reads exactly one pinned pyroute2 from requirements.txt', () => {
    expect(pinnedPyroute2('# the peer\npyroute2==0.9.7\n')).toBe('0.9.7');
    expect(() => pinnedPyroute2('pyroute2>=0.9\n')).toThrow(/pin exactly/);
    expect(() => pinnedPyroute2('pyroute2==0.9.7\nsix==1.0\n')).toThrow(/pin exactly/);
  });

  it('reads the module version from go.mod and the crate version from Cargo.lock', () => {
    expect(goModVersion('module x\n\nrequire (\n\tgithub.com/vishvananda/netlink v1.3.1\n)\n', 'github.com/vishvananda/netlink')).toBe('v1.3.1');
    expect(goModVersion('require github.com/vishvananda/netlink v1.3.0\n', 'github.com/vishvananda/netlink')).toBe('v1.3.0');
    expect(goModVersion('module x\n', 'github.com/vishvananda/netlink')).toBeNull();
    expect(cargoLockVersion('[[package]]\nname = "tun-rs"\nversion = "2.8.16"\n', 'tun-rs')).toBe('2.8.16');
  });

  it('the committed pins are the ones the report names', async () => {
    const root = join(process.cwd(), 'bench', 'peers');
    expect(pinnedPyroute2(await readFile(join(root, 'pyroute2', 'requirements.txt'), 'utf8'))).toMatch(/^\d+\.\d+\.\d+$/);
    expect(goModVersion(await readFile(join(root, 'go-netlink', 'go.mod'), 'utf8'), 'github.com/vishvananda/netlink')).toMatch(/^v\d+\.\d+\.\d+$/);
    expect(cargoLockVersion(await readFile(join(root, 'tun-rs-io', 'Cargo.lock'), 'utf8'), 'tun-rs')).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('relist sweep routes', () => {
  it('agree with the measured routes below 65,280 and stay distinct /32s up to 131,071', () => {
    for (const i of [0, 255, 256, 65_279]) expect(sweepPrefix(i)).toBe(routePrefix(i));
    expect(sweepPrefix(65_536)).toBe('198.19.0.0/32');
    expect(sweepPrefix(99_999)).toBe('198.19.134.159/32');
    const some = Array.from({ length: 131_072 }, (_, i) => sweepPrefix(i));
    expect(new Set(some).size).toBe(131_072);
    expect(() => sweepPrefix(131_072)).toThrow(RangeError);
  });
});

describe('--charts', () => {
  it('takes a directory', () => {
    expect(parseArgs(['--charts', 'out/charts']).charts).toBe('out/charts');
  });
});

describe('charts', () => {
  const measured: Measured[] = [
    {
      name: 'tun-read-pps',
      unit: 'pps',
      figures: {
        project: 900_000,
        reference: 1_000_000,
        referenceName: 'C',
        sweep: {
          chart: 'batch',
          points: [
            { series: 'tunkeeper', x: 1, y: 300_000 },
            { series: 'tunkeeper', x: 64, y: 900_000 },
            { series: 'C loop (one packet per syscall)', x: 1, y: 1_000_000 },
            { series: 'C loop (one packet per syscall)', x: 64, y: 1_000_000 },
          ],
        },
      },
    },
    { name: 'drift-repair-p99-ms', unit: 'ms', figures: { project: 9, reference: null, referenceName: null, projectSamples: [3, 1, 2, 9] } },
    {
      name: 'dump-routes-65k',
      unit: 'ms',
      figures: { project: 40, reference: 80, referenceName: 'ip', sweep: { chart: 'routes', points: [{ series: 'tunkeeper', x: 1000, y: 1 }, { series: 'tunkeeper', x: 65_280, y: 40 }] } },
    },
    { name: 'rss-100k-routes-mb', unit: 'MiB', figures: { project: 80, reference: null, referenceName: null } },
  ];

  it('the CDF gives each sorted sample the share at or below it', () => {
    expect(cdfPoints([3, 1, 2, 9])).toEqual([
      { ms: 1, share: 0.25 },
      { ms: 2, share: 0.5 },
      { ms: 3, share: 0.75 },
      { ms: 9, share: 1 },
    ]);
  });

  it('makes one chart per kind it has data for, and none for benchmarks without', () => {
    const specs = chartSpecs(measured);
    expect(specs.map((s) => s.file)).toEqual(['tun-read-batch.svg', 'drift-repair-latency.svg', 'relist-cost.svg']);
    const read = specs[0]!.spec as { data: { values: unknown[] }; encoding: { x: { scale: { type?: string } } } };
    expect(read.data.values).toHaveLength(4);
    expect(read.encoding.x.scale.type).toBe('log');
    expect(chartSpecs([measured[3]!])).toEqual([]);
  });

  it('renders each spec to an SVG file with vega, no canvas needed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tk-charts-'));
    try {
      const written = await renderCharts(dir, chartSpecs(measured));
      expect(written.map((p) => p.slice(dir.length + 1))).toEqual(['tun-read-batch.svg', 'drift-repair-latency.svg', 'relist-cost.svg']);
      const svg = await readFile(written[2]!, 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain('Relist cost');
      expect(svg).toContain('routes in the table');
      // A line mark for the series (a path), and the legend names the series.
      expect(svg).toMatch(/<path[^>]*d="M/);
      expect(svg).toContain('tunkeeper');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
