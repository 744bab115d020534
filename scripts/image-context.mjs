// The image's build context, and the hash of everything the image is made from. The context is
// the repository's own files (tracked, or new and not git-ignored), less what .dockerignore
// leaves out, copied into a fresh folder: nothing built or installed in the working tree (dist/,
// build/, node_modules) can reach the image, and the hash names exactly what did. With the base
// images' inputs and the Dockerfile hashed in too, an unchanged hash means an unchanged image.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** .dockerignore's patterns as tests on a context-relative path (Docker's rules, minus `!` and `**`). */
function ignoreMatcher(root) {
  let lines = [];
  try {
    lines = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n');
  } catch {
    // No .dockerignore: everything goes.
  }
  const patterns = lines
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      if (l.startsWith('!') || l.includes('**')) throw new Error(`.dockerignore pattern ${l} is not understood by scripts/image-context.mjs`);
      const body = l
        .replace(/^\/+|\/+$/g, '')
        .split('/')
        .map((part) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'))
        .join('/');
      // A pattern names a path from the context's root, and everything under it.
      return new RegExp(`^${body}(/|$)`);
    });
  return (path) => patterns.some((re) => re.test(path));
}

/** The context's files, sorted, relative to the repository root. */
export function contextFiles(root) {
  const r = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`git ls-files failed in ${root}: ${r.stderr}`);
  const ignored = ignoreMatcher(root);
  return [...new Set(r.stdout.split('\0').filter((p) => p !== ''))]
    .filter((p) => !ignored(p))
    .filter((p) => {
      try {
        lstatSync(join(root, p));
        return true;
      } catch {
        return false; // deleted in the working tree, not yet in git
      }
    })
    .sort();
}

/** sha256 over the context (paths and contents), the Dockerfile and the base images' key. */
export function imageInputs(root, baseKey) {
  const h = createHash('sha256');
  h.update(`base ${baseKey}\n`);
  h.update(readFileSync(join(root, 'Dockerfile')));
  for (const p of contextFiles(root)) {
    const full = join(root, p);
    const st = lstatSync(full);
    h.update(`\0${p}\0${st.mode & 0o111 ? 'x' : '-'}\0`);
    h.update(st.isSymbolicLink() ? `link:${readlinkSync(full)}` : readFileSync(full));
  }
  return h.digest('hex').slice(0, 16);
}

/** Copies the context into `dir` (which must not exist yet), Dockerfile included. */
export function writeContext(root, dir) {
  for (const p of [...contextFiles(root), 'Dockerfile', '.dockerignore']) {
    if (p === '.dockerignore' && !existsSync(join(root, p))) continue;
    const to = join(dir, p);
    mkdirSync(dirname(to), { recursive: true });
    const from = join(root, p);
    if (lstatSync(from).isSymbolicLink()) symlinkSync(readlinkSync(from), to);
    else cpSync(from, to, { preserveTimestamps: true });
  }
}
