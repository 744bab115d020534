/**
 * The house rules of controller/, checked on the source: data flows one way through the pipeline's
 * rooms (ARCHITECTURE.md), a CLI command never imports a sibling command, and the controller reaches
 * netlink/ only through its public index. A new arrow that runs up a floor fails here, with the
 * file and the import named, instead of growing into a circle.
 */
import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CONTROLLER = join(ROOT, 'controller');

/** The rooms in pipeline order: a room may import its own files and the rooms before it. */
export const FLOORS = ['model', 'schema', 'sources', 'observe', 'plan', 'apply', 'probe', 'reconcile', 'loop', 'rollout', 'telemetry', 'kube', 'agent', 'cli'] as const;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const f = join(dir, n);
    return statSync(f).isDirectory() ? sources(f) : n.endsWith('.ts') ? [f] : [];
  });
}

interface Arrow {
  from: string;
  to: string;
}

/** Every relative import of a controller file, static or dynamic, as repository paths. */
function arrows(): Arrow[] {
  const out: Arrow[] = [];
  for (const file of sources(CONTROLLER)) {
    const text = readFileSync(file, 'utf8');
    const from = relative(ROOT, file).split('\\').join('/');
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.\.?\/[^']+)'/g)) {
      const to = posix.normalize(posix.join(posix.dirname(from), m[1]!)).replace(/\.js$/, '.ts');
      out.push({ from, to });
    }
  }
  return out;
}

/** controller/<room>/... → the room's floor; a loose file at controller/ (only index.ts) is the top. */
function floorOf(path: string): number {
  const parts = path.split('/');
  if (parts.length === 2) return FLOORS.length;
  return FLOORS.indexOf(parts[1] as (typeof FLOORS)[number]);
}

describe('controller/ layout', () => {
  const all = arrows();

  it('has no loose files but the package index, and every room is a known floor', () => {
    const loose = sources(CONTROLLER).map((f) => relative(ROOT, f)).filter((f) => f.split('/').length === 2);
    expect(loose).toEqual(['controller/index.ts']);
    const rooms = readdirSync(CONTROLLER).filter((n) => statSync(join(CONTROLLER, n)).isDirectory());
    expect(rooms.filter((r) => !(FLOORS as readonly string[]).includes(r))).toEqual([]);
    expect(all.length).toBeGreaterThan(100);
  });

  it('imports run only down the pipeline (a room uses itself and the rooms before it)', () => {
    const up = all
      .filter((a) => a.to.startsWith('controller/'))
      .filter((a) => floorOf(a.to) > floorOf(a.from))
      .map((a) => `${a.from} -> ${a.to}`);
    expect(up).toEqual([]);
  });

  it('no CLI command imports a sibling command', () => {
    const sibling = all
      .filter((a) => a.from.startsWith('controller/cli/commands/') && a.to.startsWith('controller/cli/commands/'))
      .filter((a) => !a.from.endsWith('/index.ts'))
      .map((a) => `${a.from} -> ${a.to}`);
    expect(sibling).toEqual([]);
  });

  it('reaches netlink/ only through its public index', () => {
    const internal = all.filter((a) => a.to.startsWith('netlink/') && a.to !== 'netlink/index.ts').map((a) => `${a.from} -> ${a.to}`);
    expect(internal).toEqual([]);
  });

  it('reaches tun-native/ only through its public index', () => {
    const internal = all.filter((a) => a.to.startsWith('tun-native/') && a.to !== 'tun-native/index.ts').map((a) => `${a.from} -> ${a.to}`);
    expect(internal).toEqual([]);
  });
});
