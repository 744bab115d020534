/**
 * /dev/net/tun where the runtime's device cgroup does not allow it (crun; runc 1.2.0 to 1.2.3),
 * played for real (device-policy.ts): the container's devices cgroup denies c 10:200 unless the
 * OCI spec allows it. With the chart's default hostPath mount the agent's open fails with the
 * kernel's EPERM, and the agent says the device cgroup refused it (not the capability) and how
 * to fix it. With the documented fix, tunDevice.resourceName (a device plugin resource, which the
 * kubelet turns into a device the runtime allows), the same runtime converges.
 */
import { beforeAll, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../chart/chart-render.js';
import { DEVICE_CGROUP_DENIED } from '../../tun-native/tun-device-access.js';
import { hostSnapshot, type HostSnapshot } from './host-snapshot.js';
import { podmanPlan } from './kubelet.js';
import { renderChart, withNode } from './node.js';
import { Pod } from './pod.js';
import { describeRuntime } from './tier.js';

const P2P = readFileSync(join(ROOT, 'examples', 'point-to-point.yaml'), 'utf8');
// What the chart README tells operators to run: squat/generic-device-plugin's resource for /dev/net/tun.
const RESOURCE = 'squat.ai/tun';

describeRuntime('/dev/net/tun on a runtime whose device cgroup lacks it', (built) => {
  const standalone = { mode: 'standalone', standalone: { declarations: { 'p2p.yaml': P2P } } };
  let plain: Awaited<ReturnType<typeof renderChart>>;
  let withPlugin: Awaited<ReturnType<typeof renderChart>>;

  let before: HostSnapshot;

  beforeAll(async () => {
    before = await hostSnapshot();
    plain = await renderChart(built, standalone);
    withPlugin = await renderChart(built, { ...standalone, tunDevice: { resourceName: RESOURCE } });
  });

  it('the hostPath mount alone: the open is refused, and the agent names the device cgroup and the fix, not the capability', async () => {
    await withNode('denied', async (node) => {
      const plan = podmanPlan(plain.one('DaemonSet'), built.image, node.context(plain));
      const pod = await Pod.start(built, plan, 'without-tun');
      node.pods.push(pod);
      // The device cgroup really denies it: the spec does not allow it, and the kernel's list lacks it.
      expect(pod.devicePolicy?.specAllowsTun).toBe(false);
      expect(pod.devicePolicy?.devicesList).not.toContain('c 10:200 rwm');

      const refused = await pod.waitForLog('the refused open in the log', (l) => JSON.stringify(l).includes('open /dev/net/tun: EPERM'));
      const text = JSON.stringify(refused);
      expect(text).toContain(DEVICE_CGROUP_DENIED.replace(/"/g, '\\"'));
      expect(text).not.toContain('needs CAP_NET_ADMIN');
      // The agent stays up (it retries) and nothing was created.
      expect((await node.ns.ipJson<Array<{ ifname: string }>>('link', 'show')).map((l) => l.ifname)).toEqual(['lo']);
      expect(await pod.stop()).toBe(0);
    });
  });

  it('the documented fix, tunDevice.resourceName: the device plugin\'s device is allowed, and the agent converges', async () => {
    await withNode('plugin', async (node) => {
      // What the device plugin answers the kubelet for one unit of the resource.
      const plan = podmanPlan(withPlugin.one('DaemonSet'), built.image, node.context(withPlugin, { devicePlugins: { [RESOURCE]: ['/dev/net/tun'] } }));
      const pod = await Pod.start(built, plan, 'without-tun');
      node.pods.push(pod);
      expect(pod.devicePolicy?.specAllowsTun).toBe(true);
      expect(pod.devicePolicy?.devicesList).toContain('c 10:200 rwm');

      const pass = await pod.waitForLog('a converged reconcile', (l) => l.outcome === 'converged');
      expect(pass).toMatchObject({ failures: 0 });
      const link = (await node.ns.ipJson<Array<{ ifname: string; mtu: number; ifalias?: string }>>('link', 'show', 'dev', 'tk-p2p0'))[0];
      expect(link).toMatchObject({ mtu: 1420, ifalias: 'tunkeeper:tk-p2p' });
      expect(pod.lines.some((l) => JSON.stringify(l).includes('EPERM'))).toBe(false);
      expect(await pod.stop()).toBe(0);
    });
  });

  it('leaves the host\'s own namespace as it was: links, addresses, routes and rules', async () => {
    expect(await hostSnapshot()).toEqual(before);
  });
});
