/**
 * spec.probes and spec.rollout through the one validator (files and Kubernetes objects alike):
 * the DesiredDevice they build, and every way to get them wrong with the exact sentence and field.
 */
import { describe, expect, it } from '@jest/globals';
import { DEFAULT_ROLLOUT, type DesiredDevice } from '../../../controller/model/desired.js';
import { fieldMessage } from '../../../controller/schema/problem.js';
import { MAX_PROBES } from '../../../controller/schema/tundevice.js';
import { validateTunDevice, type ValidateOptions } from '../../../controller/schema/validate.js';
import { parseDeclarations } from '../../../controller/schema/yaml-declarations.js';

const doc = (spec: Record<string, unknown>) => ({ apiVersion: 'tunkeeper.io/v1alpha1', kind: 'TunDevice', metadata: { name: 'tk-probe' }, spec });

const valid = (spec: Record<string, unknown>, options: ValidateOptions = {}): DesiredDevice => {
  const r = validateTunDevice(doc(spec), options);
  expect(r.problems.map(fieldMessage)).toEqual([]);
  if (!r.device) throw new Error('no device');
  return r.device;
};

const problemsOf = (spec: Record<string, unknown>) => {
  const r = validateTunDevice(doc(spec));
  expect(r.device).toBeUndefined();
  return r.problems.map(fieldMessage);
};

const V4 = { addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24' }] };

describe('spec.probes and spec.rollout: what they build', () => {
  it('builds canonical probes in declared order, covered by a route, an address prefix, or a default route of the family', () => {
    const d = valid({
      addresses: ['192.0.2.1/24', '2001:db8:1::1/64'],
      routes: [{ to: '198.51.100.0/24' }, { to: 'default', via: '2001:db8:1::fe', table: 100 }],
      probes: [
        { route: { to: '198.51.100.7' } },
        { ping: { to: '192.0.2.2' } },
        { route: { to: '2001:DB8:9:0::1' } },
        // Same address, other kind: two checks, not a duplicate.
        { ping: { to: '198.51.100.7' } },
      ],
    });
    expect(d.probes).toEqual([
      { kind: 'route', family: 4, to: '198.51.100.7' },
      { kind: 'ping', family: 4, to: '192.0.2.2' },
      { kind: 'route', family: 6, to: '2001:db8:9::1' },
      { kind: 'ping', family: 4, to: '198.51.100.7' },
    ]);
    expect(d.rollout).toBeUndefined();
  });

  it('leaves probes and rollout out when they are not declared, or probes is empty, so older devices compare equal', () => {
    const plain = valid(V4);
    expect(Object.keys(plain)).not.toContain('probes');
    expect(Object.keys(plain)).not.toContain('rollout');
    expect(valid({ ...V4, probes: [] })).toEqual(plain);
  });

  it('fills the rollout defaults when spec.rollout is present, and keeps declared values', () => {
    expect(valid({ rollout: {} }).rollout).toEqual(DEFAULT_ROLLOUT);
    expect(DEFAULT_ROLLOUT).toEqual({ maxUnavailable: '100%', probeTimeoutSeconds: 30 });
    expect(valid({ rollout: { maxUnavailable: 1 } }).rollout).toEqual({ maxUnavailable: 1, probeTimeoutSeconds: 30 });
    expect(valid({ rollout: { maxUnavailable: '25%', probeTimeoutSeconds: 3600 } }).rollout).toEqual({ maxUnavailable: '25%', probeTimeoutSeconds: 3600 });
    expect(valid({ rollout: { maxUnavailable: '1%', probeTimeoutSeconds: 1 } }).rollout).toEqual({ maxUnavailable: '1%', probeTimeoutSeconds: 1 });
  });

  it('accepts maxUnavailable in a file, where it has no effect, as in a Kubernetes object', () => {
    const spec = { ...V4, probes: [{ route: { to: '198.51.100.7' } }], rollout: { maxUnavailable: 2 } };
    const file = valid(spec);
    const object = valid(spec, { context: 'kubernetes' });
    expect({ ...file, origin: '' }).toEqual({ ...object, origin: '' });
  });

  it(`allows ${MAX_PROBES} probes`, () => {
    const probes = Array.from({ length: MAX_PROBES }, (_, i) => ({ route: { to: `198.51.100.${i + 1}` } }));
    expect(valid({ ...V4, probes }).probes).toHaveLength(MAX_PROBES);
  });
});

describe('spec.probes and spec.rollout: hostile declarations', () => {
  it('a probe address outside every declared route and address prefix', () => {
    expect(problemsOf({ addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24' }], probes: [{ route: { to: '203.0.113.9' } }] })).toEqual([
      'spec.probes[0].route.to: 203.0.113.9 is outside every route and address prefix of this device (198.51.100.0/24, 192.0.2.0/24), so no lookup for it could leave through the device',
    ]);
    // Only prefixes of the probe's family count, and a long list is cut short.
    const routes = Array.from({ length: 10 }, (_, i) => ({ to: `2001:db8:${i + 1}::/48` }));
    expect(problemsOf({ addresses: ['192.0.2.1/24', '2001:db8::1/64'], routes, probes: [{ ping: { to: '2001:db8:ff::1' } }] })).toEqual([
      'spec.probes[0].ping.to: 2001:db8:ff::1 is outside every route and address prefix of this device (2001:db8:1::/48, 2001:db8:2::/48, 2001:db8:3::/48, 2001:db8:4::/48, 2001:db8:5::/48, 2001:db8:6::/48, 2001:db8:7::/48, 2001:db8:8::/48 and 3 more), so no lookup for it could leave through the device',
    ]);
  });

  it('a probe on a device with no addresses: one problem, on spec.probes', () => {
    expect(problemsOf({ routes: [{ to: '198.51.100.0/24' }], probes: [{ route: { to: '198.51.100.7' } }, { ping: { to: '198.51.100.1' } }] })).toEqual([
      "spec.probes: cannot pass on a device without addresses: an echo would have no source address to be answered at, and a route lookup would be answered for another device's address (add the device's address to spec.addresses)",
    ]);
  });

  it('a probe of a family the device has no address of', () => {
    expect(problemsOf({ addresses: ['192.0.2.1/24'], routes: [{ to: '2001:db8:2::/48' }], probes: [{ route: { to: '2001:db8:2::7' } }] })).toEqual([
      "spec.probes[0].route.to: 2001:db8:2::7 is IPv6, but the device has no IPv6 address: an echo would have no source address to be answered at, and a route lookup would be answered for another device's address",
    ]);
  });

  it('a probe of an address of the device itself', () => {
    expect(problemsOf({ addresses: ['192.0.2.1/24', '2001:db8::1/64'], probes: [{ ping: { to: '2001:db8:0::1' } }] })).toEqual([
      'spec.probes[0].ping.to: 2001:db8::1 is an address of this device itself (spec.addresses[1]): the kernel delivers traffic for it locally, through lo, so the probe could never pass',
    ]);
  });

  it('a probe address that is not unicast, or not an address', () => {
    expect(
      problemsOf({
        ...V4,
        probes: [{ ping: { to: '224.0.0.1' } }, { route: { to: '0.0.0.0' } }, { route: { to: '127.0.0.1' } }, { ping: { to: '198.51.100.300' } }, { ping: { to: 'ff02::1' } }],
      }),
    ).toEqual([
      'spec.probes[0].ping.to: "224.0.0.1" cannot be probed: it is a multicast address, and a probe checks the unicast address of a host the device leads to',
      'spec.probes[1].route.to: "0.0.0.0" cannot be probed: it is the unspecified address, and a probe checks the unicast address of a host the device leads to',
      'spec.probes[2].route.to: "127.0.0.1" cannot be probed: it is a loopback address, which belongs on lo, and a probe checks the unicast address of a host the device leads to',
      'spec.probes[3].ping.to: "198.51.100.300" is not an IPv4 address (300 is more than 255)',
      'spec.probes[4].ping.to: "ff02::1" cannot be probed: it is a multicast address, and a probe checks the unicast address of a host the device leads to',
    ]);
  });

  it('the same probe twice, in any spelling', () => {
    expect(problemsOf({ addresses: ['2001:db8::1/64'], probes: [{ route: { to: '2001:db8::7' } }, { ping: { to: '2001:db8::7' } }, { route: { to: '2001:DB8:0::7' } }] })).toEqual([
      'spec.probes[2].route.to: declares the same probe as spec.probes[0] (route 2001:db8::7)',
    ]);
  });

  it('both route and ping in one entry, or neither', () => {
    expect(problemsOf({ ...V4, probes: [{ route: { to: '198.51.100.7' }, ping: { to: '198.51.100.7' } }, {}] })).toEqual([
      'spec.probes[0]: has both route and ping: a probe is exactly one check, so write them as two entries of spec.probes',
      'spec.probes[1]: needs one of route or ping, e.g. {route: {to: 198.51.100.7}} or {ping: {to: 192.0.2.2}}',
    ]);
  });

  it('a probe without an address, with an unknown kind, or with extra fields', () => {
    expect(problemsOf({ ...V4, probes: [{ route: {} }, { tcp: { to: '198.51.100.7' } }, { ping: { to: '198.51.100.7', count: 3 } }] })).toEqual([
      'spec.probes[0].route.to: is required',
      'spec.probes[1].tcp: unknown field "tcp" (allowed here: route, ping)',
      'spec.probes[2].ping.count: unknown field "count" (allowed here: to)',
      // An unknown kind leaves the entry without either: both are said.
      'spec.probes[1]: needs one of route or ping, e.g. {route: {to: 198.51.100.7}} or {ping: {to: 192.0.2.2}}',
    ]);
  });

  it('10,000 probes', () => {
    const probes = Array.from({ length: 10_000 }, (_, i) => ({ route: { to: `198.51.100.${i & 255}` } }));
    expect(problemsOf({ ...V4, probes })).toEqual([
      'spec.probes: has 10000 entries; at most 16 are allowed (every probe runs on every node after every change: a route and a ping probe per family and peer say whether the device works)',
    ]);
  });

  it('a probe timeout of 0, or more than an hour', () => {
    expect(problemsOf({ rollout: { probeTimeoutSeconds: 0 } })).toEqual([
      'spec.rollout.probeTimeoutSeconds: must be from 1 to 3600, got 0 (a probe needs time to run: with 0 every probe would fail at once and every change would be rolled back)',
    ]);
    expect(problemsOf({ rollout: { probeTimeoutSeconds: 3601 } })).toEqual([
      'spec.rollout.probeTimeoutSeconds: must be from 1 to 3600, got 3601 (a probe needs time to run: with 0 every probe would fail at once and every change would be rolled back)',
    ]);
  });

  it('maxUnavailable 0, 0% or another value that would never let a node move', () => {
    expect(problemsOf({ rollout: { maxUnavailable: 0 } })).toEqual([
      'spec.rollout.maxUnavailable: is 0, but at least 1 node must be allowed to move at a time, or no node could ever take a new generation',
    ]);
    expect(problemsOf({ rollout: { maxUnavailable: '0%' } })).toEqual([
      'spec.rollout.maxUnavailable: is "0%", but at least 1% must be allowed to move at a time, or no node could ever take a new generation',
    ]);
    expect(problemsOf({ rollout: { maxUnavailable: -2 } })).toEqual([
      'spec.rollout.maxUnavailable: is -2, but at least 1 node must be allowed to move at a time, or no node could ever take a new generation',
    ]);
  });

  it('maxUnavailable that is not a count or a percentage from 1% to 100%', () => {
    expect(problemsOf({ rollout: { maxUnavailable: '101%' } })).toEqual([
      'spec.rollout.maxUnavailable: "101%" is not a percentage from "1%" to "100%": write a number of nodes such as 1, or a percentage such as "25%"',
    ]);
    expect(problemsOf({ rollout: { maxUnavailable: '3' } })).toEqual([
      'spec.rollout.maxUnavailable: "3" is a string: write a number of nodes without quotes, or a percentage such as "25%"',
    ]);
    expect(problemsOf({ rollout: { maxUnavailable: 1.5 } })).toEqual(['spec.rollout.maxUnavailable: must be a whole number or a percentage such as "25%", got the number 1.5']);
    expect(problemsOf({ rollout: { maxUnavailable: true } })).toEqual(['spec.rollout.maxUnavailable: must be a whole number or a percentage such as "25%", got true']);
  });

  it('does not blame a probe for a route or address that is itself wrong', () => {
    // The route is refused; whether it would have covered the probe is not worth a second sentence.
    expect(problemsOf({ addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.7/24' }], probes: [{ route: { to: '198.51.100.7' } }] })).toEqual([
      'spec.routes[0].to: "198.51.100.7/24" has host bits set: the network is 198.51.100.0/24 (a route goes to a network; an address of the device belongs in spec.addresses)',
    ]);
    expect(problemsOf({ addresses: ['192.0.2.300/24'], probes: [{ ping: { to: '192.0.2.2' } }] })).toEqual([
      'spec.addresses[0]: "192.0.2.300" is not an IPv4 address (300 is more than 255)',
    ]);
  });
});

describe('spec.probes and spec.rollout in a YAML file', () => {
  it('places each problem at file:line:col of the offending text', () => {
    const text = [
      'apiVersion: tunkeeper.io/v1alpha1',
      'kind: TunDevice',
      'metadata: {name: tk-probe}',
      'spec:',
      '  addresses: [192.0.2.1/24]',
      '  routes:',
      '    - to: 198.51.100.0/24',
      '  probes:',
      '    - route: {to: 203.0.113.9}',
      '    - ping: {to: 192.0.2.2}',
      '      route: {to: 192.0.2.3}',
      '  rollout:',
      '    maxUnavailable: 0',
      '    probeTimeoutSeconds: 0',
      '---',
      'apiVersion: tunkeeper.io/v1alpha1',
      'kind: TunDevice',
      'metadata: {name: tk-bare}',
      'spec:',
      '  probes:',
      '    - ping: {to: 192.0.2.2}',
      '',
    ].join('\n');
    const r = parseDeclarations(text, 'p.yaml');
    expect(r.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`)).toEqual([
      'p.yaml:9:19: spec.probes[0].route.to: 203.0.113.9 is outside every route and address prefix of this device (198.51.100.0/24, 192.0.2.0/24), so no lookup for it could leave through the device',
      'p.yaml:10:7: spec.probes[1]: has both route and ping: a probe is exactly one check, so write them as two entries of spec.probes',
      'p.yaml:13:21: spec.rollout.maxUnavailable: is 0, but at least 1 node must be allowed to move at a time, or no node could ever take a new generation',
      'p.yaml:14:26: spec.rollout.probeTimeoutSeconds: must be from 1 to 3600, got 0 (a probe needs time to run: with 0 every probe would fail at once and every change would be rolled back)',
      "p.yaml:20:3: spec.probes: cannot pass on a device without addresses: an echo would have no source address to be answered at, and a route lookup would be answered for another device's address (add the device's address to spec.addresses)",
    ]);
    expect(r.declarations).toEqual([]);
  });
});
