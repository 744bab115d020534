/**
 * Running the cached `helm` on charts/tunkeeper outside a cluster (lint, template) and reading
 * what it renders as plain objects. Helm's own state (repositories, caches) goes to a temporary
 * HOME-like directory so the tests never read or write the user's Helm configuration.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CHART_DIR = join(ROOT, 'charts', 'tunkeeper');
export const PACKAGE_VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A helm runner with its own config/cache/data directories; `close` removes them. */
export class HelmRunner {
  private readonly home = mkdtempSync(join(tmpdir(), 'tunkeeper-helm-'));
  private valuesFiles = 0;

  constructor(private readonly helmPath: string) {}

  /** Resolves with the exit code; never rejects because helm failed. */
  run(args: string[]): Promise<HelmResult> {
    const env = {
      ...process.env,
      HELM_CONFIG_HOME: join(this.home, 'config'),
      HELM_CACHE_HOME: join(this.home, 'cache'),
      HELM_DATA_HOME: join(this.home, 'data'),
      // Lint and template need no cluster; make sure none is reached by accident.
      KUBECONFIG: join(this.home, 'no-kubeconfig'),
    };
    return new Promise((resolve) => {
      execFile(this.helmPath, args, { env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** A values file holding `values` (as YAML), for `-f`. */
  valuesFile(values: object): string {
    const file = join(this.home, `values-${++this.valuesFiles}.yaml`);
    // Helm reads values as YAML 1.1, where an unquoted yes/no/on/off is a boolean: write 1.1 so
    // such strings come out quoted.
    writeFileSync(file, stringify(values, { version: '1.1' }));
    return file;
  }

  /** `helm template` of the chart; throws with helm's message when rendering fails. */
  async template(opts: { release?: string; namespace?: string; values?: object; set?: string[] } = {}): Promise<Rendered> {
    const result = await this.run(this.templateArgs(opts));
    if (result.code !== 0) throw new Error(`helm template failed (${result.code}): ${result.stderr}`);
    return new Rendered(result.stdout);
  }

  templateArgs(opts: { release?: string; namespace?: string; values?: object; set?: string[] } = {}): string[] {
    const args = ['template', opts.release ?? 'tunkeeper', CHART_DIR, '--namespace', opts.namespace ?? 'tunkeeper'];
    if (opts.values) args.push('-f', this.valuesFile(opts.values));
    for (const s of opts.set ?? []) args.push('--set', s);
    return args;
  }

  close(): void {
    rmSync(this.home, { recursive: true, force: true });
  }
}

/** helm template's output: the YAML stream, and the objects in it. */
export class Rendered {
  readonly objects: K8sObject[];

  constructor(readonly yaml: string) {
    this.objects = parseAllDocuments(yaml)
      .map((d) => {
        if (d.errors.length > 0) throw new Error(`helm rendered invalid YAML: ${d.errors[0]!.message}`);
        return d.toJS() as K8sObject | null;
      })
      .filter((o): o is K8sObject => o !== null);
  }

  kinds(): string[] {
    return this.objects.map((o) => o.kind).sort();
  }

  /** The one object of this kind (and name); throws when there is none or more than one. */
  one(kind: string, name?: string): K8sObject {
    const found = this.objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
    if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, rendered ${found.length}`);
    return found[0]!;
  }

  has(kind: string): boolean {
    return this.objects.some((o) => o.kind === kind);
  }
}

/** The parts of a DaemonSet the tests read, typed as loosely as the assertions need. */
export interface PodSpecView {
  hostNetwork?: boolean;
  dnsPolicy?: string;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  priorityClassName?: string;
  tolerations?: unknown[];
  securityContext?: Record<string, unknown>;
  containers: ContainerView[];
  volumes: Array<{ name: string; hostPath?: { path: string; type?: string }; configMap?: { name: string } }>;
}

export interface ContainerView {
  name: string;
  image: string;
  args: string[];
  env: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  ports: Array<{ name: string; containerPort: number; protocol?: string }>;
  livenessProbe: { httpGet: { path: string; port: string | number } };
  readinessProbe: { httpGet: { path: string; port: string | number } };
  securityContext: Record<string, unknown>;
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean; subPath?: string }>;
  resources?: unknown;
}

export function podSpec(daemonSet: K8sObject): PodSpecView {
  return ((daemonSet.spec as { template: { spec: PodSpecView } }).template.spec);
}

export function agentContainer(daemonSet: K8sObject): ContainerView {
  const containers = podSpec(daemonSet).containers;
  if (containers.length !== 1) throw new Error(`expected one container, rendered ${containers.length}`);
  return containers[0]!;
}

/** Where each volume is mounted in the agent, with the volume's source. */
export function mounts(daemonSet: K8sObject): Record<string, { mountPath: string; readOnly?: boolean; subPath?: string; source: unknown }> {
  const spec = podSpec(daemonSet);
  const out: Record<string, { mountPath: string; readOnly?: boolean; subPath?: string; source: unknown }> = {};
  for (const m of agentContainer(daemonSet).volumeMounts) {
    const volume = spec.volumes.find((v) => v.name === m.name);
    if (!volume) throw new Error(`volumeMount ${m.name} has no volume`);
    const { name: _name, ...source } = volume;
    out[m.name] = { mountPath: m.mountPath, ...(m.readOnly !== undefined ? { readOnly: m.readOnly } : {}), ...(m.subPath ? { subPath: m.subPath } : {}), source };
  }
  return out;
}
