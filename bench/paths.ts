/** Where things are: the package root (found from dist/bench/), reference sources, build cache. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bench'))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`bench: cannot find the package root from ${fileURLToPath(import.meta.url)}`);
}

export const packageRoot = findPackageRoot();
/** C sources of the reference programs and traffic tools. */
export const refSourceDir = join(packageRoot, 'bench', 'ref');
/** Compiled reference programs (git-ignored). */
export const refOutDir = join(packageRoot, 'bench', 'out');
/** Compiled bench scripts, e.g. the tunkeeper subjects run as child processes. */
export const distBenchDir = join(packageRoot, 'dist', 'bench');
