/** A device declared by two sources (a TunDevice object and a file): applied from neither, reported on both sides, no pruning meanwhile. */
import { describe, expect, it } from '@jest/globals';
import { device as planDevice } from '../plan/fixtures.js';
import type { DesiredDevice } from '../../../controller/model/desired.js';
import { DesiredSources } from '../../../controller/loop/desired-sources.js';

const device = (name: string, ifname: string, origin: string): DesiredDevice => planDevice(name, { ifname, origin });

describe('conflicts across sources', () => {
  it('one source alone never conflicts with itself here', () => {
    const s = new DesiredSources(['files']);
    s.update('files', [device('a', 'tk-a', 'a.yaml:3:9')], true);
    expect(s.conflicts()).toEqual([]);
    expect(s.desired().map((d) => d.name)).toEqual(['a']);
    expect(s.prune).toBe(true);
  });

  it('the same interface name in both: neither applied, both reported, pruning off', () => {
    const s = new DesiredSources(['files', 'kube']);
    const file = device('from-file', 'tk-x', '/etc/tunkeeper/x.yaml:5:11');
    const obj = device('from-kube', 'tk-x', 'TunDevice/from-kube');
    const other = device('other', 'tk-other', 'TunDevice/other');
    s.update('files', [file], true);
    s.update('kube', [obj, other], true);
    expect(s.desired()).toEqual([other]);
    expect(s.prune).toBe(false);
    const conflicts = s.conflicts();
    expect(conflicts.map((c) => [c.source, c.device.name])).toEqual([
      ['files', 'from-file'],
      ['kube', 'from-kube'],
    ]);
    expect(conflicts[0]!.message).toBe(
      '/etc/tunkeeper/x.yaml:5:11: interface name "tk-x" is also declared by the kube source at TunDevice/from-kube; neither declaration is applied until only one remains',
    );
    expect(conflicts[1]!.message).toContain('TunDevice/from-kube: interface name "tk-x" is also declared by the files source at /etc/tunkeeper/x.yaml:5:11');
    expect(conflicts[1]!.others.map((o) => o.device)).toEqual([file]);
  });

  it('the same object name with different interfaces conflicts too', () => {
    const s = new DesiredSources(['files', 'kube']);
    s.update('files', [device('edge', 'tk-a', 'f.yaml:1:1')], true);
    s.update('kube', [device('edge', 'tk-b', 'TunDevice/edge')], true);
    expect(s.desired()).toEqual([]);
    expect(s.conflicts().map((c) => c.message)).toEqual([
      'f.yaml:1:1: TunDevice "edge" is also declared by the kube source at TunDevice/edge; neither declaration is applied until only one remains',
      'TunDevice/edge: TunDevice "edge" is also declared by the files source at f.yaml:1:1; neither declaration is applied until only one remains',
    ]);
  });

  it('resolves when one side drops the declaration, and pruning comes back', () => {
    const s = new DesiredSources(['files', 'kube']);
    const obj = device('edge', 'tk-edge', 'TunDevice/edge');
    s.update('files', [device('edge', 'tk-edge', 'f.yaml:1:1')], true);
    s.update('kube', [obj], true);
    expect(s.prune).toBe(false);
    s.update('files', [], true);
    expect(s.conflicts()).toEqual([]);
    expect(s.desired()).toEqual([obj]);
    expect(s.prune).toBe(true);
  });
});
