/**
 * Files the agent keeps in its state dir (the last complete cluster state, the rollout memory):
 * JSON, read back without trusting it, and written so that a crash or power cut leaves either the
 * old or the new version, never half of one (a temporary file in the same directory, fsync,
 * rename, fsync of the directory).
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';

export type JsonFileRead = { kind: 'read'; value: unknown } | { kind: 'absent' } | { kind: 'unusable'; problem: string };

/** The parsed file; a file that cannot be read or parsed is `unusable`, with why (naming it). */
export async function readJsonFile(file: string): Promise<JsonFileRead> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    return { kind: 'unusable', problem: `${file}: cannot read: ${(e as Error).message}` };
  }
  try {
    return { kind: 'read', value: JSON.parse(text) };
  } catch (e) {
    return { kind: 'unusable', problem: `${file}: not valid JSON (${(e as Error).message}); ignoring it` };
  }
}

/** Replaces `file` (inside `dir`, made 0700 if missing) with `text`, atomically and durably. */
export async function writeFileDurably(dir: string, file: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  // The rename itself is durable only once the directory is synced.
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
