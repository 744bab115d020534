/**
 * The file source: declarations from YAML files, watched, so that edits, new files, deletions,
 * renames and atomic symlink swaps take effect without a restart.
 *
 * How changes are noticed. Every change is only a reason to look again: any event schedules a scan
 * (debounced, so an editor's write-rename-chmod burst or a ConfigMap update is one scan), and the
 * scan re-lists every PATH and re-reads what changed (by content hash). Nothing is inferred from
 * what an event says, so lost, duplicated or reordered events cannot leave a wrong state.
 * - fs.watch (inotify) on each PATH directory sees entries created, deleted, renamed and written.
 * - fs.watch on the directory holding a PATH sees the PATH itself replaced, and on the directory
 *   holding any symbolic link along a PATH sees that link swapped: git-sync swaps `repo ->
 *   .worktrees/<hash>` with a rename in the parent, and a watch on the old target would only ever
 *   see an orphaned directory. (A ConfigMap volume swaps `..data` inside the PATH directory
 *   itself, which the first watch sees.) Watches are re-made after every scan when a watched path
 *   now resolves to another directory.
 * - For a file reached through a symbolic link, the target's directory is watched as well.
 * - A slow periodic rescan is the safety net for what inotify cannot see: an overflowed event
 *   queue, network and FUSE filesystems, a PATH that does not exist yet under a parent that does
 *   not either, watches refused because fs.inotify.max_user_watches is exhausted.
 *
 * One snapshot per settled view. A scan reads each file where its listing resolved it, then lists
 * the PATHs again; if a swap landed in between (the files now resolve elsewhere, or one is gone),
 * it reads again. A view still changing after a few attempts gives an incomplete snapshot.
 *
 * Fail static. A file that cannot be read or parsed keeps its last valid declarations in force
 * (reported as a problem); a file that never was valid declares nothing and makes the snapshot
 * incomplete, as does a PATH that cannot be listed (its files keep their last declarations) and a
 * device declared twice. Consumers must not delete anything on an incomplete snapshot.
 */
import { watch, type FSWatcher } from 'node:fs';
import { lstat, stat } from 'node:fs/promises';
import { dirname, join, parse, resolve, sep } from 'node:path';
import { ReplaySubject, type Observable } from 'rxjs';
import equal from 'fast-deep-equal';
import type { Problem } from '../schema/problem.js';
import { DEFAULT_YAML_LIMITS, type Declaration } from '../schema/yaml-declarations.js';
import { resolveConflicts } from './conflicts.js';
import {
  listDeclarationFiles,
  parseDeclarationText,
  readDeclarationText,
  SETTLE_ATTEMPTS,
  sortByFile,
  viewOf,
  type FileLoadOptions,
  type FileSnapshot,
  type ListedFile,
  type Listing,
} from './files-load.js';

export type { FileSnapshot } from './files-load.js';

export interface FileSourceOptions extends FileLoadOptions {
  /** Files and directories of declarations. */
  paths: readonly string[];
  /** Quiet time after the last event before a scan. */
  debounceMs?: number;
  /** Longest a scan waits while events keep coming. */
  maxDelayMs?: number;
  /** Period of the safety-net rescan; 0 turns it off. */
  rescanIntervalMs?: number;
  /** Use fs.watch (default). Off, only the periodic rescan notices changes: for filesystems
   * without inotify events (NFS, some FUSE), with a shorter rescanIntervalMs. */
  watch?: boolean;
}

const UNSETTLED = 'the declaration files changed while they were read (a symbolic link swap in progress?); nothing missing from this read is deleted, looking again';

export const FILE_SOURCE_DEFAULTS = { debounceMs: 200, maxDelayMs: 2000, rescanIntervalMs: 60_000, watch: true };

interface FileState {
  root: string;
  fingerprint?: string;
  /** The declarations in force from this file: its last valid version. */
  inForce?: Declaration[];
  problems: Problem[];
  valid: boolean;
}

interface Watch {
  watcher: FSWatcher;
  /** The directory's identity when the watch was made; another one means the path was swapped. */
  ino: number;
  dev: number;
}

export class FileSource {
  private readonly options: Required<Omit<FileSourceOptions, 'context' | 'limits' | 'policy'>> & FileLoadOptions;
  private readonly subject = new ReplaySubject<FileSnapshot>(1);
  private states = new Map<string, FileState>();
  private readonly watches = new Map<string, Watch>();
  private latest: FileSnapshot | undefined;
  private scanning: Promise<void> | undefined;
  private rescanRequested = false;
  private debounceTimer: NodeJS.Timeout | undefined;
  private firstPendingEvent: number | undefined;
  private periodic: NodeJS.Timeout | undefined;
  private closed = false;
  private scans = 0;

  /** Snapshots: the latest one at once, then one per change (unchanged scans emit nothing). */
  readonly snapshots$: Observable<FileSnapshot> = this.subject.asObservable();

  constructor(options: FileSourceOptions) {
    this.options = { ...FILE_SOURCE_DEFAULTS, ...options, paths: options.paths.map((p) => p) };
  }

  /** Reads everything once, starts watching, and returns the first snapshot. */
  async start(): Promise<FileSnapshot> {
    await this.rescan();
    if (this.options.rescanIntervalMs > 0) {
      this.periodic = setInterval(() => this.schedule(0), this.options.rescanIntervalMs);
      this.periodic.unref();
    }
    return this.latest!;
  }

  /** The latest snapshot, if the first scan has finished. */
  current(): FileSnapshot | undefined {
    return this.latest;
  }

  /** How many scans have completed (for tests and metrics). */
  get scanCount(): number {
    return this.scans;
  }

  /** Scans now (after any scan in progress) and returns the resulting snapshot. */
  async rescan(): Promise<FileSnapshot> {
    this.rescanRequested = true;
    while (this.rescanRequested && !this.closed) {
      if (this.scanning) {
        await this.scanning;
        continue;
      }
      this.rescanRequested = false;
      this.scanning = this.scan().finally(() => {
        this.scanning = undefined;
      });
      await this.scanning;
    }
    return this.latest!;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    if (this.periodic) clearInterval(this.periodic);
    await this.scanning;
    for (const w of this.watches.values()) w.watcher.close();
    this.watches.clear();
    this.subject.complete();
  }

  /** An event happened: scan after things have been quiet for a moment. */
  private schedule(delay = this.options.debounceMs): void {
    if (this.closed) return;
    const now = Date.now();
    this.firstPendingEvent ??= now;
    const wait = Math.max(0, Math.min(delay, this.firstPendingEvent + this.options.maxDelayMs - now));
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      this.firstPendingEvent = undefined;
      this.rescan().catch(() => {
        // scan() reports its own failures as problems; nothing else can throw here.
      });
    }, wait);
  }

  private async scan(): Promise<void> {
    const maxBytes = this.options.limits?.maxBytes ?? DEFAULT_YAML_LIMITS.maxBytes;
    // One snapshot per settled view. A swap of a symbolic link (git-sync's `repo`, a ConfigMap's
    // `..data`) can land between the listing and the reads, or between two reads: the files read
    // would then mix two versions of the tree, e.g. a device moved from b.yaml to a.yaml in one
    // commit, with a.yaml read before the swap and b.yaml after, is in neither, and a complete
    // snapshot without it would have the agent delete the device and create it again. So the
    // files are read where the listing resolved them, and the PATHs are listed again afterwards:
    // the reads count only if that second listing finds the same files in the same places.
    let listing = await listDeclarationFiles(this.options.paths);
    let read: { states: Map<string, FileState>; allRead: boolean };
    let settled = false;
    for (let attempt = 1; ; attempt++) {
      read = await this.readListed(listing, maxBytes);
      const again = await listDeclarationFiles(this.options.paths);
      settled = read.allRead && viewOf(again) === viewOf(listing);
      if (settled || attempt >= SETTLE_ATTEMPTS || this.closed) break;
      listing = again;
    }
    if (!settled) {
      // Files this last attempt did not list or could not read keep what they declared: the
      // snapshot will be incomplete, and what it shows should not look like a deletion either.
      for (const [file, state] of this.states) if (!read.states.has(file)) read.states.set(file, state);
    }
    this.states = read.states;

    const problems: Problem[] = listing.problems.map((p) =>
      p.file !== undefined && listing.failedRoots.has(p.file) ? { ...p, message: `${p.message}; what it declared before stays in force` } : p,
    );
    const declarations: Declaration[] = [];
    let complete = listing.failedRoots.size === 0;
    if (!settled) {
      // Still changing after every attempt: what was read may be half of a swap. Apply nothing
      // that is missing from it (incomplete), and look again shortly.
      complete = false;
      problems.push({ message: UNSETTLED });
    }
    for (const [file, state] of [...this.states].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!state.valid) {
        if (state.inForce) {
          const n = state.inForce.length;
          problems.push({ file, message: `keeping the last valid version of this file (${n} device${n === 1 ? '' : 's'}) until it is fixed` });
        } else {
          complete = false;
        }
      }
      problems.push(...state.problems);
      if (state.inForce) declarations.push(...state.inForce);
    }
    const resolved = resolveConflicts(declarations);
    problems.push(...resolved.problems);
    const snapshot: FileSnapshot = {
      devices: resolved.devices,
      problems: sortByFile(problems),
      complete: complete && resolved.contested.length === 0,
      contested: resolved.contested,
      files: [...this.states.keys()].sort(),
    };
    this.scans++;
    if (!this.closed && this.options.watch) await this.updateWatches(listing.files);
    if (this.closed) return;
    if (this.latest === undefined || !equal(this.latest, snapshot)) {
      this.latest = snapshot;
      this.subject.next(snapshot);
    }
    if (!settled) this.schedule();
  }

  /**
   * Reads the listed files into a copy of the file states (scan() keeps the copy of its last
   * attempt). `allRead` is false when a listed file was gone by the time it was read: the listing
   * is stale (the file was deleted, or its directory swapped away and removed).
   */
  private async readListed(listing: Listing, maxBytes: number): Promise<{ states: Map<string, FileState>; allRead: boolean }> {
    const listed = new Set(listing.files.map((f) => f.file));
    const states = new Map<string, FileState>();
    // Files no longer listed are gone, unless their PATH could not be listed (fail static).
    for (const [file, state] of this.states) {
      if (listed.has(file) || listing.failedRoots.has(state.root)) states.set(file, { ...state });
    }
    let allRead = true;
    for (const f of listing.files) {
      // The resolved path, not the PATH's spelling: through a link swapped since the listing,
      // the spelling would read the new target's version into the old target's list.
      const read = await readDeclarationText(f.real, maxBytes, f.file);
      if (read.kind === 'gone') {
        allRead = false;
        continue;
      }
      const state = states.get(f.file) ?? { root: f.root, problems: [], valid: false };
      states.set(f.file, state);
      if (read.kind === 'unreadable') {
        state.fingerprint = undefined;
        state.valid = false;
        state.problems = [read.problem];
        continue;
      }
      if (read.fingerprint === state.fingerprint) continue;
      state.fingerprint = read.fingerprint;
      const parsed = parseDeclarationText(read.text, f.file, this.options);
      state.valid = parsed.valid;
      state.problems = parsed.problems;
      if (parsed.valid) state.inForce = parsed.declarations;
    }
    return { states, allRead };
  }

  /** The directories whose events can change what the PATHs contain (see the comment on top). */
  private async watchTargets(files: ListedFile[]): Promise<Set<string>> {
    const targets = new Set<string>();
    for (const p of this.options.paths) {
      const abs = resolve(p);
      const st = await stat(abs).catch(() => undefined);
      if (st?.isDirectory()) targets.add(abs);
      targets.add(dirname(abs));
      // Every symbolic link on the way to the PATH: watch the directory it sits in.
      const { root } = parse(abs);
      let at = root;
      for (const part of abs.slice(root.length).split(sep).filter(Boolean)) {
        const next = join(at, part);
        const l = await lstat(next).catch(() => undefined);
        if (!l) break;
        if (l.isSymbolicLink()) targets.add(at);
        at = next;
      }
    }
    for (const f of files) if (f.link) targets.add(dirname(f.real));
    return targets;
  }

  private async updateWatches(files: ListedFile[]): Promise<void> {
    const targets = await this.watchTargets(files);
    for (const [dir, w] of this.watches) {
      const st = await stat(dir).catch(() => undefined);
      if (!targets.has(dir) || !st || st.ino !== w.ino || st.dev !== w.dev) {
        w.watcher.close();
        this.watches.delete(dir);
      }
    }
    for (const dir of targets) {
      if (this.closed) return;
      if (this.watches.has(dir)) continue;
      const st = await stat(dir).catch(() => undefined);
      if (!st?.isDirectory()) continue;
      try {
        const watcher = watch(dir, { persistent: false }, () => this.schedule());
        // A watched directory that is deleted or unmounted ends its watch: look again, and the
        // next scan re-makes whatever watches still make sense.
        watcher.on('error', () => {
          watcher.close();
          if (this.watches.get(dir)?.watcher === watcher) this.watches.delete(dir);
          this.schedule();
        });
        this.watches.set(dir, { watcher, ino: st.ino, dev: st.dev });
        // Whatever changed between this scan's reads and this watch is not in any event: look
        // once more (cheap, unchanged files are not parsed again).
        this.schedule();
      } catch {
        // ENOSPC (inotify watch limit), EACCES, or gone meanwhile: the periodic rescan covers it.
      }
    }
  }

  /** Directories being watched (for tests and diagnostics). */
  watchedDirectories(): string[] {
    return [...this.watches.keys()].sort();
  }
}
