/** Command line of `npm run bench -- ...`. Pure. */

export interface BenchArgs {
  /** Write the JSON report here. */
  json: string | null;
  /** Write the charts (SVG) into this directory (default bench/out/charts). */
  charts: string | null;
  /** Run only these benchmarks (null: all). */
  only: string[] | null;
  /** Bigger runs: more samples, longer windows. */
  long: boolean;
  /** Overrides of the sample count and measurement window (for quick checks). */
  samples: number | null;
  seconds: number | null;
  /** Pin the subject and the traffic generator to separate CPUs (when there are two). */
  pin: boolean;
  /** Run measured processes at raised priority (own session, autogroup and nice -19). */
  priority: boolean;
  list: boolean;
  help: boolean;
}

export class UsageError extends Error {}

export const usage = `usage: npm run bench -- [--json FILE] [--charts DIR] [--only NAME[,NAME...]] [--long]
                          [--samples N] [--seconds S] [--no-pin] [--no-priority] [--list]

  --json FILE     also write the report as JSON ({"benchmarks":[...]}) to FILE
  --charts DIR    write the charts (SVG) into DIR (default bench/out/charts)
  --only NAMES    run only the named benchmarks (comma separated; --list shows them)
  --long          more samples, longer measurement windows, and the peers in full (pyroute2
                  programming 65,280 routes alone takes about a minute per sample)
  --samples N     samples per side (default 5, the route benchmarks 4; 11 with --long);
                  without --long the route benchmarks' peers take ceil(N/2) but at least
                  min(N, 3), the logged-only sides one, pyroute2 one dump and no programming
  --seconds S     measurement window of one sample (default 1, 3 with --long)
  --no-pin        do not pin the measured process and the traffic generator to separate CPUs
  --no-priority   do not raise their scheduling priority (by default each runs in its own
                  session with nice -19, so neighbours on a shared machine disturb less)
  --list          print the benchmark names and exit`;

export function parseArgs(argv: readonly string[]): BenchArgs {
  const args: BenchArgs = {
    json: null,
    charts: null,
    only: null,
    long: false,
    samples: null,
    seconds: null,
    pin: true,
    priority: true,
    list: false,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--json':
        args.json = value();
        break;
      case '--charts':
        args.charts = value();
        break;
      case '--only': {
        const names = value()
          .split(',')
          .map((n) => n.trim())
          .filter((n) => n !== '');
        if (names.length === 0) throw new UsageError('--only needs at least one name');
        args.only = [...(args.only ?? []), ...names];
        break;
      }
      case '--long':
        args.long = true;
        break;
      case '--samples': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 1) throw new UsageError('--samples needs a whole number >= 1');
        args.samples = n;
        break;
      }
      case '--seconds': {
        const s = Number(value());
        if (!Number.isFinite(s) || s <= 0 || s > 600) throw new UsageError('--seconds needs a number of seconds in (0, 600]');
        args.seconds = s;
        break;
      }
      case '--no-pin':
        args.pin = false;
        break;
      case '--no-priority':
        args.priority = false;
        break;
      case '--list':
        args.list = true;
        break;
      case '-h':
      case '--help':
        args.help = true;
        break;
      default:
        throw new UsageError(`unknown argument: ${arg}`);
    }
  }
  return args;
}

/** The benchmarks to run, in registry order; unknown names are an error, not silently nothing. */
export function selectBenchmarks<T extends { name: string }>(all: readonly T[], only: readonly string[] | null): T[] {
  if (only === null) return [...all];
  const known = new Set(all.map((b) => b.name));
  const unknown = only.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new UsageError(`unknown benchmark(s): ${unknown.join(', ')} (known: ${[...known].join(', ')})`);
  }
  const wanted = new Set(only);
  return all.filter((b) => wanted.has(b.name));
}
