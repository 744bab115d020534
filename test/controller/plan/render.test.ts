import { describe, expect, it } from '@jest/globals';
import { RTPROT_STATIC } from '../../../controller/model/observed.js';
import { plan, planToJson, renderPlanJson, renderPlanText, summaryLine } from '../../../controller/plan/index.js';
import { POLICY, PROTO, addr, converge, device, hostWorld, route } from './fixtures.js';

/** A plan with one of everything: create, update, delete, refusal, conflict, side effect, in-sync. */
function mixedPlan() {
  const k = hostWorld();
  const core = device('core', { addresses: [addr('192.0.2.1/24'), addr('192.0.2.9/24')], routes: [route('198.51.100.0/24', { via: '192.0.2.1' })] });
  const old = device('old', { addresses: [addr('198.51.100.77/32')] });
  converge(k, [core, old, device('calm')]);
  k.addRoute({ family: 4, table: 100, dst: '203.0.113.0', dstLength: 24, protocol: RTPROT_STATIC, oif: k.linkByName('tk-old')?.ifindex }, 'add');
  k.addRoute({ family: 4, table: 100, dst: '198.51.104.0', dstLength: 24, protocol: PROTO, oif: k.linkByName('eth0')?.ifindex, gateway: '203.0.113.1' }, 'add');
  const edge = device('edge', {
    origin: 'edge.yaml:3:1',
    mtu: 1420,
    addresses: [addr('192.0.2.1/24'), addr('2001:db8:1::1/64')],
    routes: [route('198.51.101.0/24', { via: '192.0.2.254', metric: 100 }), route('default', { via: '192.0.2.254' }), route('198.18.0.0/15')],
  });
  const core2 = { ...core, mtu: 1420, addresses: [addr('192.0.2.1/24')], routes: [route('198.51.100.0/24', { via: '192.0.2.254' })] };
  return plan([edge, core2, device('calm'), device('bad', { ifname: 'eth5' })], k.state(), POLICY);
}

describe('renderPlanText', () => {
  it('reads like a diff: a block per device with +, ~ and - lines, reasons, findings and side effects', () => {
    const text = renderPlanText(mixedPlan());
    const lines = text.split('\n');
    expect(lines[0]).toBe('tunkeeper plan: 10 changes, 4 declared devices, 2 refused, 1 conflict');
    expect(text).toContain('+ tk-edge  TunDevice "edge" (edge.yaml:3:1)\n');
    expect(text).toContain('    +   device   tun, persistent, alias tunkeeper:edge    # declared by edge.yaml:3:1; no link named tk-edge exists\n');
    expect(text).toContain('    +   link     mtu 1420, up true    # settings of the new device\n');
    expect(text).toContain('    +   address  2001:db8:1::1/64    # declared; on the new device\n');
    expect(text).toContain('~ tk-core  TunDevice "core" (TunDevice/core)\n');
    expect(text).toContain('    -   address  192.0.2.9/24    # not declared for core\n');
    expect(text).toContain('    ~   link     mtu 1500 → 1420');
    expect(text).toContain('    ~   route    198.51.100.0/24 via 192.0.2.254 dev tk-core table main proto 116 metric 0    # differs from the declaration: via 192.0.2.1 → 192.0.2.254\n');
    expect(text).toMatch(/! refused route default via 192\.0\.2\.254 .*\[DefaultRouteNotAllowed\]/);
    expect(text).toMatch(/! conflict route 198\.18\.0\.0\/15 .*held by a route tunkeeper does not own \(198\.18\.0\.0\/15 via 203\.0\.113\.1 dev eth0 table main proto static metric 0\).*\[RouteKeyHeldByForeignRoute\]/);
    expect(text).toContain('! eth5  TunDevice "bad" (TunDevice/bad)\n');
    expect(text).toContain('- tk-old  device of TunDevice "old" (no longer declared here)\n');
    expect(text).toContain('          ! also removes 203.0.113.0/24 dev tk-old table 100 proto static metric 0  (it goes through tk-old)\n');
    expect(text).toContain('~ eth0  tunkeeper\'s routes through a link it does not own\n    -   route    198.51.104.0/24 via 203.0.113.1 dev eth0 table 100 proto 116 metric 0');
    expect(text).toContain('= tk-calm  TunDevice "calm" (TunDevice/calm): in sync\n');
  });

  it('can leave in-sync devices out and colour the symbols', () => {
    const p = mixedPlan();
    expect(renderPlanText(p, { showInSync: false })).not.toContain('tk-calm');
    const colored = renderPlanText(p, { color: true });
    expect(colored).toContain('\x1b[32m+   address  2001:db8:1::1/64\x1b[0m');
    expect(colored).toContain('\x1b[31m-   address  192.0.2.9/24\x1b[0m');
  });

  it('says so when nothing changes, and when pruning is suspended', () => {
    const k = hostWorld();
    converge(k, [device('a'), device('b')]);
    const p = plan([device('a')], k.state(), POLICY, { prune: false });
    expect(summaryLine(p)).toBe('tunkeeper plan: in sync, no changes, 1 declared device, pruning suspended');
    expect(renderPlanText(p)).toContain('= tk-b  device of TunDevice "b" (kept)\n    =   device   ifindex 4, marker tunkeeper:b    # no declaration wants it, but pruning is suspended');
  });
});

describe('renderPlanJson', () => {
  it('has stable top-level fields and counts', () => {
    const p = mixedPlan();
    const json = JSON.parse(renderPlanJson(p)) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(['inSync', 'prune', 'summary', 'devices', 'actions', 'refusals', 'conflicts', 'retained']);
    expect(json.summary).toEqual({
      actions: 10,
      actionsByType: { 'delete-route': 1, 'delete-address': 1, 'create-device': 1, 'set-link': 2, 'add-address': 2, 'delete-device': 1, 'replace-route': 2 },
      refusals: 2,
      conflicts: 1,
      devicesByStatus: { refused: 1, 'in-sync': 1, update: 1, create: 1 },
    });
    expect(json.inSync).toBe(false);
    expect(json).toEqual(JSON.parse(JSON.stringify(planToJson(p))));
  });

  it('gives each action its type, reason and typed fields, and each finding its code', () => {
    const json = planToJson(mixedPlan());
    for (const a of json.actions) {
      expect(typeof a.type).toBe('string');
      expect(a.reason.length).toBeGreaterThan(0);
    }
    expect(json.actions.find((a) => a.type === 'delete-device')).toMatchObject({ device: 'old', ifname: 'tk-old', sideEffects: [{ effect: 'removes-route' }] });
    expect(json.refusals.map((f) => f.code).sort()).toEqual(['DefaultRouteNotAllowed', 'NameNotAllowed']);
    expect(json.conflicts[0]).toMatchObject({ kind: 'conflict', code: 'RouteKeyHeldByForeignRoute', device: 'edge', subject: 'route', key: 'ipv4 198.18.0.0/15 table 254 metric 0' });
  });
});
