/**
 * A quick check of the Dockerfile without a container engine (test/runtime/ builds and runs the
 * real image with buildah and runc): the runtime
 * stage's COPY lines are laid out in a temporary /app exactly as the image would have them, and
 * bin/tunkeeper runs from there — loading the compiled CLI and the native addon — inside a
 * network namespace of the test's own. A file the agent needs at run time and the image lacks
 * fails here, not on a node.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { execFile } from 'node:child_process';
import { withNetns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { ROOT } from './chart-render.js';

interface Stage {
  from: string;
  lines: string[];
}

/** The Dockerfile's stages, each with its instructions (continuation lines joined). */
function stages(text: string): Stage[] {
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const out: Stage[] = [];
  for (const line of instructions) {
    if (/^FROM\s/i.test(line)) out.push({ from: line.slice(5).trim(), lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

describeKernel('the image the Dockerfile describes', () => {
  const [build, runtime] = stages(DOCKERFILE);
  let app: string;

  beforeAll(() => {
    // The runtime stage's files, from the build stage's /src (this checkout, built by npm ci).
    app = mkdtempSync(join(tmpdir(), 'tunkeeper-image-'));
    for (const line of runtime?.lines ?? []) {
      const m = /^COPY\s+--from=build\s+\/src\/(\S+)\s+\.\/(\S*)$/.exec(line);
      if (!m) continue;
      const [, source, target] = m as unknown as [string, string, string];
      const sources = source.includes('*')
        ? readdirSync(join(ROOT, dirname(source)))
            .filter((f) => new RegExp(`^${basename(source).replace('.', '\\.').replace('*', '.*')}$`).test(f))
            .map((f) => join(dirname(source), f))
        : [source];
      for (const s of sources) {
        const to = target === '' || target.endsWith('/') ? join(app, target, basename(s)) : join(app, target);
        mkdirSync(dirname(to), { recursive: true });
        if (s === 'node_modules') {
          // The build stage prunes dev dependencies; the dependencies themselves are npm's business.
          symlinkSync(join(ROOT, s), to);
        } else {
          // As the build stage's `rm -rf dist/test dist/bench` leaves dist/.
          cpSync(join(ROOT, s), to, { recursive: true, filter: (p) => !/\/dist\/(test|bench)(\/|$)/.test(p.slice(ROOT.length)) });
        }
      }
    }
  });
  afterAll(() => {
    if (app) rmSync(app, { recursive: true, force: true });
  });

  it('builds on node:20-bookworm with the addon toolchain, runs on node:20-bookworm-slim with bin/tunkeeper as the entrypoint', () => {
    expect(build?.from).toBe('node:20-bookworm AS build');
    expect(runtime?.from).toBe('node:20-bookworm-slim');
    const buildRuns = build!.lines.filter((l) => l.startsWith('RUN ')).join('\n');
    expect(buildRuns).toMatch(/apt-get install -y --no-install-recommends python3 make g\+\+/);
    expect(buildRuns).toMatch(/npm ci .*&& npm prune --omit=dev .*&& rm -rf dist\/test dist\/bench/);
    expect(runtime!.lines).toContain('WORKDIR /app');
    expect(runtime!.lines).toContain('ENTRYPOINT ["/app/bin/tunkeeper"]');
    // Nothing but the build stage's outputs reaches the runtime: no source tree, no toolchain.
    expect(runtime!.lines.filter((l) => /^(COPY|ADD)\s/.test(l) && !l.startsWith('COPY --from=build /src/'))).toEqual([]);
  });

  it('ships only what runs: bin, compiled dist without tests or benchmarks, the addon, package.json, binding.gyp, crds', () => {
    expect(readdirSync(app).sort()).toEqual(['bin', 'binding.gyp', 'build', 'crds', 'dist', 'node_modules', 'package.json']);
    expect(readdirSync(join(app, 'build', 'Release'))).toEqual(['tunkeeper_native.node']);
    expect(existsSync(join(app, 'dist', 'test'))).toBe(false);
    expect(existsSync(join(app, 'dist', 'bench'))).toBe(false);
    expect(existsSync(join(app, 'dist', 'controller', 'cli', 'main.js'))).toBe(true);
    expect(readdirSync(join(app, 'crds')).sort()).toEqual(readdirSync(join(ROOT, 'crds')).sort());
  });

  it('bin/tunkeeper runs from that layout: the CLI loads, and the addon reads a namespace', async () => {
    const crds = await run(process.execPath, [join(app, 'bin', 'tunkeeper'), 'crds']);
    expect({ code: crds.code, stderr: crds.stderr }).toEqual({ code: 0, stderr: '' });
    expect(crds.stdout).toContain('name: tundevices.tunkeeper.io');

    await withNetns(async (ns) => {
      const state = await run(process.execPath, [join(app, 'bin', 'tunkeeper'), 'state', '--netns', ns.name, '--json']);
      expect({ code: state.code, stderr: state.stderr }).toEqual({ code: 0, stderr: '' });
      const links = (JSON.parse(state.stdout) as { links: Array<{ ifname: string }> }).links.map((l) => l.ifname);
      expect(links).toEqual(['lo']);
    }, 'image');
  });
});
