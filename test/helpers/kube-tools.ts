/**
 * The binaries the Kubernetes tier runs: kube-apiserver and kubectl, etcd and helm, and the two
 * GitOps health clients (test/helpers/gitops-clients.ts): `kstatus` (Flux's kstatus library,
 * sigs.k8s.io/cli-utils) and `argocd-lua-health` (Argo CD's way of running a health.lua, in
 * gopher-lua). Each is built with the Go toolchain from the module pins in
 * scripts/kube-tools/<module>/ (go.mod + go.sum, so the versions and every dependency's hash are
 * fixed by the repository; only the Go module proxy is contacted); the two clients' main.go is our
 * own code beside its pins. Builds take minutes, so they are cached outside the repository, in
 * `$TUNKEEPER_KUBE_TOOLS_CACHE` or `~/.cache/tunkeeper/kube-tools`, under a key that is the hash
 * of the pins, the Go version and any of our own sources (`sources`): changing one of those builds
 * afresh, nothing else does.
 *
 * `node scripts/kube-tools.mjs` (run by .ci/run before the tests) builds what is missing; the
 * tests only look up (kubeToolPaths) and never build, so a missing tool is reported, not waited for.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (this file runs from dist/test/helpers/). */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PINS = join(ROOT, 'scripts', 'kube-tools');

interface ToolSpec {
  /** Folder under scripts/kube-tools/ holding the go.mod that pins it. */
  module: string;
  /** Go package of the main program ('.' for our own main package in the module folder). */
  pkg: string;
  binary: string;
  /** Our own Go sources in the module folder, hashed into the cache key with the pins. */
  sources?: readonly string[];
}

const TOOLS = {
  apiserver: { module: 'apiserver', pkg: 'k8s.io/kubernetes/cmd/kube-apiserver', binary: 'kube-apiserver' },
  kubectl: { module: 'apiserver', pkg: 'k8s.io/kubernetes/cmd/kubectl', binary: 'kubectl' },
  etcd: { module: 'etcd', pkg: 'go.etcd.io/etcd/server/v3', binary: 'etcd' },
  helm: { module: 'helm', pkg: 'helm.sh/helm/v3/cmd/helm', binary: 'helm' },
  kstatus: { module: 'kstatus', pkg: '.', binary: 'kstatus', sources: ['main.go'] },
  argocdLua: { module: 'argocd-lua', pkg: '.', binary: 'argocd-lua-health', sources: ['main.go'] },
} satisfies Record<string, ToolSpec>;

export type KubeToolName = keyof typeof TOOLS;
export type KubeToolPaths = Record<KubeToolName, string>;

export function kubeToolsCache(): string {
  return process.env.TUNKEEPER_KUBE_TOOLS_CACHE ?? join(homedir(), '.cache', 'tunkeeper', 'kube-tools');
}

let goVersionMemo: string | undefined;
function goVersion(): string {
  if (goVersionMemo === undefined) {
    const r = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`the Go toolchain is needed to build the Kubernetes test tools: \`go env GOVERSION\` failed: ${r.error?.message ?? r.stderr}`);
    goVersionMemo = r.stdout.trim();
  }
  return goVersionMemo;
}

/** Where a tool's binary lives for the current pins and toolchain. */
function binaryPath(spec: ToolSpec): string {
  const h = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', ...(spec.sources ?? [])]) h.update(readFileSync(join(PINS, spec.module, f)));
  h.update(goVersion());
  return join(kubeToolsCache(), `${spec.module}-${h.digest('hex').slice(0, 16)}`, spec.binary);
}

/** The tools' paths if every one is built, else null (nothing is built here). */
export function kubeToolPaths(): KubeToolPaths | null {
  let paths: Partial<KubeToolPaths> = {};
  try {
    for (const [name, spec] of Object.entries(TOOLS) as Array<[KubeToolName, ToolSpec]>) {
      const p = binaryPath(spec);
      if (!existsSync(p)) return null;
      paths = { ...paths, [name]: p };
    }
  } catch {
    return null;
  }
  return paths as KubeToolPaths;
}

/** What is missing, for the message of a tier that cannot run. */
export function missingKubeTools(): string[] {
  try {
    return (Object.entries(TOOLS) as Array<[KubeToolName, ToolSpec]>).filter(([, s]) => !existsSync(binaryPath(s))).map(([n]) => n);
  } catch (e) {
    return [`all (${(e as Error).message})`];
  }
}

/**
 * Builds every missing tool, one `go build` each (kubectl after kube-apiserver costs little: the
 * build cache holds what they share). Each binary is written beside its final name and renamed into
 * place, so an interrupted build never leaves a half-written binary that later runs would trust.
 */
export function buildKubeTools(log: (line: string) => void = console.log): KubeToolPaths {
  for (const spec of Object.values(TOOLS)) {
    const target = binaryPath(spec);
    if (existsSync(target)) continue;
    mkdirSync(dirname(target), { recursive: true });
    const tmp = `${target}.partial-${process.pid}`;
    log(`building ${spec.binary} (${spec.pkg}) from scripts/kube-tools/${spec.module} with ${goVersion()}; a first build takes minutes`);
    const started = Date.now();
    const r = spawnSync('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', tmp, spec.pkg], {
      cwd: join(PINS, spec.module),
      stdio: 'inherit',
      // -mod=mod: go.sum is the pin; the module cache (not a vendor tree) holds the sources.
      env: { ...process.env, GOFLAGS: '-mod=mod', CGO_ENABLED: '0' },
    });
    if (r.status !== 0) {
      rmSync(tmp, { force: true });
      throw new Error(`go build of ${spec.pkg} in scripts/kube-tools/${spec.module} failed (exit ${r.status ?? r.signal})`);
    }
    renameSync(tmp, target);
    log(`built ${spec.binary} in ${Math.round((Date.now() - started) / 1000)} s: ${target}`);
  }
  const paths = kubeToolPaths();
  if (!paths) throw new Error(`kube tools still missing after the build: ${missingKubeTools().join(', ')}`);
  return paths;
}
