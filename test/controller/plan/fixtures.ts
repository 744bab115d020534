/**
 * The plan tests' kernel model worlds (a host's own, foreign devices) and their convergence; the
 * declaration builders are test/helpers/devices.ts, re-exported here for the plan tests.
 */
import type { DesiredDevice, Policy } from '../../../controller/model/desired.js';
import { RTPROT_BOOT, RTPROT_STATIC } from '../../../controller/model/observed.js';
import { plan, type Plan, type PlanOptions } from '../../../controller/plan/index.js';
import { KernelModel, type KernelModelOptions } from '../../helpers/kernel-model.js';

import { POLICY } from '../../helpers/devices.js';

export { PROTO, POLICY, addr, route, device } from '../../helpers/devices.js';

/** A host with its own NIC (eth0, up, 203.0.113.10/24, a static default route) and loopback. */
export function hostWorld(options: KernelModelOptions = {}): KernelModel {
  const k = new KernelModel(undefined, options);
  k.addLink({ ifname: 'lo', kind: undefined, up: true, mtu: 65536, txQueueLength: 1000 });
  const eth = k.addLink({ ifname: 'eth0', kind: undefined, up: true, mtu: 1500, txQueueLength: 1000, macAddress: '52:54:00:12:34:56' });
  k.addAddress(eth.ifindex, 4, '203.0.113.10', 24, {});
  k.addAddress(eth.ifindex, 6, '2001:db8:ff::10', 64, {});
  k.addRoute({ family: 4, table: 254, dst: '0.0.0.0', dstLength: 0, protocol: RTPROT_BOOT, oif: eth.ifindex, gateway: '203.0.113.1' }, 'add');
  k.addRoute({ family: 4, table: 254, dst: '198.18.0.0', dstLength: 15, protocol: RTPROT_STATIC, oif: eth.ifindex, gateway: '203.0.113.1' }, 'add');
  return k;
}

/** plan against the model's state, then apply it to the model. */
export function converge(k: KernelModel, desired: DesiredDevice[], policy: Policy = POLICY, options: PlanOptions = {}): Plan {
  const p = plan(desired, k.state(), policy, options);
  k.applyAll(p.actions);
  return p;
}

export function types(p: Plan): string[] {
  return p.actions.map((a) => `${a.type} ${a.ifname ?? ''}`.trim());
}
