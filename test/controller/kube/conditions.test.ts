/** TunNodeState device entries: condition statuses, reasons, messages and transition times. */
import { describe, expect, it } from '@jest/globals';
import { buildDeviceStatus, buildNodeStatus, statusContent, type DeviceStatusInput } from '../../../controller/kube/conditions.js';
import type { Finding } from '../../../controller/plan/actions.js';
import type { DeviceReport } from '../../../controller/reconcile/types.js';
import type { TunDeviceStatus } from '../../../controller/schema/tunnodestate.js';

const T0 = '2026-11-22T10:00:00Z';
const T1 = '2026-11-22T10:05:00Z';
const T2 = '2026-11-22T10:09:00Z';

const ready = (device = 'edge'): DeviceReport => ({ device, ifname: 'tk-edge0', ifindex: 7, status: 'ready', findings: [], failures: [] });
const degraded = (): DeviceReport => ({
  device: 'edge',
  ifname: 'tk-edge0',
  ifindex: 7,
  status: 'degraded',
  findings: [],
  failures: [
    {
      device: 'edge',
      code: 'ENETUNREACH',
      message: 'Nexthop has invalid gateway',
      action: {
        type: 'replace-route',
        device: 'edge',
        ifname: 'tk-edge0',
        reason: 'declared',
        changes: [],
        route: { family: 4, table: 254, dst: '198.51.100.0', dstLength: 24, tos: 0, metric: 0, protocol: 116, type: 'unicast', scope: 'universe', onLink: false },
      },
    },
  ],
});
const refusal: Finding = {
  kind: 'refused',
  code: 'NameNotAllowed',
  device: 'host',
  ifname: 'eth7',
  origin: 'TunDevice/host',
  subject: 'device',
  reason: 'interface name "eth7" does not start with an allowed prefix (tk-, tun-, tap-)',
};

const cond = (s: TunDeviceStatus, type: string) => s.conditions!.find((c) => c.type === type)!;

describe('buildDeviceStatus', () => {
  it('a ready device: Ready True, the rest False, with generation and ifindex', () => {
    const s = buildDeviceStatus({ name: 'edge', ifname: 'tk-edge0', generation: 4, report: ready() }, undefined, T0);
    expect(s).toMatchObject({ name: 'edge', ifname: 'tk-edge0', ifindex: 7, observedGeneration: 4 });
    expect(s.conditions!.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'True', 'Converged'],
      ['Degraded', 'False', 'AsDeclared'],
      ['Conflict', 'False', 'NoConflict'],
      ['Refused', 'False', 'Accepted'],
    ]);
    for (const c of s.conditions!) {
      expect(c.lastTransitionTime).toBe(T0);
      expect(c.observedGeneration).toBe(4);
    }
    expect(s.lastError).toBeUndefined();
  });

  it('keeps lastTransitionTime while a status stays, moves it when the status changes', () => {
    const first = buildDeviceStatus({ name: 'edge', generation: 1, report: ready() }, undefined, T0);
    const same = buildDeviceStatus({ name: 'edge', generation: 2, report: ready() }, first, T1);
    expect(same.conditions!.map((c) => c.lastTransitionTime)).toEqual([T0, T0, T0, T0]);
    expect(cond(same, 'Ready').observedGeneration).toBe(2);

    const failing = buildDeviceStatus({ name: 'edge', generation: 2, report: degraded() }, same, T2);
    expect(cond(failing, 'Ready')).toMatchObject({ status: 'False', reason: 'ApplyFailed', lastTransitionTime: T2 });
    expect(cond(failing, 'Degraded')).toMatchObject({ status: 'True', reason: 'ApplyFailed', lastTransitionTime: T2 });
    expect(cond(failing, 'Conflict').lastTransitionTime).toBe(T0);
    expect(cond(failing, 'Refused').lastTransitionTime).toBe(T0);
  });

  it('puts the kernel\'s extended-ack text in the Degraded message and lastError', () => {
    const s = buildDeviceStatus({ name: 'edge', report: degraded() }, undefined, T0);
    expect(cond(s, 'Degraded').message).toContain('replace-route tk-edge0: ENETUNREACH: Nexthop has invalid gateway');
    expect(s.lastError).toContain('Nexthop has invalid gateway');
  });

  it('a policy refusal: Refused True with the finding code as reason', () => {
    const report: DeviceReport = { device: 'host', ifname: 'eth7', status: 'refused', findings: [refusal], failures: [] };
    const s = buildDeviceStatus({ name: 'host', ifname: 'eth7', generation: 1, report }, undefined, T0);
    expect(cond(s, 'Refused')).toMatchObject({ status: 'True', reason: 'NameNotAllowed', message: refusal.reason });
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'NameNotAllowed' });
    expect(s.ifindex).toBeUndefined();
  });

  it('an invalid object never planned: Refused True, Invalid', () => {
    const s = buildDeviceStatus({ name: 'bad', ifname: 'tk-bad', generation: 2, invalid: 'spec.addresses[0]: host bits set' }, undefined, T0);
    expect(cond(s, 'Refused')).toMatchObject({ status: 'True', reason: 'Invalid', message: 'spec.addresses[0]: host bits set' });
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'Invalid' });
  });

  it('a conflict found before planning: Conflict True, Ready False', () => {
    const input: DeviceStatusInput = { name: 'a', ifname: 'tk-x', conflict: { reason: 'DeclaredByAnotherSource', message: 'also in /etc/tunkeeper/x.yaml' } };
    const s = buildDeviceStatus(input, undefined, T0);
    expect(cond(s, 'Conflict')).toMatchObject({ status: 'True', reason: 'DeclaredByAnotherSource' });
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'DeclaredByAnotherSource' });
  });

  it('a device whose repair is held (another actor keeps changing it): Ready False and Degraded True, RepairHeld', () => {
    const s = buildDeviceStatus({ name: 'edge', generation: 1, report: { ...ready(), status: 'held' } }, undefined, T0);
    const c = Object.fromEntries((s.conditions ?? []).map((x) => [x.type, x]));
    expect(c.Ready).toMatchObject({ status: 'False', reason: 'RepairHeld' });
    expect(c.Degraded).toMatchObject({ status: 'True', reason: 'RepairHeld' });
    expect(c.Degraded?.message).toMatch(/tk-edge0 keeps being changed behind tunkeeper's back/);
  });

  it('not reconciled yet: Ready Unknown', () => {
    const s = buildDeviceStatus({ name: 'new', ifname: 'tk-new' }, undefined, T0);
    expect(cond(s, 'Ready')).toMatchObject({ status: 'Unknown', reason: 'Pending' });
  });

  it('reasons fit the metav1.Condition pattern', () => {
    const inputs: DeviceStatusInput[] = [
      { name: 'a', report: ready() },
      { name: 'a', report: degraded() },
      { name: 'a', invalid: 'x' },
      { name: 'a' },
      { name: 'a', report: { device: 'a', ifname: 'eth7', status: 'refused', findings: [refusal], failures: [] } },
    ];
    for (const i of inputs) for (const c of buildDeviceStatus(i, undefined, T0).conditions!) expect(c.reason).toMatch(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/);
  });
});

describe('buildNodeStatus and statusContent', () => {
  it('counts ready devices and sorts by name', () => {
    const a = buildDeviceStatus({ name: 'b', report: ready('b') }, undefined, T0);
    const b = buildDeviceStatus({ name: 'a', invalid: 'bad' }, undefined, T0);
    const s = buildNodeStatus([a, b], T0);
    expect(s.devices!.map((d) => d.name)).toEqual(['a', 'b']);
    expect(s).toMatchObject({ deviceCount: 2, readyCount: 1, lastSyncTime: T0 });
  });

  it('ignores timestamps: the same content at another time needs no write', () => {
    const at0 = buildNodeStatus([buildDeviceStatus({ name: 'a', report: ready('a') }, undefined, T0)], T0);
    const at1 = buildNodeStatus([buildDeviceStatus({ name: 'a', report: ready('a') }, undefined, T1)], T1);
    expect(statusContent(at0)).toBe(statusContent(at1));
    const changed = buildNodeStatus([buildDeviceStatus({ name: 'a', report: degraded() }, undefined, T1)], T1);
    expect(statusContent(changed)).not.toBe(statusContent(at0));
  });
});
