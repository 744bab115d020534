// The default bench run's budget (issue #7: "the default run finishes within a few minutes"):
// who takes how many samples, what a peer left to --long reports, and the wall time each row
// carries. Pure, no kernel; no speed is asserted here.
import { describe, expect, it } from '@jest/globals';
import { parseArgs } from '../../bench/args.js';
import { peersNote, PEER_ROWS } from '../../bench/peer-build.js';
import { formatTable, reportJson, shapeRow, type ReportRow } from '../../bench/report.js';
import { dumpRoutes65k } from '../../bench/benchmarks/dump-routes-65k.js';
import { programRoutes65k } from '../../bench/benchmarks/program-routes-65k.js';
import { samplesFor, tableRoutesInTrieStat } from '../../bench/routes-workload.js';

describe('samples per side in the route benchmarks', () => {
  it('gives the headline sides every sample, with or without --long', () => {
    for (const long of [false, true]) {
      expect(samplesFor({ role: 'project' }, 5, long)).toBe(5);
      expect(samplesFor({ role: 'reference' }, 5, long)).toBe(5);
    }
  });

  it('without --long: a peer half (rounded up) but 3 where there are as many; a slow peer and logged-only sides one', () => {
    expect(samplesFor({ role: 'peer' }, 4, false)).toBe(3);
    expect(samplesFor({ role: 'peer' }, 5, false)).toBe(3);
    expect(samplesFor({ role: 'peer' }, 9, false)).toBe(5);
    expect(samplesFor({ role: 'peer' }, 2, false)).toBe(2);
    expect(samplesFor({ role: 'peer' }, 1, false)).toBe(1);
    expect(samplesFor({ role: 'peer', slow: true }, 5, false)).toBe(1);
    expect(samplesFor({ role: 'info' }, 5, false)).toBe(1);
  });

  it('with --long: every side as many as the headline, the slow peer too', () => {
    expect(samplesFor({ role: 'peer', slow: true }, 11, true)).toBe(11);
    expect(samplesFor({ role: 'info' }, 11, true)).toBe(11);
  });

  it('follows --samples N for the peers as the usage says', () => {
    const n = parseArgs(['--samples', '7']).samples!;
    expect(samplesFor({ role: 'reference' }, n, false)).toBe(7);
    expect(samplesFor({ role: 'peer' }, n, false)).toBe(4);
    expect(samplesFor({ role: 'peer', slow: true }, n, true)).toBe(7);
  });
});

describe('default samples', () => {
  it('are four rounds for the route benchmarks: at least 3 per headline side, two in each order', () => {
    for (const b of [dumpRoutes65k, programRoutes65k]) expect(b.defaultSamples).toBe(4);
  });
});

describe('routes counted from /proc/net/fib_triestat', () => {
  // As a 6.x kernel prints it: table 100 with the measured routes, table 101 with one.
  const stat = [
    'Basic info: size of leaf: 48 bytes, size of tnode: 40 bytes.',
    'Id 100:',
    '\tAver depth:     1.00',
    '\tMax depth:      1',
    '\tLeaves:         65280',
    '\tPrefixes:       65280',
    '\tInternal nodes: 1',
    '\t  16: 1',
    '\tPointers: 65536',
    'Null ptrs: 256',
    'Total size: 7143  kB',
    'Id 101:',
    '\tAver depth:     0.00',
    '\tMax depth:      0',
    '\tLeaves:         1',
    '\tPrefixes:       1',
    '\tInternal nodes: 0',
    '\t',
    '\tPointers: 0',
    'Null ptrs: 0',
    'Total size: 1  kB',
    'Main:',
    '\tAver depth:     1.66',
    '\tLeaves:         3',
    '\tPrefixes:       3',
    '',
  ].join('\n');

  it("reads the table's own prefixes, not the next table's", () => {
    expect(tableRoutesInTrieStat(stat, 100)).toBe(65280);
    expect(tableRoutesInTrieStat(stat, 101)).toBe(1);
  });

  it('counts a table that does not exist (yet) as empty', () => {
    expect(tableRoutesInTrieStat(stat, 102)).toBe(0);
    expect(tableRoutesInTrieStat(stat, 10)).toBe(0);
  });
});

describe('--list peer notes', () => {
  it('names the route peers and what the default run does with pyroute2 per row', () => {
    expect(peersNote('program-routes-65k')).toBe('peers: pyroute2 (only with --long), vishvananda/netlink (3 samples without --long)');
    expect(peersNote('dump-routes-65k')).toMatch(/^peers: pyroute2 \(one dump, not in the sweep, without --long\), vishvananda\/netlink/);
  });

  it('says how the default run samples the TUN peers, and lists nothing for rows without peers', () => {
    expect(peersNote('tun-read-pps')).toBe('peers: tun-rs (3 samples without --long), tun-rs offload (3 samples without --long)');
    expect(peersNote('rss-100k-routes-mb')).toBe('');
  });

  it('only names rows that exist', () => {
    const names = ['tun-read-pps', 'tun-write-pps', 'tun-offload-gbps', 'dump-routes-65k', 'program-routes-65k', 'drift-repair-p99-ms', 'enobufs-storm-converge-ms', 'rss-100k-routes-mb', 'rollout-probe-ms'];
    for (const p of PEER_ROWS) for (const row of Object.keys(p.rows)) expect(names).toContain(row);
  });
});

describe('a peer left to --long', () => {
  const meta = { name: 'program-routes-65k', unit: 'ms', better: 'lower' as const };
  const figures = {
    project: 270,
    reference: 610,
    referenceName: 'ip -batch',
    peers: [
      { name: 'pyroute2', value: null, note: 'runs with --long (about a minute)' },
      { name: 'vishvananda/netlink', value: 600, samples: [590, 600, 640] },
    ],
  };

  it('has null figures and the note, and no error: it did not fail', () => {
    const row = shapeRow(meta, figures);
    expect(row.peers[0]).toEqual({ name: 'pyroute2', value: null, ratio: null, median: null, p99: null, samples: null, note: 'runs with --long (about a minute)' });
    expect(row.peers[0]).not.toHaveProperty('error');
    expect(row.peers[1]!.ratio).toBeCloseTo(600 / 270, 3);
  });

  it('shows "not run" in the table and the reason below it', () => {
    const lines = formatTable([shapeRow(meta, figures)]).trimEnd().split('\n');
    expect(lines[2]).toMatch(/ not run /);
    expect(lines[2]).not.toMatch(/failed/);
    expect(lines.at(-1)).toBe('pyroute2 in program-routes-65k: not run, runs with --long (about a minute)');
  });
});

describe('wall time per row', () => {
  it('is carried into the JSON as seconds beside the contract fields', () => {
    const row: ReportRow = { ...shapeRow({ name: 'dump-routes-65k', unit: 'ms', better: 'lower' }, { project: 54, reference: 111, referenceName: 'ip' }), seconds: 40.8 };
    const parsed = JSON.parse(reportJson([row])) as { benchmarks: ReportRow[] };
    expect(parsed.benchmarks[0]!.seconds).toBe(40.8);
    expect(parsed.benchmarks[0]!.ratio).toBeCloseTo(111 / 54, 2);
  });
});
