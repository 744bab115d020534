/**
 * Loads the compiled addon (build/Release/tunkeeper_native.node) once per JS context and
 * registers the error class. Facade modules (tun.ts, netlink-socket.ts) declare the typed shape
 * of the part of the binding they use; nothing outside tun-native touches the raw binding.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeError } from './errors.js';

interface BaseBinding {
  setErrorClass(ctor: typeof NativeError): void;
  checkNetns(path: string): void;
}

function findPackageRoot(): string {
  // Compiled to dist/tun-native/native.js; the source tree is two levels up from there.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('tunkeeper: cannot find the package root (binding.gyp) from ' + fileURLToPath(import.meta.url));
}

function load(): BaseBinding & Record<string, unknown> {
  const root = findPackageRoot();
  const file = join(root, 'build', 'Release', 'tunkeeper_native.node');
  if (!existsSync(file)) {
    throw new Error(`tunkeeper: the native addon is not built (${file} is missing); run \`npm run build\``);
  }
  const binding = createRequire(import.meta.url)(file) as BaseBinding & Record<string, unknown>;
  binding.setErrorClass(NativeError);
  return binding;
}

export const native = load();
