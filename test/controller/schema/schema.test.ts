import { describe, expect, it } from '@jest/globals';
import type { DesiredDevice } from '../../../controller/model/desired.js';
import { ifnameProblem } from '../../../controller/schema/ifname.js';
import { parseMac } from '../../../controller/schema/mac.js';
import { fieldMessage } from '../../../controller/schema/problem.js';
import { validateTunDevice } from '../../../controller/schema/validate.js';
import { parseDeclarations } from '../../../controller/schema/yaml-declarations.js';

const doc = (spec: Record<string, unknown> | undefined, name = 'tk-edge') => ({
  apiVersion: 'tunkeeper.io/v1alpha1',
  kind: 'TunDevice',
  metadata: { name },
  ...(spec === undefined ? {} : { spec }),
});

const valid = (d: unknown, options = {}): DesiredDevice => {
  const r = validateTunDevice(d, options);
  expect(r.problems.map(fieldMessage)).toEqual([]);
  if (!r.device) throw new Error('no device');
  return r.device;
};

const problemsOf = (d: unknown, options = {}) => validateTunDevice(d, options).problems.map(fieldMessage);

describe('TunDevice defaults', () => {
  it('fills every default, with ifname from metadata.name, when spec is absent', () => {
    expect(valid(doc(undefined), { origin: 'here' })).toEqual({
      name: 'tk-edge',
      ifname: 'tk-edge',
      mode: 'tun',
      mtu: 1500,
      up: true,
      multiQueue: false,
      vnetHdr: false,
      packetInfo: false,
      addresses: [],
      routes: [],
      origin: 'here',
    });
  });

  it('defaults route table to main and onLink to false, and leaves unset optional fields out', () => {
    const d = valid(doc({ addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24' }] }));
    expect(d.routes).toEqual([{ family: 4, dst: '198.51.100.0', dstLength: 24, table: 254, onLink: false }]);
    expect(Object.keys(d)).not.toContain('txQueueLength');
    expect(Object.keys(d)).not.toContain('macAddress');
    expect(Object.keys(d)).not.toContain('owner');
  });

  it('keeps every declared value', () => {
    const d = valid(
      doc({
        ifname: 'tk-x0',
        mode: 'tap',
        mtu: 9000,
        up: false,
        txQueueLength: 0,
        macAddress: '00:00:5E:00:53:0A',
        owner: 0,
        group: 4294967294,
        multiQueue: true,
        vnetHdr: true,
        packetInfo: true,
      }),
    );
    expect(d).toMatchObject({
      ifname: 'tk-x0',
      mode: 'tap',
      mtu: 9000,
      up: false,
      txQueueLength: 0,
      macAddress: '00:00:5e:00:53:0a',
      owner: 0,
      group: 4294967294,
      multiQueue: true,
      vnetHdr: true,
      packetInfo: true,
    });
  });
});

describe('canonical output', () => {
  it('writes addresses and routes in one spelling, keeping host bits of addresses and the declared order', () => {
    const d = valid(
      doc({
        mtu: 1280,
        addresses: ['2001:DB8:0001:0000:0000:0000:0000:0001/64', '192.0.2.77/26'],
        routes: [
          { to: '2001:db8:2:0::/48', via: '2001:DB8:1::FE', src: '2001:db8:1:0:0:0:0:1', metric: 10, mtu: 1280 },
          { to: 'default', via: '192.0.2.65', table: 253 },
          { to: '::/0', via: 'FE80::1', table: 100 },
          { to: '198.18.0.0/15', via: '198.19.0.1', onLink: true },
        ],
      }),
    );
    expect(d.addresses).toEqual([
      { family: 6, address: '2001:db8:1::1', prefixLength: 64 },
      { family: 4, address: '192.0.2.77', prefixLength: 26 },
    ]);
    expect(d.routes).toEqual([
      { family: 6, dst: '2001:db8:2::', dstLength: 48, via: '2001:db8:1::fe', src: '2001:db8:1::1', metric: 10, mtu: 1280, table: 254, onLink: false },
      { family: 4, dst: '0.0.0.0', dstLength: 0, via: '192.0.2.65', table: 253, onLink: false },
      { family: 6, dst: '::', dstLength: 0, via: 'fe80::1', table: 100, onLink: false },
      { family: 4, dst: '198.18.0.0', dstLength: 15, via: '198.19.0.1', table: 254, onLink: true },
    ]);
  });

  it('gives `to: default` the family of its gateway, its source, or the only family of the device', () => {
    const v6only = valid(doc({ addresses: ['2001:db8:1::1/64'], routes: [{ to: 'default' }] }));
    expect(v6only.routes[0]).toMatchObject({ family: 6, dst: '::', dstLength: 0 });
    const bySrc = valid(doc({ addresses: ['192.0.2.1/24', '2001:db8:1::1/64'], routes: [{ to: 'default', src: '2001:db8:1::1' }] }));
    expect(bySrc.routes[0]).toMatchObject({ family: 6, src: '2001:db8:1::1' });
  });

  it('produces the same device from different spellings of the same declaration', () => {
    const a = valid(doc({ addresses: ['2001:db8::1/64'], routes: [{ to: '2001:db8:5::/48', via: '2001:db8::2' }] }), { origin: 'x' });
    const b = valid(
      doc({ mode: 'tun', mtu: 1500, up: true, addresses: ['2001:0DB8:0:0:0:0:0:1/64'], routes: [{ to: '2001:db8:5:0:0::/48', via: '2001:db8:0::2', table: 254 }] }),
      { origin: 'x' },
    );
    expect(b).toEqual(a);
  });
});

describe('kernel rules', () => {
  it('knows what makes an interface name', () => {
    expect(ifnameProblem('tk-0123456789ab')).toBeUndefined(); // 15 bytes
    expect(ifnameProblem('tk-0123456789abc')).toContain('16 characters');
    expect(ifnameProblem('tk-ñññññññ')).toContain('17 bytes in UTF-8 (10 characters)');
    expect(ifnameProblem('')).toContain('empty');
    expect(ifnameProblem('.')).toContain('not allowed');
    expect(ifnameProblem('tk\t0')).toContain('whitespace');
    expect(ifnameProblem('tk\u00a00')).toContain('0xA0');
    expect(ifnameProblem('tk\u00010')).toContain('control character');
    expect(ifnameProblem('tk-é')).toBeUndefined(); // C3 A9: the kernel accepts it
    // Legal for the kernel, but `ip link` would print "tk-\u202e0ab" as "tk-ba0".
    expect(ifnameProblem('tk-\u202e0ab')).toBe('"tk-\\u202e0ab" contains U+202E (character 4), an invisible control or format character that would make tools print a different name');
    expect(ifnameProblem('tk-\u200b0')).toContain('U+200B');
    expect(ifnameProblem('tk-\u0085')).toContain('U+0085'); // C1 NEL: one character, bytes C2 85
    expect(ifnameProblem('tk-\u{e0041}')).toContain('0xA0'); // tag letter: F3 A0 81 81
    expect(ifnameProblem('tk-\u{1d173}')).toContain('U+1D173'); // an astral format character (F0 9D 85 B3)
    const long = ifnameProblem('x'.repeat(100_000)) as string;
    expect(long.length).toBeLessThan(200);
    expect(long).toContain('... (100000 characters) is 100000 characters');
  });

  it('accepts only unicast, non-zero MAC addresses', () => {
    expect(parseMac('02:00:00:00:00:01')).toEqual({ ok: true, value: '02:00:00:00:00:01' });
    expect(parseMac('FF:FF:FF:FF:FF:FF').ok).toBe(false);
    expect(parseMac('00:00:00:00:00:00').ok).toBe(false);
    expect(parseMac('02:00:00:00:00').ok).toBe(false);
  });

  it('accepts a gateway covered by an address, an IPv6 link-local gateway, or an onLink one', () => {
    valid(doc({ addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24', via: '192.0.2.254' }] }));
    valid(doc({ addresses: ['2001:db8:1::1/64'], routes: [{ to: '2001:db8:2::/48', via: 'fe80::1' }] }));
    valid(doc({ addresses: ['192.0.2.1/32'], routes: [{ to: '198.51.100.0/24', via: '203.0.113.1', onLink: true }] }));
    expect(problemsOf(doc({ addresses: ['192.0.2.1/32'], routes: [{ to: '198.51.100.0/24', via: '203.0.113.1' }] }))[0]).toContain(
      'set onLink: true',
    );
  });

  it('refuses a gateway that is the device itself, and non-unicast gateways', () => {
    expect(problemsOf(doc({ addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24', via: '192.0.2.1' }] }))).toEqual([
      'spec.routes[0].via: 192.0.2.1 is an address of this device itself; a gateway is another host on the link',
    ]);
    expect(problemsOf(doc({ addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24', via: '224.0.0.1', onLink: true }] }))).toEqual([
      'spec.routes[0].via: "224.0.0.1" cannot be a gateway: it is a multicast address',
    ]);
  });

  it('allows table 253 (default) and refuses 0 and 255 (local)', () => {
    valid(doc({ routes: [{ to: '198.51.100.0/24', table: 253 }] }));
    valid(doc({ routes: [{ to: '198.51.100.0/24', table: 4294967295 }] }));
    expect(problemsOf(doc({ routes: [{ to: '198.51.100.0/24', table: 0 }] }))[0]).toContain('write 254 for main');
    expect(problemsOf(doc({ routes: [{ to: '198.51.100.0/24', table: 255 }] }))[0]).toContain('local table');
  });

  it('accepts the same destination in two tables or with two metrics', () => {
    const d = valid(
      doc({
        routes: [
          { to: '198.51.100.0/24' },
          { to: '198.51.100.0/24', table: 100 },
          { to: '198.51.100.0/24', metric: 5 },
        ],
      }),
    );
    expect(d.routes).toHaveLength(3);
    // The kernel's default IPv6 metric is 1024: declaring it explicitly is the same route.
    expect(problemsOf(doc({ addresses: ['2001:db8::1/64'], routes: [{ to: '2001:db8:9::/48' }, { to: '2001:db8:9::/48', metric: 1024 }] }))[0]).toContain(
      'same route as spec.routes[0]',
    );
  });

  it('needs an MTU of 1280 only when the device has an IPv6 address', () => {
    valid(doc({ mtu: 576, addresses: ['192.0.2.1/24'] }));
    expect(problemsOf(doc({ mtu: 1279, addresses: ['2001:db8::1/64'] }))[0]).toContain('at least 1280');
  });

  it('reports every problem of a document at once', () => {
    const problems = problemsOf(doc({ mtu: 10, mode: 'tan', addresses: ['x'], routes: [{ to: 'y' }], extra: 1 }));
    expect(problems).toHaveLength(5);
  });
});

describe('Kubernetes objects', () => {
  const k8sObject = {
    apiVersion: 'tunkeeper.io/v1alpha1',
    kind: 'TunDevice',
    metadata: { name: 'tk-k8s', uid: 'abc', resourceVersion: '7', generation: 3, managedFields: [{}] },
    spec: { mtu: 1400, nodeSelector: { matchLabels: { 'tunkeeper.io/edge': 'true' }, matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] } },
    status: { anything: true },
  };

  it('ignores server-owned metadata and status, and returns the node selector', () => {
    const r = validateTunDevice(k8sObject, { context: 'kubernetes' });
    expect(r.problems).toEqual([]);
    expect(r.device?.origin).toBe('TunDevice/tk-k8s');
    expect(r.nodeSelector).toEqual(k8sObject.spec.nodeSelector);
  });

  it('checks selector operators', () => {
    const bad = { ...k8sObject, spec: { nodeSelector: { matchExpressions: [{ key: 'zone', operator: 'In' }, { key: 'x', operator: 'Exists', values: ['a'] }] } } };
    expect(problemsOf(bad, { context: 'kubernetes' })).toEqual([
      'spec.nodeSelector.matchExpressions[0].values: must not be empty for operator In',
      'spec.nodeSelector.matchExpressions[1].values: must be empty for operator Exists',
    ]);
  });

  it('refuses the same object as a file: server metadata and status are unknown fields there', () => {
    const problems = problemsOf(k8sObject);
    expect(problems).toContain('status: unknown field "status" (allowed: apiVersion, kind, metadata, spec)');
    expect(problems.some((p) => p.startsWith('spec.nodeSelector: applies only to TunDevice objects in Kubernetes'))).toBe(true);
  });
});

describe('YAML documents', () => {
  it('records where each declaration starts and where its names are written', () => {
    const text = [
      '# two devices',
      'apiVersion: tunkeeper.io/v1alpha1',
      'kind: TunDevice',
      'metadata: {name: tk-a}',
      '---',
      'apiVersion: tunkeeper.io/v1alpha1',
      'kind: TunDevice',
      'metadata:',
      '  name: tk-b',
      'spec:',
      '  ifname: tk-b0',
      '---',
      '# an empty document is allowed',
      '',
    ].join('\n');
    const r = parseDeclarations(text, 'two.yaml');
    expect(r.problems).toEqual([]);
    expect(r.documents).toBe(2);
    expect(r.declarations.map((d) => d.device.origin)).toEqual(['two.yaml:2:1', 'two.yaml:6:1']);
    expect(r.declarations[0].ifnameAt).toEqual({ file: 'two.yaml', line: 4, col: 18, path: 'metadata.name' });
    expect(r.declarations[1].ifnameAt).toEqual({ file: 'two.yaml', line: 11, col: 11, path: 'spec.ifname' });
  });

  it('reads YAML 1.2: an unquoted MAC address is a string, `on` is not a boolean', () => {
    const text = 'apiVersion: tunkeeper.io/v1alpha1\nkind: TunDevice\nmetadata: {name: tk-t}\nspec:\n  mode: tap\n  macAddress: 02:00:00:00:00:01\n  up: on\n';
    const r = parseDeclarations(text, 't.yaml');
    expect(r.problems.map((p) => `${p.line}:${p.col}: ${p.message}`)).toEqual([
      '7:7: spec.up: must be true or false, got the string "on" (YAML 1.2 reads only true and false as booleans)',
    ]);
  });

  it('caps the number of problems reported per file', () => {
    const one = 'apiVersion: tunkeeper.io/v1alpha1\nkind: TunDevice\nmetadata: {name: tk-x}\nspec: {mtu: 1}\n';
    const r = parseDeclarations(Array(30).fill(one).join('---\n'), 'many.yaml', { limits: { maxProblems: 10 } });
    expect(r.problems).toHaveLength(11);
    expect(r.problems[10]).toEqual({ file: 'many.yaml', message: '20 more problems in this file not shown' });
  });
});
