/**
 * The real agents of fleet-converge: `bin/tunkeeper run --kube` as the DaemonSet runs it, each
 * with a real kernel: a network namespace of its own, made here and deleted in stop() (and by the
 * abort cleanup). They are started before the simulated fleet, so one of them takes the status
 * Lease and the summary work (every TunNodeState, every Node) runs in a real agent, measured as
 * one (its RSS and CPU are in the log).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createBenchNetns, type BenchNetns } from '../netns.js';
import { packageRoot } from '../paths.js';
import { Proc } from '../processes.js';
import { procStat } from './apiserver-metrics.js';

export interface RealAgent {
  node: string;
  ns: BenchNetns;
  proc: Proc;
}

export async function startRealAgents(nodes: readonly string[], o: { kubeconfig: string; namespace: string; stateRoot: string }): Promise<RealAgent[]> {
  const agents: RealAgent[] = [];
  try {
    for (const node of nodes) {
      const ns = await createBenchNetns(`fleet-${node}`);
      const stateDir = join(o.stateRoot, node);
      await mkdir(stateDir, { recursive: true });
      const args = [join(packageRoot, 'bin', 'tunkeeper'), 'run', '--kube', '--kubeconfig', o.kubeconfig, '--node-name', node, '--namespace', o.namespace, '--netns', ns.name, '--state-dir', stateDir, '--metrics-address', 'off', '--log-level', 'warn'];
      agents.push({ node, ns, proc: Proc.start(`tunkeeper run --kube (${node})`, process.execPath, args) });
    }
    return agents;
  } catch (e) {
    await stopRealAgents(agents);
    throw e;
  }
}

/** The device as each real kernel has it (`ip -j link show`), MTU by node: the real side really converged. */
export async function realMtus(agents: readonly RealAgent[], ifname: string): Promise<Record<string, number | null>> {
  const out: Record<string, number | null> = {};
  for (const a of agents) {
    try {
      const [link] = JSON.parse(await a.ns.ip('-j', 'link', 'show', 'dev', ifname)) as Array<{ mtu: number }>;
      out[a.node] = link?.mtu ?? null;
    } catch {
      out[a.node] = null;
    }
  }
  return out;
}

export function realAgentStats(agents: readonly RealAgent[]): Array<{ node: string; cpuSeconds: number; rssMb: number }> {
  return agents.map((a) => {
    try {
      const s = procStat(a.proc.pid);
      return { node: a.node, cpuSeconds: s.cpuSeconds, rssMb: Math.round(s.rssBytes / 2 ** 20) };
    } catch {
      return { node: a.node, cpuSeconds: NaN, rssMb: NaN };
    }
  });
}

export async function stopRealAgents(agents: readonly RealAgent[]): Promise<void> {
  for (const a of agents) {
    await a.proc.stop('SIGTERM', 10_000).catch(() => undefined);
    await a.ns.delete();
  }
}
