/**
 * Where the Kubernetes tier's clusters keep their files (`/tmp/tkk-<runid>-…`), and the global
 * teardown's sweep of what a crashed worker left: the processes recorded in a cluster's `pids`
 * file are killed only if their command line names that cluster's folder (a recycled pid is
 * never hit), then the folder is removed. Kept apart from kube-cluster.ts, which needs jest's
 * globals and so cannot load in the global teardown.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export function kubeRunPrefix(): string {
  return join(tmpdir(), `tkk-${process.env.TUNKEEPER_TEST_RUN ?? String(process.ppid)}-`);
}

export function cleanLeftoverClusters(): string[] {
  const prefix = kubeRunPrefix();
  const found: string[] = [];
  for (const entry of readdirSync(dirname(prefix))) {
    const dir = join(dirname(prefix), entry);
    if (!dir.startsWith(prefix)) continue;
    found.push(dir);
    const pidFile = join(dir, 'pids');
    if (existsSync(pidFile)) {
      for (const line of readFileSync(pidFile, 'utf8').split('\n')) {
        const pid = Number(line);
        if (!Number.isInteger(pid) || pid <= 0) continue;
        try {
          if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return found;
}
