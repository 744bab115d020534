/**
 * rss-kube-agent-mb (issue #16): the resident set (VmRSS, MiB) of the agent as the DaemonSet runs
 * it, `tunkeeper run --kube` against a real kube-apiserver and etcd (the Kubernetes tier's, started
 * on loopback by test/helpers/kube-server.ts), beside the same 100,000 foreign routes in main as
 * rss-100k-routes-mb. Ten TunDevices (the same declarations as rss-100k-routes-mb's file) select the
 * agent's Node by label; it converges, reports TunNodeState, holds the status Lease (a one-node
 * fleet: it writes the TunDevices' status too), and repairs five drifts. Median over the samples,
 * each a fresh agent on the same cluster. The difference to rss-100k-routes-mb is what the cluster
 * side costs on every node. Target: at most 110 MiB (logged as met or not, never asserted).
 *
 * The agent's netlink sockets are in the bench's namespace (--netns), which the runner deletes; its
 * HTTP to the API server is on the host's loopback, as in a Pod with host networking.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { median } from '../stats.js';
import type { Benchmark } from '../benchmark.js';
import { onAbort } from '../cleanup.js';
import { declaration, nowMs, prepareControllerWorkload, rssAfterRepairs, startAgent } from '../controller-workload.js';
import { startKubeCluster, type KubeCluster } from '../../test/helpers/kube-server.js';
import { missingKubeTools } from '../../test/helpers/kube-tools.js';

const DRIFTS = 5;
const DEVICES = 10;
const TARGET_MIB = 110;
const NODE = 'tkb-node';
const LABEL = { 'bench.tunkeeper.io/agent': 'true' } as const;
/** The chart's release namespace default: where the status Lease is. */
const RELEASE_NAMESPACE = 'tunkeeper-system';

export const rssKubeAgentMb: Benchmark = {
  name: 'rss-kube-agent-mb',
  unit: 'MiB',
  better: 'lower',
  description: 'resident memory (VmRSS, MiB) of `run --kube` against a real API server, 10 TunDevices, beside 100k foreign routes, after a few relists',
  run: async (ctx) => {
    const missing = missingKubeTools();
    if (missing.length > 0) throw new Error(`needs the Kubernetes tools (${missing.join(', ')} missing): run \`node scripts/kube-tools.mjs\` once`);
    const w = await prepareControllerWorkload(ctx, DEVICES);
    const work = await mkdtemp(join(tmpdir(), 'tkb-kube-'));
    let cluster: KubeCluster | undefined;
    const unregister = onAbort(() => cluster?.close());
    try {
      const started = nowMs();
      cluster = await startKubeCluster();
      const c = cluster;
      const kubectl = async (args: string[], input?: string): Promise<string> => {
        const r = await c.kubectl(args, input === undefined ? {} : { input });
        if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
        return r.stdout;
      };
      await c.createNode(NODE, LABEL);
      await kubectl(['create', 'namespace', RELEASE_NAMESPACE]);
      const file = join(work, 'devices.yaml');
      await writeFile(file, declaration(DEVICES, LABEL));
      await kubectl(['apply', '-f', file]);
      ctx.log(`  API server and etcd up, Node ${NODE} and ${DEVICES} TunDevices created, in ${((nowMs() - started) / 1000).toFixed(1)} s`);

      const figures: number[] = [];
      for (let s = 0; s < ctx.samples; s++) {
        const stateDir = join(work, `state-${s}`);
        const agent = await startAgent(ctx, w, ['--kube', '--kubeconfig', c.kubeconfigPath, '--node-name', NODE, '--namespace', RELEASE_NAMESPACE, '--state-dir', stateDir], { files: false });
        try {
          await waitReported(kubectl, s === 0 ? 120_000 : 60_000);
          const { first, rss, peak } = await rssAfterRepairs(w, agent, DRIFTS);
          figures.push(rss);
          ctx.log(`  rss-kube-agent-mb ${s + 1}/${ctx.samples}: ${rss.toFixed(1)} MiB after ${DRIFTS} repairs (${first.toFixed(1)} MiB once reported Ready, peak ${peak.toFixed(1)} MiB)`);
        } finally {
          await agent.stop();
        }
      }
      const project = median(figures);
      ctx.log(`  rss-kube-agent-mb: median ${project.toFixed(1)} MiB; target <= ${TARGET_MIB} MiB ${project <= TARGET_MIB ? 'met' : 'NOT met'}`);
      return { project, reference: null, referenceName: null, projectSamples: figures };
    } finally {
      await cluster?.close();
      unregister();
      await rm(work, { recursive: true, force: true });
      await w.close();
    }
  },
};

/** Until the agent's TunNodeState reports every device Ready (the status path has run). */
async function waitReported(kubectl: (args: string[]) => Promise<string>, timeoutMs: number): Promise<void> {
  const deadline = nowMs() + timeoutMs;
  for (;;) {
    const out = await kubectl(['get', 'tunnodestate', NODE, '-o', 'json', '--ignore-not-found']);
    if (out.trim() !== '' && readyDevices(JSON.parse(out)) >= DEVICES) return;
    if (nowMs() > deadline) throw new Error(`TunNodeState ${NODE} did not report ${DEVICES} devices Ready within ${timeoutMs} ms`);
    await sleep(200);
  }
}

function readyDevices(state: unknown): number {
  return (state as { status?: { readyCount?: number } }).status?.readyCount ?? 0;
}
