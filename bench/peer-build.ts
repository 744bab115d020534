/**
 * The peers: libraries people pick today for the same work, each built locally from its own
 * package registry and driven by a small program of ours in bench/peers/ (none of their code is
 * in the repository). Everything they need is built outside the repository, under
 * ~/.cache/tunkeeper/bench-peers/:
 *   pyroute2 (PyPI, pinned in peers/pyroute2/requirements.txt): a virtualenv pyroute2-<version>/;
 *   vishvananda/netlink (Go module proxy, pinned by peers/go-netlink/go.mod + go.sum): bin/go-netlink-peer;
 *   tun-rs (crates.io, pinned by peers/tun-rs-io/Cargo.toml + Cargo.lock): target dir tun-rs-io/.
 * A missing toolchain or a failed build fails that peer only, with a message that says why; the
 * benchmark still reports tunkeeper and its reference. Each peer is built at most once per run.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from './paths.js';

const execFileAsync = promisify(execFile);

export type PeerName = 'pyroute2' | 'go-netlink' | 'tun-rs';

/**
 * The report rows each peer appears in, each with how the default run measures it there ('' for
 * as deep as tunkeeper): for `--list`. The workloads decide; this says it in one place. With
 * --long every peer takes as many samples as tunkeeper.
 */
export const PEER_ROWS: readonly { peer: string; rows: Readonly<Record<string, string>> }[] = [
  { peer: 'pyroute2', rows: { 'dump-routes-65k': 'one dump, not in the sweep, without --long', 'program-routes-65k': 'only with --long' } },
  { peer: 'vishvananda/netlink', rows: { 'dump-routes-65k': '3 samples without --long', 'program-routes-65k': '3 samples without --long' } },
  { peer: 'tun-rs', rows: { 'tun-read-pps': '3 samples without --long', 'tun-write-pps': '3 samples without --long' } },
  { peer: 'tun-rs offload', rows: { 'tun-read-pps': '3 samples without --long', 'tun-write-pps': '3 samples without --long' } },
];

/** `--list`'s peer note for a row: "peers: a (how), b", or '' when the row has none. */
export function peersNote(row: string): string {
  const parts = PEER_ROWS.flatMap(({ peer, rows }) => {
    const how = rows[row];
    return how === undefined ? [] : [how === '' ? peer : `${peer} (${how})`];
  });
  return parts.length === 0 ? '' : `peers: ${parts.join(', ')}`;
}

/** How to start a peer's driver: a program and the arguments before the driver's own. */
export interface PeerCommand {
  cmd: string;
  prefix: string[];
}

export type PeerBuild = { ok: true; command: PeerCommand; version: string } | { ok: false; error: string };

export const peerCacheDir = join(homedir(), '.cache', 'tunkeeper', 'bench-peers');
export const peerSourceDir = join(packageRoot, 'bench', 'peers');

/** Exactly one `pyroute2==X.Y.Z` line, so the venv is named after what it holds. */
export function pinnedPyroute2(requirements: string): string {
  const pins = requirements
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const m = pins.length === 1 ? /^pyroute2==(\d+(?:\.\d+)*)$/.exec(pins[0]!) : null;
  if (m === null) throw new Error(`peers/pyroute2/requirements.txt must pin exactly pyroute2==X.Y.Z, found: ${pins.join(', ') || 'nothing'}`);
  return m[1]!;
}

/** The version of `module` in a go.mod's require lines. */
export function goModVersion(goMod: string, module: string): string | null {
  const m = new RegExp(`^\\s*(?:require\\s+)?${module.replace(/[./]/g, '\\$&')}\\s+(v\\S+)`, 'm').exec(goMod);
  return m === null ? null : m[1]!;
}

/** The version of `crate` the Cargo.lock resolved. */
export function cargoLockVersion(lock: string, crate: string): string | null {
  const m = new RegExp(`\\[\\[package\\]\\]\\nname = "${crate}"\\nversion = "([^"]+)"`).exec(lock);
  return m === null ? null : m[1]!;
}

function failure(tool: string, e: unknown, hint: string): string {
  const err = e as { code?: string; stderr?: string; message?: string };
  if (err.code === 'ENOENT') return `${tool} not found (${hint})`;
  const detail = (err.stderr ?? '').trim().split('\n').slice(-4).join(' | ') || err.message || String(e);
  return `${tool} failed: ${detail}`;
}

async function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<void> {
  await execFileAsync(cmd, args, { ...opts, maxBuffer: 16 << 20, timeout: 15 * 60_000 });
}

async function buildPyroute2(log: (msg: string) => void): Promise<PeerBuild> {
  const dir = join(peerSourceDir, 'pyroute2');
  const requirements = join(dir, 'requirements.txt');
  let version: string;
  try {
    version = pinnedPyroute2(readFileSync(requirements, 'utf8'));
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
  const venv = join(peerCacheDir, `pyroute2-${version}`);
  const python = join(venv, 'bin', 'python');
  const stamp = join(venv, '.installed');
  if (!existsSync(stamp)) {
    log(`bench: building peer pyroute2 ${version} (venv in ${venv}, from PyPI)`);
    try {
      await run('python3', ['-m', 'venv', venv]);
    } catch (e) {
      return { ok: false, error: failure('python3 -m venv', e, 'apt-get install -y python3 python3-venv') };
    }
    try {
      await run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', requirements]);
      await run('touch', [stamp]);
    } catch (e) {
      return { ok: false, error: failure('pip install', e, 'pip in the venv') };
    }
  }
  return { ok: true, command: { cmd: python, prefix: [join(dir, 'routes_peer.py')] }, version };
}

async function buildGoNetlink(log: (msg: string) => void): Promise<PeerBuild> {
  const dir = join(peerSourceDir, 'go-netlink');
  const version = goModVersion(readFileSync(join(dir, 'go.mod'), 'utf8'), 'github.com/vishvananda/netlink') ?? '?';
  const out = join(peerCacheDir, 'bin', 'go-netlink-peer');
  log(`bench: building peer vishvananda/netlink ${version} (go build, Go module proxy, into ${out})`);
  try {
    await mkdir(join(peerCacheDir, 'bin'), { recursive: true });
    // -mod=readonly: go.sum must already pin every module; nothing is resolved anew at bench time.
    await run('go', ['build', '-mod=readonly', '-o', out, '.'], { cwd: dir });
  } catch (e) {
    return { ok: false, error: failure('go build', e, 'install Go from go.dev or apt-get install -y golang') };
  }
  return { ok: true, command: { cmd: out, prefix: [] }, version };
}

async function buildTunRs(log: (msg: string) => void): Promise<PeerBuild> {
  const dir = join(peerSourceDir, 'tun-rs-io');
  const version = cargoLockVersion(readFileSync(join(dir, 'Cargo.lock'), 'utf8'), 'tun-rs') ?? '?';
  const target = join(peerCacheDir, 'tun-rs-io');
  log(`bench: building peer tun-rs ${version} (cargo build --release --locked, crates.io, target ${target})`);
  try {
    await run('cargo', ['build', '--release', '--locked', '--quiet', '--manifest-path', join(dir, 'Cargo.toml')], {
      env: { ...process.env, CARGO_TARGET_DIR: target },
    });
  } catch (e) {
    return { ok: false, error: failure('cargo build', e, 'rustup.rs, or apt-get install -y cargo') };
  }
  return { ok: true, command: { cmd: join(target, 'release', 'tun-rs-io'), prefix: [] }, version };
}

const builders: Record<PeerName, (log: (msg: string) => void) => Promise<PeerBuild>> = {
  pyroute2: buildPyroute2,
  'go-netlink': buildGoNetlink,
  'tun-rs': buildTunRs,
};

const builds = new Map<PeerName, Promise<PeerBuild>>();

/** The peer's driver, built on first use in this run; a failure is returned, not thrown. */
export function peerProgram(name: PeerName, log: (msg: string) => void): Promise<PeerBuild> {
  let build = builds.get(name);
  if (build === undefined) {
    build = builders[name](log).catch((e: unknown) => ({ ok: false as const, error: e instanceof Error ? e.message : String(e) }));
    builds.set(name, build);
  }
  return build;
}
