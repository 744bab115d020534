/**
 * The file sources against a swap (of a symbolic link, or a directory renamed over the PATH) that
 * lands in the middle of a scan, made
 * deterministic: node:fs/promises' open is wrapped (an ESM module mock, in a file of its own so
 * that files.test.ts runs on the real one) so that a test can act just before a given file is
 * opened for reading. Watching and the periodic rescan are off; each scan is started by rescan().
 */
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { FileSnapshot } from '../../../controller/sources/files.js';

const fsp = await import('node:fs/promises');
/** Called with the path about to be opened, before every open the sources make. */
let beforeOpen: (path: string) => void = () => {};
jest.unstable_mockModule('node:fs/promises', () => ({
  ...fsp,
  open: (path: string, ...rest: [string?]) => {
    beforeOpen(path);
    return fsp.open(path, ...rest);
  },
}));
const { FileSource } = await import('../../../controller/sources/files.js');
const { loadDeclarations } = await import('../../../controller/sources/files-load.js');

const device = (name: string) => ['apiVersion: tunkeeper.io/v1alpha1', 'kind: TunDevice', 'metadata:', `  name: ${name}`, 'spec:', '  mtu: 1500', ''].join('\n');
const devices = (...names: string[]) => names.map(device).join('---\n');

let dir: string;
let closeSource: (() => Promise<void>) | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tunkeeper-files-swap-'));
  beforeOpen = () => {};
});

afterEach(async () => {
  await closeSource?.();
  closeSource = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A git-sync layout: `<dir>/repo -> .worktrees/<name>`, whose `decl/` is the PATH. */
function worktree(name: string, files: Record<string, string>): void {
  // Synchronous: the tests also make one inside the open hook, before the open it precedes.
  mkdirSync(join(dir, '.worktrees', name, 'decl'), { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, '.worktrees', name, 'decl', file), text);
}

/** git-sync's swap, synchronous so that it happens exactly where the test calls it. */
function swapTo(name: string, removing: string): void {
  symlinkSync(`.worktrees/${name}`, join(dir, 'repo.tmp'));
  renameSync(join(dir, 'repo.tmp'), join(dir, 'repo'));
  rmSync(join(dir, '.worktrees', removing), { recursive: true });
}

const path = () => join(dir, 'repo', 'decl');

/**
 * One commit moves tk-x from b.yaml to a.yaml: tk-x is declared before the swap and after it.
 * The swap is armed to land after a.yaml is read (old: no tk-x) and before b.yaml is (new: no
 * tk-x either): files read where the PATH leads at each moment declare no tk-x at all. `link` is
 * git-sync's swap of `repo`; `rename` a directory renamed over the PATH (old one moved aside).
 */
function movedDevice(kind: 'link' | 'rename'): { path: string; arm: () => void; swapped: () => boolean } {
  const before = { 'a.yaml': devices('tk-a'), 'b.yaml': devices('tk-b', 'tk-x') };
  const after = { 'a.yaml': devices('tk-a', 'tk-x'), 'b.yaml': devices('tk-b') };
  let swap: () => void;
  if (kind === 'link') {
    worktree('aaa', before);
    worktree('bbb', after);
    symlinkSync('.worktrees/aaa', join(dir, 'repo'));
    swap = () => swapTo('bbb', 'aaa');
  } else {
    for (const [name, files] of Object.entries({ decl: before, 'decl.new': after })) {
      mkdirSync(join(dir, name));
      for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, name, file), text);
    }
    swap = () => {
      renameSync(join(dir, 'decl'), join(dir, 'decl.old'));
      renameSync(join(dir, 'decl.new'), join(dir, 'decl'));
    };
  }
  let swapped = false;
  const arm = () => {
    beforeOpen = (opened) => {
      if (!swapped && basename(opened) === 'b.yaml') {
        swapped = true;
        swap();
      }
    };
  };
  return { path: kind === 'link' ? path() : join(dir, 'decl'), arm, swapped: () => swapped };
}

/** Armed, a new worktree without b.yaml is swapped in before every open: no two listings agree. */
function neverStill(): { arm: () => void; swaps: () => number } {
  worktree('w0', { 'a.yaml': devices('tk-a'), 'b.yaml': devices('tk-b') });
  symlinkSync('.worktrees/w0', join(dir, 'repo'));
  let swaps = 0;
  const arm = () => {
    beforeOpen = () => {
      worktree(`w${swaps + 1}`, { 'a.yaml': devices('tk-a') });
      swapTo(`w${swaps + 1}`, `w${swaps}`);
      swaps++;
    };
  };
  return { arm, swaps: () => swaps };
}

async function start(at = path()): Promise<{ source: InstanceType<typeof FileSource>; seen: FileSnapshot[] }> {
  const source = new FileSource({ paths: [at], watch: false, rescanIntervalMs: 0 });
  closeSource = () => source.close();
  const seen: FileSnapshot[] = [];
  source.snapshots$.subscribe((s) => seen.push(s));
  await source.start();
  return { source, seen };
}

const names = (s: FileSnapshot) => s.devices.map((d) => d.ifname);
const origin = (s: FileSnapshot, ifname: string) => s.devices.find((d) => d.ifname === ifname)?.origin;

describe('FileSource across a swap in the middle of a scan', () => {
  it.each(['link', 'rename'] as const)('never gives a complete snapshot without a device that moved between files in the swap (%s)', async (kind) => {
    const scenario = movedDevice(kind);
    const { source, seen } = await start(scenario.path);
    expect(seen.at(-1)).toMatchObject({ complete: true });
    expect(names(seen.at(-1)!)).toEqual(['tk-a', 'tk-b', 'tk-x']);

    scenario.arm();
    const after = await source.rescan();
    expect(scenario.swapped()).toBe(true);
    // What a consumer may prune on: every complete snapshot still has tk-x.
    for (const s of seen.filter((x) => x.complete)) expect(names(s)).toContain('tk-x');
    expect(after).toMatchObject({ complete: true, problems: [], contested: [] });
    expect(names(after)).toEqual(['tk-a', 'tk-b', 'tk-x']);
    expect(origin(after, 'tk-x')).toBe(`${join(scenario.path, 'a.yaml')}:8:1`);
  });

  it('gives an incomplete snapshot while the files keep changing under every read, then the settled one', async () => {
    const scenario = neverStill();
    const { source, seen } = await start();
    expect(seen.at(-1)).toMatchObject({ complete: true });
    expect(names(seen.at(-1)!)).toEqual(['tk-a', 'tk-b']);

    scenario.arm();
    const unsettled = await source.rescan();
    expect(scenario.swaps()).toBeGreaterThan(1);
    expect(unsettled.complete).toBe(false);
    expect(unsettled.problems.map((p) => p.message)).toContainEqual(expect.stringContaining('changed while they were read'));
    // tk-b, in the first tree only, is dropped by no snapshot that may prune; its last valid
    // declaration stays in force meanwhile.
    for (const s of seen.filter((x) => x.complete)) expect(names(s)).toContain('tk-b');
    expect(names(unsettled)).toEqual(['tk-a', 'tk-b']);

    // Once the tree holds still, the next scan settles on it.
    beforeOpen = () => {};
    const settled = await source.rescan();
    expect(settled).toMatchObject({ complete: true, problems: [] });
    expect(names(settled)).toEqual(['tk-a']);
  });
});

describe('loadDeclarations (validate, plan, apply) across a swap in the middle of its read', () => {
  it.each(['link', 'rename'] as const)('reads one version of the tree (%s)', async (kind) => {
    const scenario = movedDevice(kind);
    scenario.arm();
    const snapshot = await loadDeclarations([scenario.path]);
    expect(scenario.swapped()).toBe(true);
    expect(snapshot).toMatchObject({ complete: true, problems: [], contested: [] });
    expect(names(snapshot)).toEqual(['tk-a', 'tk-b', 'tk-x']);
    expect(origin(snapshot, 'tk-x')).toBe(`${join(scenario.path, 'a.yaml')}:8:1`);
  });

  it('reports files that would not hold still, so that apply prunes nothing and changes nothing', async () => {
    neverStill().arm();
    const snapshot = await loadDeclarations([path()]);
    expect(snapshot.complete).toBe(false);
    expect(snapshot.problems.map((p) => p.message)).toContainEqual(expect.stringContaining('changed while they were read'));
  });
});
