/** What the cluster's TunDevices mean for one node: validation, selection, last valid version, conflicts. */
import { describe, expect, it } from '@jest/globals';
import { selectForNode, type ValidVersion } from '../../../controller/kube/cluster-select.js';
import type { TunDeviceObject } from '../../../controller/kube/types.js';

const obj = (name: string, spec: Record<string, unknown>, generation = 1): TunDeviceObject => ({
  apiVersion: 'tunkeeper.io/v1alpha1',
  kind: 'TunDevice',
  metadata: { name, generation, uid: `uid-${name}`, resourceVersion: '5' },
  spec,
});

const labels = { 'tunkeeper.io/edge': 'true' };
const none = new Map<string, ValidVersion>();

describe('selectForNode', () => {
  it('applies valid objects selected for the node, with their generations', () => {
    const s = selectForNode(
      [
        obj('b', { ifname: 'tk-b', addresses: ['192.0.2.1/24'] }, 3),
        obj('a', { ifname: 'tk-a', nodeSelector: { matchLabels: { 'tunkeeper.io/edge': 'true' } } }),
        obj('c', { ifname: 'tk-c', nodeSelector: { matchLabels: { 'tunkeeper.io/edge': 'false' } } }),
      ],
      labels,
      none,
    );
    expect(s.devices.map((d) => [d.name, d.ifname, d.origin])).toEqual([
      ['a', 'tk-a', 'TunDevice/a'],
      ['b', 'tk-b', 'TunDevice/b'],
    ]);
    expect(s.objects.map((o) => o.name)).toEqual(['a', 'b']);
    expect(s.generations).toEqual({ a: 1, b: 3 });
    expect(s.complete).toBe(true);
    // Remembered even when not selected: a relabel must not lose it.
    expect([...s.valid.keys()].sort()).toEqual(['a', 'b', 'c']);
  });

  it('a label change adds and removes devices', () => {
    const objects = [obj('edge', { ifname: 'tk-edge', nodeSelector: { matchExpressions: [{ key: 'tunkeeper.io/edge', operator: 'Exists' }] } })];
    expect(selectForNode(objects, {}, none).devices).toEqual([]);
    expect(selectForNode(objects, labels, none).devices.map((d) => d.name)).toEqual(['edge']);
  });

  it('an invalid object never valid: refused with the message, never applied, others go on, no pruning', () => {
    const s = selectForNode([obj('bad', { ifname: 'tk-bad', addresses: ['192.0.2.1/33'] }), obj('good', { ifname: 'tk-good' })], labels, none);
    expect(s.devices.map((d) => d.name)).toEqual(['good']);
    const bad = s.objects.find((o) => o.name === 'bad')!;
    expect(bad.invalid).toMatch(/^spec\.addresses\[0\]: /);
    expect(s.complete).toBe(false);
  });

  it('an invalid edit keeps the last valid version in force, and says so', () => {
    const first = selectForNode([obj('edge', { ifname: 'tk-edge', mtu: 1400 }, 1)], labels, none);
    const second = selectForNode([obj('edge', { ifname: 'tk-edge', mtu: 1400, addresses: ['192.0.2.1/33'] }, 2)], labels, first.valid);
    expect(second.devices.map((d) => [d.name, d.mtu])).toEqual([['edge', 1400]]);
    expect(second.complete).toBe(true);
    const entry = second.objects[0]!;
    expect(entry.invalid).toContain('the last valid version (generation 1) stays in force');
    expect(entry.generation).toBe(1);
    expect(second.generations).toEqual({ edge: 1 });
  });

  it('two objects claiming one interface: neither applied, both reported, no pruning', () => {
    const s = selectForNode([obj('one', { ifname: 'tk-same' }), obj('two', { ifname: 'tk-same' }), obj('three', { ifname: 'tk-three' })], labels, none);
    expect(s.devices.map((d) => d.name)).toEqual(['three']);
    expect(s.complete).toBe(false);
    const one = s.objects.find((o) => o.name === 'one')!;
    const two = s.objects.find((o) => o.name === 'two')!;
    expect(one.conflict).toContain('interface name "tk-same" is also declared at TunDevice/two');
    expect(two.conflict).toContain('interface name "tk-same" is also declared at TunDevice/one');
  });

  it('an object outside the policy is still applied here: the plan refuses it (and status says so)', () => {
    const s = selectForNode([obj('host', { ifname: 'eth7' })], labels, none);
    expect(s.devices.map((d) => d.ifname)).toEqual(['eth7']);
  });
});
