/**
 * Compiles the reference programs (bench/ref/*.c, our own code) with `cc -O2` into bench/out/ at
 * bench time. A program is rebuilt only when its key changes: the compiler's version, the flags
 * and the text of every source and header in bench/ref/.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { refOutDir, refSourceDir } from './paths.js';

const execFileAsync = promisify(execFile);
const CC = process.env.CC ?? 'cc';
const CFLAGS = ['-O2', '-Wall', '-Wextra', '-Werror', '-std=gnu11'];

export interface RefPrograms {
  /** Path of the compiled program built from bench/ref/<name>.c. */
  path(name: string): string;
}

export async function buildReferencePrograms(log: (msg: string) => void): Promise<RefPrograms> {
  const files = (await readdir(refSourceDir)).sort();
  const sources = files.filter((f) => f.endsWith('.c'));
  const ccVersion = await execFileAsync(CC, ['--version']).then(
    (r) => r.stdout.split('\n')[0] ?? '',
    (e: Error) => {
      throw new Error(`bench: the C compiler "${CC}" cannot run (${e.message}); the reference programs need it`);
    },
  );
  const hash = createHash('sha256').update(ccVersion).update(CFLAGS.join(' '));
  for (const f of files) hash.update(f).update(await readFile(join(refSourceDir, f)));
  const key = hash.digest('hex');

  await mkdir(refOutDir, { recursive: true });
  const built = new Map<string, string>();
  for (const source of sources) {
    const name = source.slice(0, -2);
    const out = join(refOutDir, name);
    const keyFile = `${out}.key`;
    const current = existsSync(out) && existsSync(keyFile) && (await readFile(keyFile, 'utf8')) === key;
    if (!current) {
      log(`bench: compiling bench/ref/${source}`);
      const tmp = `${out}.tmp-${process.pid}`;
      try {
        await execFileAsync(CC, [...CFLAGS, '-o', tmp, join(refSourceDir, source)]);
      } catch (e) {
        const err = e as { stderr?: string; message: string };
        throw new Error(`bench: compiling bench/ref/${source} failed:\n${err.stderr?.trim() || err.message}`);
      }
      await rename(tmp, out);
      await writeFile(keyFile, key);
    }
    built.set(name, out);
  }
  return {
    path(name: string): string {
      const p = built.get(name);
      if (p === undefined) throw new Error(`bench: no reference program bench/ref/${name}.c`);
      return p;
    },
  };
}
