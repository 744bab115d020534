/**
 * The CRD's CEL rules (x-kubernetes-validations) against a CEL evaluator, and each against its twin
 * in the TypeScript validation: the API server and the agent must refuse the same things.
 */
import { describe, expect, it } from '@jest/globals';
import { Value } from '@sinclair/typebox/value';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { tunDeviceCrd } from '../../../controller/schema/crd.js';
import { NO_ADDRESS_FOR_PROBES, TunDeviceSchema } from '../../../controller/schema/tundevice.js';
import { validateTunDevice } from '../../../controller/schema/validate.js';
import { formatPath } from '../../../controller/schema/problem.js';
import { evaluateRule } from '../../helpers/cel.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

interface Rule {
  rule: string;
  message: string;
  /** Where the rule sits: property names, '[]' for list items. */
  at: string[];
}

type Schema = { properties?: Record<string, Schema>; items?: Schema; 'x-kubernetes-validations'?: { rule: string; message: string }[] };

function collectRules(schema: Schema, at: string[] = []): Rule[] {
  const own = (schema['x-kubernetes-validations'] ?? []).map((r) => ({ rule: r.rule, message: r.message, at }));
  const props = Object.entries(schema.properties ?? {}).flatMap(([k, s]) => collectRules(s, [...at, k]));
  const items = schema.items ? collectRules(schema.items, [...at, '[]']) : [];
  return [...own, ...props, ...items];
}

const crdSchema = (tunDeviceCrd().spec as { versions: { schema: { openAPIV3Schema: Schema } }[] }).versions[0].schema.openAPIV3Schema;
const RULES = collectRules(crdSchema);

/** Every value a rule at `at` applies to, with its path (as the validator writes it). */
function valuesAt(obj: unknown, at: string[], path: (string | number)[] = []): { value: unknown; path: (string | number)[] }[] {
  if (at.length === 0) return [{ value: obj, path }];
  const [head, ...rest] = at;
  if (head === '[]') return Array.isArray(obj) ? obj.flatMap((x, i) => valuesAt(x, rest, [...path, i])) : [];
  if (obj === null || typeof obj !== 'object' || !(head in obj)) return [];
  return valuesAt((obj as Record<string, unknown>)[head], rest, [...path, head]);
}

/** What the API server sees: the object after structural defaulting. */
const defaulted = (o: object) => Value.Default(TunDeviceSchema, structuredClone(o)) as object;

const celHolds = (rule: Rule, obj: object): boolean[] =>
  valuesAt(defaulted(obj), rule.at).map(({ value }) => evaluateRule(rule.rule, value) as boolean);

const device = (spec: object) => ({ apiVersion: 'tunkeeper.io/v1alpha1', kind: 'TunDevice', metadata: { name: 'tk-cel' }, spec });

/** One declaration each rule refuses, and the field the TypeScript twin reports. */
const TWINS: Record<string, { spec: object; path: string }> = {
  "ifname is at most 15 bytes in UTF-8 (the kernel's IFNAMSIZ is 16 with the NUL)": { spec: { ifname: 'tk-ñññññññ' }, path: 'spec.ifname' },
  "ifname cannot be '.' or '..'": { spec: { ifname: '..' }, path: 'spec.ifname' },
  "table 255 (local) holds the kernel's own local and broadcast routes; tunkeeper does not own routes there": {
    spec: { routes: [{ to: '198.51.100.0/24', table: 255 }] },
    path: 'spec.routes[0].table',
  },
  'via must be an address of the same family as to': {
    spec: { addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24', via: '2001:db8::1' }] },
    path: 'spec.routes[0].via',
  },
  'src must be an address of the same family as to': {
    spec: { addresses: ['192.0.2.1/24', '2001:db8::1/64'], routes: [{ to: '198.51.100.0/24', src: '2001:db8::1' }] },
    path: 'spec.routes[0].src',
  },
  'an IPv6 route needs an mtu of at least 1280': { spec: { routes: [{ to: '2001:db8:2::/48', mtu: 1279 }] }, path: 'spec.routes[0].mtu' },
  'to must be a CIDR such as 198.51.100.0/24 or 2001:db8:2::/48, or "default"': { spec: { routes: [{ to: '198.51.100.0/33' }] }, path: 'spec.routes[0].to' },
  'via must be an IP address such as 192.0.2.254 or 2001:db8:1::fe': {
    spec: { addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24', via: '192.0.2.256' }] },
    path: 'spec.routes[0].via',
  },
  'src must be an IP address such as 192.0.2.1 or 2001:db8:1::1': {
    spec: { addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24', src: '192.0.2.01' }] },
    path: 'spec.routes[0].src',
  },
  'an address must be an IP address with its prefix length, such as 192.0.2.1/24 or 2001:db8:1::1/64': { spec: { addresses: ['192.0.2.300/24'] }, path: 'spec.addresses[0]' },
  'onLink needs a gateway (via)': { spec: { routes: [{ to: '198.51.100.0/24', onLink: true }] }, path: 'spec.routes[0].onLink' },
  'macAddress is only for tap devices (a tun device has no link-layer address)': { spec: { macAddress: '02:00:00:00:00:01' }, path: 'spec.macAddress' },
  'a device with an IPv6 address needs an mtu of at least 1280': { spec: { mtu: 1200, addresses: ['2001:db8::1/64'] }, path: 'spec.mtu' },
  'route.to must be an IP address such as 198.51.100.7 or 2001:db8:2::7': {
    spec: { addresses: ['192.0.2.1/24'], probes: [{ route: { to: '192.0.2.300' } }] },
    path: 'spec.probes[0].route.to',
  },
  'ping.to must be an IP address such as 198.51.100.7 or 2001:db8:2::7': {
    spec: { addresses: ['2001:db8::1/64'], probes: [{ ping: { to: '2001:db8::g' } }] },
    path: 'spec.probes[0].ping.to',
  },
  'a probe is exactly one of route or ping': {
    spec: { addresses: ['192.0.2.1/24'], probes: [{ route: { to: '192.0.2.7' }, ping: { to: '192.0.2.2' } }] },
    path: 'spec.probes[0]',
  },
  [NO_ADDRESS_FOR_PROBES]: { spec: { routes: [{ to: '198.51.100.0/24' }], probes: [{ route: { to: '198.51.100.7' } }] }, path: 'spec.probes' },
  'each probe needs an address of its family (IPv4 or IPv6) on the device, to send from and be answered at': {
    spec: { addresses: ['192.0.2.1/24'], routes: [{ to: '2001:db8:2::/48' }], probes: [{ route: { to: '2001:db8:2::7' } }] },
    path: 'spec.probes[0].route.to',
  },
  'maxUnavailable must be a number of nodes or a percentage from "1%" to "100%", such as 1 or "25%"': {
    spec: { rollout: { maxUnavailable: '150%' } },
    path: 'spec.rollout.maxUnavailable',
  },
  'maxUnavailable must be at least 1: with 0 no node could ever move to a new generation': { spec: { rollout: { maxUnavailable: 0 } }, path: 'spec.rollout.maxUnavailable' },
  'probeTimeoutSeconds must be at least 1: a probe needs time to run, and with 0 every probe would fail at once and every change would be rolled back': {
    spec: { rollout: { probeTimeoutSeconds: 0 } },
    path: 'spec.rollout.probeTimeoutSeconds',
  },
};

/** More declarations some rules refuse, each also refused by the twin at the same field. */
const MORE: [message: string, spec: object, path: string][] = [
  ['a probe is exactly one of route or ping', { addresses: ['192.0.2.1/24'], probes: [{}] }, 'spec.probes[0]'],
  ['maxUnavailable must be a number of nodes or a percentage from "1%" to "100%", such as 1 or "25%"', { rollout: { maxUnavailable: '0%' } }, 'spec.rollout.maxUnavailable'],
  ['maxUnavailable must be a number of nodes or a percentage from "1%" to "100%", such as 1 or "25%"', { rollout: { maxUnavailable: '05%' } }, 'spec.rollout.maxUnavailable'],
  ['maxUnavailable must be a number of nodes or a percentage from "1%" to "100%", such as 1 or "25%"', { rollout: { maxUnavailable: '2' } }, 'spec.rollout.maxUnavailable'],
  ['maxUnavailable must be at least 1: with 0 no node could ever move to a new generation', { rollout: { maxUnavailable: -1 } }, 'spec.rollout.maxUnavailable'],
  [
    'each probe needs an address of its family (IPv4 or IPv6) on the device, to send from and be answered at',
    { addresses: ['2001:db8::1/64'], routes: [{ to: '198.51.100.0/24' }], probes: [{ route: { to: '2001:db8::7' } }, { ping: { to: '198.51.100.7' } }] },
    'spec.probes[1].ping.to',
  ],
];

function examples(): object[] {
  const dir = join(ROOT, 'examples');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')) as unknown as { toJS(): object }[])
    .map((d) => d.toJS());
}

describe('CEL rules of the TunDevice CRD', () => {
  it('each has a twin in the TypeScript validation, and each twin a rule', () => {
    expect(RULES.length).toBeGreaterThanOrEqual(21);
    expect(RULES.map((r) => r.message).sort()).toEqual(Object.keys(TWINS).sort());
  });

  it.each(RULES.map((r) => [r.message, r] as const))('refuses what its twin refuses: %s', (message, rule) => {
    const twin = TWINS[message];
    const obj = device(twin.spec);
    expect(celHolds(rule, obj)).toContain(false);
    const problems = validateTunDevice(obj).problems;
    expect(problems.map((p) => formatPath(p.path))).toContain(twin.path);
  });

  it.each(MORE)('refuses what its twin refuses: %s (%j)', (message, spec, path) => {
    const rule = RULES.find((r) => r.message === message)!;
    const obj = device(spec);
    expect(celHolds(rule, obj)).toContain(false);
    expect(validateTunDevice(obj).problems.map((p) => formatPath(p.path))).toContain(path);
  });

  it('accepts every example, and the valid declarations the twins are variations of', () => {
    const valid = [
      ...examples(),
      device({ mode: 'tap', macAddress: '02:00:00:00:00:01', ifname: 'tk-ñññññ', mtu: 1280, addresses: ['2001:db8::1/64'] }),
      device({ addresses: ['192.0.2.1/24'], routes: [{ to: 'default', via: '192.0.2.254', onLink: false, table: 253 }, { to: '2001:db8::/32', mtu: 1280 }] }),
      device({
        addresses: ['192.0.2.1/24', '2001:db8:1::1/64'],
        routes: [{ to: '198.51.100.0/24' }, { to: '2001:db8:2::/48' }],
        probes: [{ route: { to: '198.51.100.7' } }, { ping: { to: '192.0.2.2' } }, { route: { to: '2001:db8:2::7' } }, { ping: { to: '2001:db8:1::2' } }],
        rollout: { maxUnavailable: 1, probeTimeoutSeconds: 1 },
      }),
      device({ addresses: ['192.0.2.1/24'], probes: [{ route: { to: '192.0.2.7' } }], rollout: { maxUnavailable: '1%', probeTimeoutSeconds: 3600 } }),
      device({ rollout: { maxUnavailable: '100%' } }),
      device({ rollout: { maxUnavailable: '25%' } }),
      device({ rollout: {} }),
      device({ probes: [] }),
    ];
    for (const obj of valid) {
      expect(validateTunDevice(obj).problems).toEqual([]);
      for (const rule of RULES) expect({ rule: rule.message, holds: celHolds(rule, obj).every(Boolean) }).toEqual({ rule: rule.message, holds: true });
    }
  });
});
