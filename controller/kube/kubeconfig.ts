/**
 * Where the agent's API credentials come from: in a Pod (KUBERNETES_SERVICE_HOST is set) the
 * service account the DaemonSet runs as; outside, `--kubeconfig`, else $KUBECONFIG, else
 * ~/.kube/config (client-node's own search).
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfigClass } from './client-node.js';
import { DEFAULT_NAMESPACE } from './types.js';

/** client-node's KubeConfig, without its generated API set when the build made that possible (client-node.ts). */
export const kubeConfigClass = await loadKubeConfigClass();

/** Where a Pod's service account says which namespace it is in. */
export const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export interface KubeConfigChoice {
  /** An explicit kubeconfig file (`--kubeconfig`). */
  file?: string;
  env?: NodeJS.ProcessEnv;
}

export function loadKubeConfig(choice: KubeConfigChoice = {}): { kubeConfig: KubeConfig; from: string } {
  const env = choice.env ?? process.env;
  const kc = new kubeConfigClass.KubeConfig();
  if (choice.file !== undefined) {
    kc.loadFromFile(choice.file);
    return { kubeConfig: kc, from: choice.file };
  }
  if (env.KUBERNETES_SERVICE_HOST) {
    kc.loadFromCluster();
    return { kubeConfig: kc, from: 'in-cluster service account' };
  }
  if (env.KUBECONFIG) {
    kc.loadFromDefault();
    return { kubeConfig: kc, from: env.KUBECONFIG };
  }
  // client-node would fall back to http://localhost:8080, which is never what an agent wants.
  const file = join(env.HOME ?? homedir(), '.kube', 'config');
  if (!existsSync(file)) throw new Error(`no API server credentials: not in a Pod, no --kubeconfig, no KUBECONFIG and no ${file}`);
  kc.loadFromFile(file);
  return { kubeConfig: kc, from: file };
}

/**
 * The release namespace (where the status Lease is): `--namespace`; else, in a Pod, its own (the
 * chart passes POD_NAMESPACE; a Pod without it still has its service account's namespace file);
 * else tunkeeper-system.
 */
export function releaseNamespace(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, saFile = SERVICE_ACCOUNT_NAMESPACE_FILE): { namespace: string; from: string } {
  if (flag !== undefined && flag !== '') return { namespace: flag, from: '--namespace' };
  if (env.POD_NAMESPACE) return { namespace: env.POD_NAMESPACE, from: 'POD_NAMESPACE' };
  if (env.KUBERNETES_SERVICE_HOST && existsSync(saFile)) {
    const ns = readFileSync(saFile, 'utf8').trim();
    if (ns !== '') return { namespace: ns, from: saFile };
  }
  return { namespace: DEFAULT_NAMESPACE, from: 'default' };
}
