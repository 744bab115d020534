/**
 * Where the agent's API credentials come from: in a Pod (KUBERNETES_SERVICE_HOST is set) the
 * service account the DaemonSet runs as; outside, `--kubeconfig`, else $KUBECONFIG, else
 * ~/.kube/config (client-node's own search).
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

export interface KubeConfigChoice {
  /** An explicit kubeconfig file (`--kubeconfig`). */
  file?: string;
  env?: NodeJS.ProcessEnv;
}

export function loadKubeConfig(choice: KubeConfigChoice = {}): { kubeConfig: KubeConfig; from: string } {
  const env = choice.env ?? process.env;
  const kc = new KubeConfig();
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
