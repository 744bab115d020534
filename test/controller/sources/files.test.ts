/**
 * The watching file source against real files in a temporary directory. Every wait is for a
 * snapshot event that satisfies a condition; the guard timeout only turns a hang into a message.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filter, firstValueFrom, timeout } from 'rxjs';
import { formatProblem } from '../../../controller/schema/problem.js';
import { FileSource, type FileSnapshot, type FileSourceOptions } from '../../../controller/sources/files.js';

const device = (name: string, spec: Record<string, unknown> = {}) =>
  [
    'apiVersion: tunkeeper.io/v1alpha1',
    'kind: TunDevice',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    ...(Object.keys(spec).length === 0 ? ['  mtu: 1500'] : Object.entries(spec).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`)),
    '',
  ].join('\n');

let dir: string;
const sources: FileSource[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tunkeeper-files-'));
});

afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

async function start(paths: string[], options: Partial<FileSourceOptions> = {}): Promise<{ source: FileSource; first: FileSnapshot }> {
  const source = new FileSource({ paths, debounceMs: 20, maxDelayMs: 200, rescanIntervalMs: 0, ...options });
  sources.push(source);
  const first = await source.start();
  return { source, first };
}

/** The first snapshot (the current one included) for which `pred` holds. */
function until(source: FileSource, pred: (s: FileSnapshot) => boolean, what: string): Promise<FileSnapshot> {
  return firstValueFrom(
    source.snapshots$.pipe(
      filter(pred),
      timeout({ first: 30_000, with: () => Promise.reject(new Error(`no snapshot where ${what}; last: ${JSON.stringify(source.current(), null, 1)}`)) }),
    ),
  );
}

/** Replaces a file atomically (write aside, rename over), so no scan can see it half-written. */
async function replace(file: string, text: string): Promise<void> {
  const aside = join(dir, `.tmp-${Math.random().toString(36).slice(2)}`);
  await writeFile(aside, text);
  await rename(aside, file);
}

const names = (s: FileSnapshot) => s.devices.map((d) => d.ifname);
const mtuOf = (s: FileSnapshot, ifname: string) => s.devices.find((d) => d.ifname === ifname)?.mtu;
const lines = (s: FileSnapshot) => s.problems.map((p) => formatProblem(p).split(`${dir}/`).join(''));

describe('FileSource', () => {
  it('loads a directory, then follows edits, new files, deletions and renames', async () => {
    await writeFile(join(dir, 'a.yaml'), device('tk-a'));
    await writeFile(join(dir, 'b.yml'), device('tk-b'));
    await writeFile(join(dir, 'notes.txt'), 'not a declaration');
    await writeFile(join(dir, '.hidden.yaml'), device('tk-hidden'));
    const { source, first } = await start([dir]);
    expect(first).toMatchObject({ complete: true, problems: [], contested: [] });
    expect(names(first)).toEqual(['tk-a', 'tk-b']);
    expect(first.devices[0].origin).toBe(`${join(dir, 'a.yaml')}:1:1`);

    await writeFile(join(dir, 'a.yaml'), device('tk-a', { mtu: 1400 }));
    await until(source, (s) => mtuOf(s, 'tk-a') === 1400, 'the edit is seen');

    await writeFile(join(dir, 'c.yaml'), device('tk-c'));
    await until(source, (s) => names(s).includes('tk-c'), 'the new file is seen');

    await unlink(join(dir, 'b.yml'));
    const afterDelete = await until(source, (s) => !names(s).includes('tk-b'), 'the deletion is seen');
    expect(afterDelete.complete).toBe(true);

    await rename(join(dir, 'c.yaml'), join(dir, 'renamed.yaml'));
    const renamed = await until(source, (s) => s.files.some((f) => f.endsWith('renamed.yaml')), 'the rename is seen');
    expect(names(renamed)).toEqual(['tk-a', 'tk-c']);
    expect(renamed.devices[1].origin).toBe(`${join(dir, 'renamed.yaml')}:1:1`);

    await rename(join(dir, 'renamed.yaml'), join(dir, 'renamed.yaml.bak'));
    await until(source, (s) => !names(s).includes('tk-c'), 'a file renamed away is no longer read');
  });

  it('keeps the last valid version of a file that becomes invalid, and reports why', async () => {
    await writeFile(join(dir, 'a.yaml'), device('tk-a', { mtu: 1400 }));
    await writeFile(join(dir, 'b.yaml'), device('tk-b'));
    const { source } = await start([dir]);

    await replace(join(dir, 'a.yaml'), device('tk-a', { mtu: 50 }));
    const broken = await until(source, (s) => s.problems.length > 0, 'the invalid edit is reported');
    expect(broken.devices.map((d) => [d.ifname, d.mtu])).toEqual([
      ['tk-a', 1400],
      ['tk-b', 1500],
    ]);
    expect(broken.complete).toBe(true);
    expect(lines(broken)).toEqual([
      'a.yaml: keeping the last valid version of this file (1 device) until it is fixed',
      'a.yaml:6:8: spec.mtu: must be from 68 to 65535, got 50 (the kernel accepts 68 to 65535 on a TUN/TAP device; IPv6 needs at least 1280)',
    ]);

    // Not even a YAML syntax error, or a truncated file, reads as "delete everything".
    await replace(join(dir, 'a.yaml'), 'apiVersion: [\n');
    await until(source, (s) => s.problems.some((p) => p.message.startsWith('invalid YAML')), 'the syntax error is reported');
    await writeFile(join(dir, 'a.yaml'), '');
    const empty = await until(source, (s) => s.problems.some((p) => p.message.startsWith('file is empty')), 'the empty file is reported');
    expect(names(empty)).toEqual(['tk-a', 'tk-b']);

    await replace(join(dir, 'a.yaml'), device('tk-a', { mtu: 1300 }));
    const fixed = await until(source, (s) => s.problems.length === 0, 'the fix clears the problems');
    expect(mtuOf(fixed, 'tk-a')).toBe(1300);
  });

  it('marks the snapshot incomplete while a file that never was valid is present', async () => {
    await writeFile(join(dir, 'a.yaml'), device('tk-a'));
    await writeFile(join(dir, 'b.yaml'), device('tk-b', { mode: 'tan' }));
    const { source, first } = await start([dir]);
    expect(first.complete).toBe(false);
    expect(names(first)).toEqual(['tk-a']);
    expect(lines(first)).toEqual(['b.yaml:6:9: spec.mode: must be one of "tun", "tap", got "tan"']);
    await writeFile(join(dir, 'b.yaml'), device('tk-b', { mode: 'tap' }));
    const fixed = await until(source, (s) => s.complete, 'the snapshot becomes complete');
    expect(names(fixed)).toEqual(['tk-a', 'tk-b']);
  });

  it('applies neither of two files declaring the same interface, and reports both places', async () => {
    await writeFile(join(dir, 'a.yaml'), device('tk-a', { ifname: 'tk-shared' }));
    const { source } = await start([dir]);
    await writeFile(join(dir, 'b.yaml'), device('tk-b', { ifname: 'tk-shared' }));
    const clash = await until(source, (s) => s.contested.length > 0, 'the conflict is reported');
    expect(clash.devices).toEqual([]);
    expect(clash.complete).toBe(false);
    expect(clash.contested).toEqual(['tk-shared']);
    expect(lines(clash)).toEqual([
      `a.yaml:6:11: spec.ifname: interface name "tk-shared" is also declared at b.yaml:6:11; neither declaration is applied until only one remains`,
      `b.yaml:6:11: spec.ifname: interface name "tk-shared" is also declared at a.yaml:6:11; neither declaration is applied until only one remains`,
    ]);
    await unlink(join(dir, 'a.yaml'));
    const resolved = await until(source, (s) => s.contested.length === 0, 'the conflict ends');
    expect(resolved.devices.map((d) => d.name)).toEqual(['tk-b']);
    expect(resolved.complete).toBe(true);
  });

  it('follows an atomic ..data symlink swap, as a Kubernetes ConfigMap volume does it', async () => {
    const mount = join(dir, 'config');
    await mkdir(join(mount, '..2026_01_01_00_00_00.1'), { recursive: true });
    await writeFile(join(mount, '..2026_01_01_00_00_00.1', 'edge.yaml'), device('tk-edge', { mtu: 1400 }));
    await symlink('..2026_01_01_00_00_00.1', join(mount, '..data'));
    await symlink('..data/edge.yaml', join(mount, 'edge.yaml'));
    const { source, first } = await start([mount]);
    expect(first.files).toEqual([join(mount, 'edge.yaml')]);
    expect(mtuOf(first, 'tk-edge')).toBe(1400);

    // The kubelet's AtomicWriter: a new timestamped directory, a new link, renamed over ..data.
    await mkdir(join(mount, '..2026_01_01_00_05_00.2'));
    await writeFile(join(mount, '..2026_01_01_00_05_00.2', 'edge.yaml'), device('tk-edge', { mtu: 1280 }));
    await symlink('..2026_01_01_00_05_00.2', join(mount, '..data_tmp'));
    await rename(join(mount, '..data_tmp'), join(mount, '..data'));
    await rm(join(mount, '..2026_01_01_00_00_00.1'), { recursive: true });
    const swapped = await until(source, (s) => mtuOf(s, 'tk-edge') === 1280, 'the swap is seen');
    expect(swapped.problems).toEqual([]);
  });

  it('follows a swap of a symbolic link above the PATH, as git-sync does it', async () => {
    const root = join(dir, 'git');
    await mkdir(join(root, '.worktrees', 'aaa', 'decl'), { recursive: true });
    await writeFile(join(root, '.worktrees', 'aaa', 'decl', 'edge.yaml'), device('tk-edge', { mtu: 1400 }));
    await symlink('.worktrees/aaa', join(root, 'repo'));
    const path = join(root, 'repo', 'decl');
    const { source, first } = await start([path]);
    expect(mtuOf(first, 'tk-edge')).toBe(1400);
    expect(source.watchedDirectories()).toContain(root);

    await mkdir(join(root, '.worktrees', 'bbb', 'decl'), { recursive: true });
    await writeFile(join(root, '.worktrees', 'bbb', 'decl', 'edge.yaml'), device('tk-edge', { mtu: 1300 }));
    await writeFile(join(root, '.worktrees', 'bbb', 'decl', 'more.yaml'), device('tk-more'));
    await symlink('.worktrees/bbb', join(root, 'repo.tmp'));
    await rename(join(root, 'repo.tmp'), join(root, 'repo'));
    await rm(join(root, '.worktrees', 'aaa'), { recursive: true });
    const swapped = await until(source, (s) => mtuOf(s, 'tk-edge') === 1300, 'the swap is seen');
    expect(names(swapped)).toEqual(['tk-edge', 'tk-more']);

    // The watch on the new worktree works too: an edit there is seen.
    await writeFile(join(root, '.worktrees', 'bbb', 'decl', 'more.yaml'), device('tk-more', { mtu: 1200 }));
    await until(source, (s) => mtuOf(s, 'tk-more') === 1200, 'an edit in the new worktree is seen');
  });

  it('follows a single-file PATH replaced by rename, as editors and config tools write', async () => {
    const file = join(dir, 'one.yaml');
    await writeFile(file, device('tk-one', { mtu: 1400 }));
    const { source } = await start([file]);
    await writeFile(join(dir, '.one.yaml.swp'), device('tk-one', { mtu: 1350 }));
    await rename(join(dir, '.one.yaml.swp'), file);
    await until(source, (s) => mtuOf(s, 'tk-one') === 1350, 'the replaced file is read');
  });

  it('keeps what a PATH declared while the PATH is gone, and picks it up when it returns', async () => {
    const decl = join(dir, 'decl');
    await mkdir(decl);
    await writeFile(join(decl, 'a.yaml'), device('tk-a'));
    const { source } = await start([decl]);
    await rename(decl, join(dir, 'decl.away'));
    const gone = await until(source, (s) => !s.complete, 'the missing PATH is reported');
    expect(names(gone)).toEqual(['tk-a']);
    expect(lines(gone)).toEqual(['decl: does not exist; what it declared before stays in force']);

    await mkdir(decl);
    await writeFile(join(decl, 'b.yaml'), device('tk-b'));
    const back = await until(source, (s) => s.complete, 'the PATH is back');
    expect(names(back)).toEqual(['tk-b']);
  });

  it('coalesces a burst of writes into few scans and ends with the last content', async () => {
    await writeFile(join(dir, 'a.yaml'), device('tk-a'));
    const { source } = await start([dir], { debounceMs: 100, maxDelayMs: 5000 });
    // Let the follow-up scan that checks for changes made while the watches were being set up pass.
    await source.rescan();
    const before = source.scanCount;
    const { writeFileSync } = await import('node:fs');
    for (let mtu = 1001; mtu <= 1050; mtu++) writeFileSync(join(dir, 'a.yaml'), device('tk-a', { mtu }));
    await until(source, (s) => mtuOf(s, 'tk-a') === 1050, 'the last write is seen');
    expect(source.scanCount - before).toBeLessThan(5);
  });

  it('notices changes by periodic rescan alone when watching is off', async () => {
    await writeFile(join(dir, 'a.yaml'), device('tk-a'));
    const { source } = await start([dir], { watch: false, rescanIntervalMs: 50 });
    expect(source.watchedDirectories()).toEqual([]);
    await writeFile(join(dir, 'a.yaml'), device('tk-a', { mtu: 1234 }));
    await until(source, (s) => mtuOf(s, 'tk-a') === 1234, 'the periodic rescan sees the edit');
  });

  it('reads a file reached by two PATHs once', async () => {
    await writeFile(join(dir, 'a.yaml'), device('tk-a'));
    const { first } = await start([dir, join(dir, 'a.yaml')]);
    expect(first).toMatchObject({ complete: true, problems: [], contested: [] });
    expect(names(first)).toEqual(['tk-a']);
  });
});
