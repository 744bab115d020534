/**
 * @kubernetes/client-node's KubeConfig, loaded without the client's generated API set.
 *
 * The agent takes one thing from client-node: KubeConfig (kubeconfig files, the in-cluster service
 * account, auth plugins, TLS options per request); its requests are api-client.ts's. But the
 * package's config.js imports `./gen/index.js`, which brings every generated model and API class:
 * ~1,300 modules, 15 MiB of source text kept in the heap, ~45 MiB of resident memory on every node
 * (bench: rss-kube-agent-mb). The package has no smaller entry point and Node 20 has no in-thread
 * module hooks (a `module.register` hook thread costs ~12 MiB itself), so the build
 * (scripts/slim-client-node.mjs) puts the package's own config.js, unchanged, beside a `gen/index.js`
 * of the two names it imports from there: dist/controller/kube/client-node/. Everything else it
 * imports is the package's own modules, so the class is client-node's code as released.
 *
 * Without that copy (a build that ran tsc alone), or when it was made from another version of the
 * package than the one installed, this loads the whole package: the same class, more memory.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

export type KubeConfigClass = typeof KubeConfig;

export interface LoadedKubeConfigClass {
  KubeConfig: KubeConfigClass;
  /** 'slim' without the generated API set; 'full' the package's index. */
  loaded: 'slim' | 'full';
  /** Why the full package was loaded. */
  why?: string;
}

const SLIM_DIR = new URL('./client-node/', import.meta.url);

export async function loadKubeConfigClass(): Promise<LoadedKubeConfigClass> {
  let why: string;
  try {
    const slim = JSON.parse(await readFile(new URL('slim.json', SLIM_DIR), 'utf8')) as { version?: unknown };
    const installed = (createRequire(import.meta.url)('@kubernetes/client-node/package.json') as { version: string }).version;
    if (slim.version === installed) {
      const m = (await import(new URL('config.js', SLIM_DIR).href)) as { KubeConfig: KubeConfigClass };
      return { KubeConfig: m.KubeConfig, loaded: 'slim' };
    }
    why = `the slim KubeConfig was made from client-node ${String(slim.version)}, ${installed} is installed`;
  } catch (e) {
    why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no slim KubeConfig in this build (scripts/slim-client-node.mjs)' : `the slim KubeConfig did not load: ${(e as Error).message}`;
  }
  const { KubeConfig: full } = await import('@kubernetes/client-node');
  return { KubeConfig: full, loaded: 'full', why };
}
