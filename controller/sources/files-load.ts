/**
 * Reading declaration files: which files a PATH names, and what one file declares. Used once by
 * `validate`, `plan` and `apply` (loadDeclarations) and on every scan by the watching FileSource.
 *
 * A PATH is a file (any name: it was named explicitly) or a directory, whose `*.yaml`/`*.yml`
 * entries are read, not recursively. Entries starting with '.' are skipped: that is where a
 * Kubernetes ConfigMap volume keeps its `..data` link and timestamped directories, whose files the
 * visible `name.yaml -> ..data/name.yaml` links already lead to.
 */
import { createHash } from 'node:crypto';
import { lstat, open, readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Problem } from '../schema/problem.js';
import type { DeclarationContext } from '../schema/validate.js';
import { DEFAULT_YAML_LIMITS, parseDeclarations, type Declaration, type YamlLimits } from '../schema/yaml-declarations.js';
import { resolveConflicts } from './conflicts.js';
import type { DesiredDevice, Policy } from '../model/desired.js';

export interface FileLoadOptions {
  context?: DeclarationContext;
  limits?: Partial<YamlLimits>;
  /** Report what this policy would refuse as problems (`validate`). */
  policy?: Policy;
}

/** What a file source knows at one moment. */
export interface FileSnapshot {
  /** Valid, unconflicted declarations, sorted by interface name. */
  devices: DesiredDevice[];
  /** Every problem, sorted by file and position. */
  problems: Problem[];
  /**
   * True when `devices` is everything the files declare: every PATH was listed, every file read,
   * and no file is invalid without an earlier valid version, and no device is contested. When
   * false, a consumer may create and update, but must not delete what is missing (fail static).
   */
  complete: boolean;
  /** Names (interface and object) declared more than once: leave those devices alone. */
  contested: string[];
  /** The declaration files read, as listed (PATH-relative spelling), sorted. */
  files: string[];
}

export interface ListedFile {
  /** The file as reached from its PATH, e.g. `decl/a.yaml`. */
  file: string;
  /** The PATH it was found under. */
  root: string;
  /** Resolved path, to read each file once even if two PATHs name it. */
  real: string;
  /** Whether `file` itself is a symbolic link (its target's directory is worth watching). */
  link: boolean;
}

export interface Listing {
  files: ListedFile[];
  problems: Problem[];
  /** PATHs that could not be listed: what was known under them must stay in force. */
  failedRoots: Set<string>;
  /** Each directory PATH listed and its identity (`path dev:ino`): one renamed over it is another. */
  dirs: string[];
}

const DECLARATION_FILE = /\.ya?ml$/;

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;
const describeError = (e: unknown): string => {
  const code = errno(e);
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'cannot be read (permission denied)';
  if (code === 'ELOOP') return 'is a symbolic link loop';
  return `cannot be read: ${e instanceof Error ? e.message : String(e)}`;
};

export async function listDeclarationFiles(paths: readonly string[]): Promise<Listing> {
  const files: ListedFile[] = [];
  const problems: Problem[] = [];
  const failedRoots = new Set<string>();
  const dirs: string[] = [];
  const seen = new Set<string>();
  const addFile = async (file: string, root: string, link: boolean) => {
    let real: string;
    try {
      real = await realpath(file);
    } catch (e) {
      // Vanished between readdir and now, or a dangling link (an entry dropped from a ConfigMap
      // just after the ..data swap): it declares nothing.
      if (errno(e) === 'ENOENT') return;
      throw e;
    }
    if (seen.has(real)) return;
    seen.add(real);
    files.push({ file, root, real, link });
  };
  for (const root of paths) {
    try {
      const st = await stat(root);
      if (st.isFile()) {
        await addFile(root, root, (await lstatIsLink(root)) ?? false);
        continue;
      }
      if (!st.isDirectory()) {
        problems.push({ file: root, message: 'is neither a file nor a directory' });
        failedRoots.add(root);
        continue;
      }
      dirs.push(`${root} ${st.dev}:${st.ino}`);
      const entries = await readdir(root, { withFileTypes: true });
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const entry of entries) {
        if (entry.name.startsWith('.') || !DECLARATION_FILE.test(entry.name)) continue;
        const file = join(root, entry.name);
        if (entry.isSymbolicLink()) {
          const target = await stat(file).catch(() => undefined);
          if (target?.isFile()) await addFile(file, root, true);
        } else if (entry.isFile()) {
          await addFile(file, root, false);
        }
      }
    } catch (e) {
      problems.push({ file: root, message: describeError(e) });
      failedRoots.add(root);
    }
  }
  return { files, problems, failedRoots, dirs };
}

async function lstatIsLink(path: string): Promise<boolean | undefined> {
  return lstat(path)
    .then((st) => st.isSymbolicLink())
    .catch(() => undefined);
}

/** Orders problems by file, keeping each file's own order (by position, from the parser). */
export function sortByFile(problems: Problem[]): Problem[] {
  return problems.sort((a, b) => ((a.file ?? '') < (b.file ?? '') ? -1 : (a.file ?? '') > (b.file ?? '') ? 1 : 0));
}

export type FileRead =
  | { kind: 'gone' }
  | { kind: 'unreadable'; problem: Problem }
  | { kind: 'text'; text: string; fingerprint: string };

/**
 * Reads a file, refusing to read more than the size limit even if the file grows meanwhile.
 * Problems name it `file`: the PATH's spelling, when `path` is where that resolved.
 */
export async function readDeclarationText(path: string, maxBytes: number, file = path): Promise<FileRead> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    if (errno(e) === 'ENOENT') return { kind: 'gone' };
    return { kind: 'unreadable', problem: { file, message: `file ${describeError(e)}` } };
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.alloc(Math.min(1 << 20, maxBytes + 1 - total));
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > maxBytes) {
        return { kind: 'unreadable', problem: { file, line: 1, col: 1, message: `file is larger than the ${maxBytes} bytes a declaration file may have` } };
      }
    }
    const bytes = Buffer.concat(chunks);
    const fingerprint = createHash('sha256').update(bytes).digest('hex');
    return { kind: 'text', text: bytes.toString('utf8').replace(/^\uFEFF/, ''), fingerprint };
  } catch (e) {
    return { kind: 'unreadable', problem: { file, message: `file ${describeError(e)}` } };
  } finally {
    await handle.close();
  }
}

export interface FileDeclarations {
  declarations: Declaration[];
  problems: Problem[];
  /** True when the file is valid: its declarations replace whatever it declared before. */
  valid: boolean;
}

/** Parses a file's text. An empty file is not valid: it is what a half-written file looks like. */
export function parseDeclarationText(text: string, file: string, options: FileLoadOptions = {}): FileDeclarations {
  if (text.length === 0) {
    return {
      declarations: [],
      valid: false,
      problems: [{ file, line: 1, col: 1, message: 'file is empty; a half-written file looks the same, so it changes nothing (delete the file to remove its devices)' }],
    };
  }
  const parsed = parseDeclarations(text, file, options);
  return { declarations: parsed.declarations, problems: parsed.problems, valid: parsed.problems.length === 0 };
}

/** Listings and reads in one scan before it gives up waiting for the files to hold still. */
export const SETTLE_ATTEMPTS = 3;

/**
 * What a listing found, where each file resolved, and which directories it listed. Two equal
 * views, one before and one after reading the files, mean no swap landed in between (of a symbolic
 * link such as git-sync's `repo` or a ConfigMap's `..data`, or of a directory renamed over a PATH):
 * the files read are one version of the tree, not part of the old and part of the new.
 */
export const viewOf = (l: Listing): string => JSON.stringify([l.files.map((f) => [f.file, f.real]), [...l.failedRoots].sort(), l.dirs]);

/**
 * Reads every declaration under `paths` once. Like the watching source, it reads each file where
 * the listing resolved it and lists again afterwards; files that would not hold still make the
 * snapshot incomplete with a problem, so that `apply` prunes nothing on half of a swap.
 */
export async function loadDeclarations(paths: readonly string[], options: FileLoadOptions = {}): Promise<FileSnapshot> {
  let listing = await listDeclarationFiles(paths);
  for (let attempt = 1; ; attempt++) {
    const { snapshot, allRead } = await readListing(listing, options);
    const again = await listDeclarationFiles(paths);
    if (allRead && viewOf(again) === viewOf(listing)) return snapshot;
    if (attempt >= SETTLE_ATTEMPTS) {
      const problem = { message: 'the declaration files changed while they were read (a symbolic link swap in progress?); run again once they hold still' };
      return { ...snapshot, complete: false, problems: sortByFile([...snapshot.problems, problem]) };
    }
    listing = again;
  }
}

async function readListing(listing: Listing, options: FileLoadOptions): Promise<{ snapshot: FileSnapshot; allRead: boolean }> {
  const maxBytes = options.limits?.maxBytes ?? DEFAULT_YAML_LIMITS.maxBytes;
  const problems = [...listing.problems];
  const declarations: Declaration[] = [];
  let complete = listing.failedRoots.size === 0;
  let allRead = true;
  const files: string[] = [];
  for (const f of listing.files) {
    // Where the listing resolved it (see viewOf); problems still name the PATH's spelling.
    const read = await readDeclarationText(f.real, maxBytes, f.file);
    if (read.kind === 'gone') {
      allRead = false;
      continue;
    }
    files.push(f.file);
    if (read.kind === 'unreadable') {
      problems.push(read.problem);
      complete = false;
      continue;
    }
    const parsed = parseDeclarationText(read.text, f.file, options);
    problems.push(...parsed.problems);
    if (parsed.valid) declarations.push(...parsed.declarations);
    else complete = false;
  }
  const resolved = resolveConflicts(declarations);
  problems.push(...resolved.problems);
  const snapshot = {
    devices: resolved.devices,
    problems: sortByFile(problems),
    complete: complete && resolved.contested.length === 0,
    contested: resolved.contested,
    files: files.sort(),
  };
  return { snapshot, allRead };
}
