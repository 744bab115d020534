/**
 * A file-only agent (`tunkeeper run -f`) never loads the Kubernetes client: its ~1,000 generated
 * modules cost ~70 MiB of resident memory and make every full GC slower (bench:
 * rss-100k-routes-mb). The agent runs as users run it, with a module resolution hook (Node's
 * module.register, passed in NODE_OPTIONS) that writes every module URL it resolves to stderr.
 */
import { describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CliProcess } from '../../helpers/cli.js';
import { withNetns } from '../../helpers/netns.js';
import { describeKernel } from '../../helpers/tiers.js';

const MARK = 'RESOLVED ';

const HOOK = `export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  process.stderr.write(${JSON.stringify(MARK)} + r.url + '\\n');
  return r;
}
`;

const DECLARATION = `apiVersion: tunkeeper.io/v1alpha1
kind: TunDevice
metadata:
  name: tk-mod0
spec:
  mode: tun
  addresses: [192.0.2.1/24]
  routes:
    - to: 198.51.100.0/24
`;

/** Runs fn with an environment whose NODE_OPTIONS installs the hook; `dir` is a scratch directory. */
async function withHook<T>(fn: (env: NodeJS.ProcessEnv, dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'tk-modules-'));
  try {
    await writeFile(join(dir, 'hook.mjs'), HOOK);
    await writeFile(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hook.mjs')).href)});\n`);
    return await fn({ ...process.env, NODE_OPTIONS: `--import=${pathToFileURL(join(dir, 'register.mjs')).href}` }, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function resolvedIn(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith(MARK))
    .map((l) => l.slice(MARK.length));
}

describeKernel('the file-only agent', () => {
  it('converges without loading @kubernetes/client-node', async () => {
    await withNetns(async (ns) => {
      const modules = await withHook(async (env, dir) => {
        await writeFile(join(dir, 'devices.yaml'), DECLARATION);
        const p = new CliProcess(['run', '-f', join(dir, 'devices.yaml'), '--netns', ns.name, '--metrics-address', 'off'], { env });
        try {
          await p.until((q) => q.stdout.includes('"reconcile converged'));
          p.kill('SIGTERM');
          expect((await p.exited).code).toBe(0);
        } finally {
          if (p.child.exitCode === null && p.child.signalCode === null) p.kill('SIGKILL');
          await p.exited.catch(() => undefined);
        }
        return resolvedIn(p.stderr);
      });
      // The hook saw the agent's own modules (it works) ...
      expect(modules.some((u) => u.endsWith('/controller/agent/agent.js'))).toBe(true);
      expect(modules.some((u) => u.endsWith('/controller/observe/observe.js'))).toBe(true);
      // ... and nothing of the cluster side.
      expect(modules.filter((u) => u.includes('@kubernetes/client-node') || u.includes('/controller/kube/'))).toEqual([]);
      const routes = await ns.ipJson<Array<{ dst: string }>>('route', 'show', 'proto', '116');
      expect(routes.map((r) => r.dst)).toContain('198.51.100.0/24');
    });
  });
});

describe('the agent with the cluster source', () => {
  it('still loads the Kubernetes client (--kube)', async () => {
    // No credentials anywhere (an empty HOME): the command fails right after loading the
    // kubeconfig module, before any cluster or namespace is touched.
    const r = await withHook(async (env, dir) => {
      const e: NodeJS.ProcessEnv = { ...env, HOME: dir };
      delete e['KUBECONFIG'];
      delete e['KUBERNETES_SERVICE_HOST'];
      return new CliProcess(['run', '--kube', '--node-name', 'n1', '--metrics-address', 'off'], { env: e }).exited;
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no API server credentials');
    const resolved = resolvedIn(r.stderr);
    expect(resolved.some((u) => u.includes('@kubernetes/client-node'))).toBe(true);
    // ... its KubeConfig, not the generated API set (~1,300 modules, ~45 MiB resident: controller/kube/client-node.ts).
    expect(resolved.some((u) => u.endsWith('/controller/kube/client-node/config.js'))).toBe(true);
    expect(resolved.filter((u) => /@kubernetes\/client-node\/dist\/gen\/(models|apis|types)\//.test(u))).toEqual([]);
  });
});
