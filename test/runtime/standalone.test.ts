/**
 * The image under runc, as the chart's DaemonSet runs it in standalone mode: the pod exactly as
 * `helm template` renders it (kubelet.ts turns it into podman's arguments), the examples as the
 * declarations ConfigMap, in a network namespace that plays the node's. The agent converges the
 * examples, repairs drift, answers its probes in the node's namespace, runs with NET_ADMIN as its
 * only capability, no-new-privileges, seccomp and a read-only root, and stops on SIGTERM with
 * exit 0, leaving its devices. The host's own namespace is the same before and after.
 */
import { beforeAll, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDeclarations } from '../../controller/sources/files-load.js';
import { mounts, ROOT, type Rendered } from '../chart/chart-render.js';
import { pollUntil } from '../helpers/poll.js';
import { hostSnapshot, type HostSnapshot } from './host-snapshot.js';
import { httpGetInNetns } from './in-netns.js';
import { podmanPlan } from './kubelet.js';
import { renderChart, withNode } from './node.js';
import { Pod, type LogLine } from './pod.js';
import { describeRuntime } from './tier.js';

const EXAMPLES = join(ROOT, 'examples');
const examples = Object.fromEntries(
  readdirSync(EXAMPLES)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => [f, readFileSync(join(EXAMPLES, f), 'utf8')]),
);

interface IpLink {
  ifname: string;
  mtu: number;
  flags: string[];
  ifalias?: string;
}

function tunkeeper(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin', 'tunkeeper'), ...args], (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

const converged = (l: LogLine) => l.outcome === 'converged';

describeRuntime('the image in standalone mode, as the chart runs it', (built) => {
  let rendered: Rendered;
  let before: HostSnapshot;

  beforeAll(async () => {
    before = await hostSnapshot();
    rendered = await renderChart(built, { mode: 'standalone', standalone: { declarations: examples } }, { namespace: 'tunkeeper-system' });
  });


  it('converges the examples, repairs drift, answers its probes, and stops on SIGTERM leaving the devices', async () => {
    await withNode('standalone', async (node) => {
      const plan = podmanPlan(rendered.one('DaemonSet'), built.image, node.context(rendered));
      // Standalone pods get no token: the kubelet mounted none, and none was asked for.
      expect(plan.createArgs.some((a) => a.includes('/var/run/secrets/kubernetes.io'))).toBe(false);
      const pod = await Pod.start(built, plan, 'runc-1.1');
      node.pods.push(pod);

      const pass = await pod.waitForLog('a converged reconcile', converged);
      expect(pass).toMatchObject({ outcome: 'converged', failures: 0 });
      // Converged means in sync with every example: `tunkeeper plan` from outside, on the same files, finds nothing to do.
      const source = mounts(rendered.one('DaemonSet')).declarations?.source as { configMap: { name: string } };
      const declarations = join(node.dir, 'kubelet', 'configmaps', source.configMap.name);
      expect(readdirSync(declarations).sort()).toEqual(Object.keys(examples).sort());
      const inSync = await tunkeeper(['plan', '-f', declarations, '--netns', node.ns.name]);
      expect({ code: inSync.code, stderr: inSync.stderr }).toEqual({ code: 0, stderr: '' });
      const links = await node.ns.ipJson<IpLink[]>('link', 'show');
      const declared = (await loadDeclarations([declarations])).devices.map((d) => d.ifname);
      expect(declared.length).toBe(Object.keys(examples).length);
      expect(links.map((l) => l.ifname).sort()).toEqual(['lo', ...declared].sort());

      // The probes the chart declares, asked where the kubelet asks them: in the node's namespace.
      for (const probe of [plan.liveness, plan.readiness]) {
        const answer = await pollUntil(`${probe.path} answering 200`, async () => {
          const a = await httpGetInNetns(node.ns.path, `http://127.0.0.1:${probe.port}${probe.path}`);
          return a.status === 200 ? a : undefined;
        });
        expect(answer.body).toMatch(/^ok/);
      }

      // Drift made behind the agent's back is put back.
      const seen = pod.count;
      await node.ns.ip('link', 'set', 'tk-p2p0', 'mtu', '1300');
      await pod.waitForLog('a pass repairing the MTU', (l) => converged(l) && ((l.repairs as { mtu?: number } | undefined)?.mtu ?? 0) > 0, { after: seen });
      expect((await node.ns.ipJson<IpLink[]>('link', 'show', 'dev', 'tk-p2p0'))[0]?.mtu).toBe(1420);

      // SIGTERM (podman stop, as the kubelet stops a pod): a clean exit, and the devices stay.
      expect(await pod.stop()).toBe(0);
      expect(pod.lines.some((l) => l.msg === 'tunkeeper agent stopped; devices left in place')).toBe(true);
      const after = await node.ns.ipJson<IpLink[]>('link', 'show');
      expect(after.map((l) => l.ifname).sort()).toEqual(['lo', ...declared].sort());
    });
  });

  it('runs with NET_ADMIN as its only capability, no-new-privileges, seccomp on, and cannot write its root', async () => {
    await withNode('confined', async (node) => {
      const plan = podmanPlan(rendered.one('DaemonSet'), built.image, node.context(rendered));
      const pod = await Pod.start(built, plan, 'runc-1.1');
      node.pods.push(pod);
      await pod.waitForLog('a converged reconcile', converged);

      // The agent itself (the container's pid 1), read from this machine's /proc.
      const status = Object.fromEntries(
        readFileSync(`/proc/${pod.pid}/status`, 'utf8')
          .split('\n')
          .map((l) => l.split(':\t'))
          .filter((kv) => kv.length === 2),
      ) as Record<string, string>;
      const NET_ADMIN = (1n << 12n).toString(16).padStart(16, '0');
      expect({ CapEff: status.CapEff, CapPrm: status.CapPrm, CapBnd: status.CapBnd, CapAmb: status.CapAmb, CapInh: status.CapInh }).toEqual({
        CapEff: NET_ADMIN,
        CapPrm: NET_ADMIN,
        CapBnd: NET_ADMIN,
        CapAmb: '0000000000000000',
        CapInh: '0000000000000000',
      });
      expect(status.NoNewPrivs).toBe('1');
      // 2: a seccomp filter is in force (the runtime's default profile).
      expect(status.Seccomp).toBe('2');
      expect(status.Uid?.split('\t')[0]).toBe('0');

      // The root filesystem is mounted read-only, and a write into it fails.
      const rootMount = readFileSync(`/proc/${pod.pid}/mountinfo`, 'utf8')
        .split('\n')
        .find((l) => l.split(' ')[4] === '/');
      expect(rootMount?.split(' ')[5]?.split(',')).toContain('ro');
      const write = await pod.exec(['/usr/local/bin/node', '-e', "require('fs').writeFileSync('/app/written', 'x')"]);
      expect(write.code).not.toBe(0);
      expect(write.stderr).toContain('EROFS');
      // So does a write to the mounted settings (a ConfigMap: read-only).
      const settings = await pod.exec(['/usr/local/bin/node', '-e', "require('fs').appendFileSync('/etc/tunkeeper/agent.yaml', 'x')"]);
      expect(settings.stderr).toContain('EROFS');

      expect(await pod.stop()).toBe(0);
    });
  });

  it('leaves the host\'s own namespace as it was: links, addresses, routes and rules', async () => {
    // Everything above happened in namespaces the tests made (each removed with its pod).
    expect(await hostSnapshot()).toEqual(before);
  });
});
