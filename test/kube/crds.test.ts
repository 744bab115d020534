/**
 * The generated CRDs in a real API server: every example is accepted as written, and every kind of
 * bad TunDevice is rejected by the server itself (structural schema, formats, CEL rules, strict
 * field validation) with a message that names the field and says what is wrong. These are the
 * messages a person sees from `kubectl apply`, so the assertions read them as a person would.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { tunDeviceCrd } from '../../controller/schema/crd.js';
import { fieldMessage } from '../../controller/schema/problem.js';
import { validateTunDevice } from '../../controller/schema/validate.js';
import { describeKube, CLUSTER_START_MS, startKubeCluster, type KubeCluster } from '../helpers/kube-cluster.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const device = (name: string, spec: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'tunkeeper.io/v1alpha1',
  kind: 'TunDevice',
  metadata: { name },
  spec,
  ...extra,
});

/** One bad object per way to be wrong, and what the server's message must say about it. */
const BAD: Array<{ what: string; object: object; says: RegExp[] }> = [
  { what: 'ifname longer than IFNAMSIZ', object: device('long', { ifname: 'tk-0123456789abc' }), says: [/spec\.ifname/, /15/] },
  { what: 'ifname with a slash', object: device('slash', { ifname: 'tk-a/b' }), says: [/spec\.ifname/] },
  { what: 'ifname with a colon', object: device('colon', { ifname: 'tk-a:1' }), says: [/spec\.ifname/] },
  { what: 'ifname with whitespace', object: device('space', { ifname: 'tk a' }), says: [/spec\.ifname/] },
  { what: 'ifname ..', object: device('dotdot', { ifname: '..' }), says: [/spec\.ifname/, /'\.' or '\.\.'/] },
  { what: 'ifname with a right-to-left override', object: device('bidi', { ifname: 'tk-\u202e0ab' }), says: [/spec\.ifname/] },
  { what: 'ifname with a no-break space', object: device('nbsp', { ifname: 'tk-\u00a00' }), says: [/spec\.ifname/] },
  { what: 'unknown mode', object: device('mode', { mode: 'bridge' }), says: [/spec\.mode/, /Unsupported value: "bridge"/] },
  { what: 'MTU below 68', object: device('mtu-low', { mtu: 67 }), says: [/spec\.mtu/, /68/] },
  { what: 'MTU above 65535', object: device('mtu-high', { mtu: 65536 }), says: [/spec\.mtu/, /65535/] },
  { what: 'MTU as a string', object: device('mtu-str', { mtu: '1500' }), says: [/spec\.mtu/, /integer/] },
  { what: 'macAddress on a tun device', object: device('mac-tun', { mode: 'tun', macAddress: '02:00:00:00:00:01' }), says: [/macAddress is only for tap devices/] },
  { what: 'malformed MAC', object: device('mac-bad', { mode: 'tap', macAddress: '02:00:00:00:00' }), says: [/spec\.macAddress/] },
  { what: 'address without a prefix length', object: device('addr-noprefix', { addresses: ['192.0.2.1'] }), says: [/spec\.addresses\[0\]/] },
  { what: 'address with a bad octet', object: device('addr-octet', { addresses: ['192.0.2.300/24'] }), says: [/spec\.addresses\[0\]/, /must be an IP address with its prefix length/] },
  { what: 'IPv6 address on a device with MTU < 1280', object: device('v6-mtu', { mtu: 1000, addresses: ['2001:db8::1/64'] }), says: [/IPv6 address needs an mtu of at least 1280/] },
  { what: 'route without to', object: device('route-noto', { routes: [{ via: '192.0.2.1' }] }), says: [/spec\.routes\[0\]\.to/, /Required value/] },
  { what: 'route to garbage', object: device('route-bad', { routes: [{ to: 'everywhere' }] }), says: [/spec\.routes\[0\]\.to/] },
  { what: 'gateway of the other family', object: device('route-fam', { routes: [{ to: '198.51.100.0/24', via: '2001:db8::1' }] }), says: [/via must be an address of the same family as to/] },
  { what: 'route in the local table', object: device('route-local', { routes: [{ to: '198.51.100.0/24', table: 255 }] }), says: [/table 255 \(local\)/] },
  { what: 'onLink without a gateway', object: device('route-onlink', { routes: [{ to: '198.51.100.0/24', onLink: true }] }), says: [/onLink needs a gateway/] },
  { what: 'negative owner uid', object: device('owner', { owner: -1 }), says: [/spec\.owner/] },
  { what: 'a field that does not exist', object: device('unknown', { mtu: 1400, colour: 'blue' }), says: [/unknown field "spec\.colour"/] },
  { what: 'a gateway that is not an address', object: device('via-bad', { routes: [{ to: '198.51.100.0/24', via: '192.0.2.256' }] }), says: [/spec\.routes\[0\]\.via/, /via must be an IP address/] },
  { what: 'a name that is not a DNS subdomain', object: device('Tk_Upper', {}), says: [/metadata\.name/] },
  // spec.probes and spec.rollout
  {
    what: 'a probe on a device with no addresses',
    object: device('probe-noaddr', { routes: [{ to: '198.51.100.0/24' }], probes: [{ route: { to: '198.51.100.7' } }] }),
    says: [/spec\.probes: Invalid value: probes need an address on the device: an echo would have no source address/],
  },
  {
    what: 'a probe of a family the device has no address of',
    object: device('probe-family', { addresses: ['192.0.2.1/24'], routes: [{ to: '2001:db8:2::/48' }], probes: [{ ping: { to: '2001:db8:2::7' } }] }),
    says: [/spec\.probes: Invalid value: each probe needs an address of its family \(IPv4 or IPv6\) on the device/],
  },
  {
    what: 'a probe timeout of 0',
    object: device('probe-timeout', { rollout: { probeTimeoutSeconds: 0 } }),
    says: [/spec\.rollout\.probeTimeoutSeconds: Invalid value: 0: probeTimeoutSeconds must be at least 1: a probe needs time to run/],
  },
  {
    what: '10,000 probes',
    object: device('probe-10000', { addresses: ['198.18.0.1/15'], probes: Array.from({ length: 10000 }, (_, i) => ({ route: { to: `198.18.${i >> 8}.${i & 255}` } })) }),
    says: [/spec\.probes: Too many: 10000: must have at most 16 items/],
  },
  {
    what: 'maxUnavailable 0',
    object: device('rollout-zero', { rollout: { maxUnavailable: 0 } }),
    says: [/spec\.rollout\.maxUnavailable: Invalid value: 0: maxUnavailable must be at least 1: with 0 no node could ever move/],
  },
  {
    what: 'maxUnavailable "0%"',
    object: device('rollout-zero-pct', { rollout: { maxUnavailable: '0%' } }),
    says: [/spec\.rollout\.maxUnavailable: Invalid value: "0%": maxUnavailable must be a number of nodes or a percentage from "1%" to "100%"/],
  },
  {
    what: 'maxUnavailable neither a count nor a percentage',
    object: device('rollout-bool', { rollout: { maxUnavailable: true } }),
    says: [/spec\.rollout\.maxUnavailable/, /must be of type integer,string/],
  },
  {
    what: 'a probe with both route and ping',
    object: device('probe-both', { addresses: ['192.0.2.1/24'], probes: [{ route: { to: '192.0.2.7' }, ping: { to: '192.0.2.7' } }] }),
    says: [/spec\.probes\[0\]: Invalid value: a probe is exactly one of route or ping/],
  },
  {
    what: 'a probe with neither route nor ping',
    object: device('probe-neither', { addresses: ['192.0.2.1/24'], probes: [{}] }),
    says: [/spec\.probes\[0\]: Invalid value: a probe is exactly one of route or ping/],
  },
  {
    what: 'a probe address that is not an address',
    object: device('probe-badip', { addresses: ['192.0.2.1/24'], probes: [{ ping: { to: '192.0.2.300' } }] }),
    says: [/spec\.probes\[0\]\.ping\.to: Invalid value: "192\.0\.2\.300": ping\.to must be an IP address/],
  },
];

/**
 * The rule that would say in CEL that a probe lies inside one of the device's routes or address
 * prefixes. It is not in the CRD: its estimated cost (16 probes × 65536 routes) is over the API
 * server's budget. This test keeps that claim true: if an API server ever accepts it, move it in.
 */
const COVERAGE_RULE =
  '!has(self.probes) || self.probes.all(p, !has(p.route) || ' +
  "(has(self.routes) && self.routes.exists(r, r.to != 'default' && cidr(r.to).containsIP(ip(p.route.to)))) || " +
  '(has(self.addresses) && self.addresses.exists(a, cidr(a).containsIP(ip(p.route.to)))))';

describeKube('the CRDs in a real API server', () => {
  let cluster: KubeCluster;
  beforeAll(async () => {
    cluster = await startKubeCluster();
  }, CLUSTER_START_MS);
  afterAll(async () => {
    await cluster?.close();
  });

  it('serves both kinds with their short names and printer columns', async () => {
    const r = await cluster.kubectl(['api-resources', '--api-group=tunkeeper.io', '-o', 'wide']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/tundevices\s+\S+\s+tunkeeper\.io\/v1alpha1\s+false\s+TunDevice/);
    expect(r.stdout).toMatch(/tunnodestates\s+\S+\s+tunkeeper\.io\/v1alpha1\s+false\s+TunNodeState/);
  });

  it('accepts every example in examples/ as written, and shows it in `kubectl get tundevices`', async () => {
    const files = readdirSync(join(ROOT, 'examples')).filter((f) => /\.ya?ml$/.test(f));
    expect(files.length).toBeGreaterThanOrEqual(3);
    const names: string[] = [];
    for (const f of files) {
      const path = join(ROOT, 'examples', f);
      for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) names.push((doc.toJS() as { metadata: { name: string } }).metadata.name);
      const r = await cluster.kubectl(['apply', '--server-side', '--field-manager=test', '-f', path]);
      expect({ file: f, code: r.code, stderr: r.stderr }).toEqual({ file: f, code: 0, stderr: '' });
    }
    const get = await cluster.kubectl(['get', 'tundevices']);
    expect(get.code).toBe(0);
    const header = get.stdout.split('\n')[0];
    expect(header).toMatch(/NAME\s+READY\s+STATUS\s+IFNAME\s+MODE/);
    for (const n of names) expect(get.stdout).toContain(n);
  });

  describe.each(BAD)('rejects $what', ({ object, says }) => {
    it('with a message that names the field', async () => {
      const r = await cluster.kubectl(['create', '--validate=strict', '-f', '-'], { input: JSON.stringify(object) });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/is invalid|unknown field|strict decoding error/);
      for (const s of says) expect(r.stderr).toMatch(s);
    });
  });

  it('moves metadata.generation only with the spec (status subresource), so observedGeneration means "this spec"', async () => {
    const gen = async () => {
      const r = await cluster.kubectl(['get', 'tundevice', 'tk-generation', '-o', 'jsonpath={.metadata.generation}']);
      expect(r.stderr).toBe('');
      return Number(r.stdout);
    };
    expect((await cluster.kubectl(['create', '-f', '-'], { input: JSON.stringify(device('tk-generation', { mtu: 1400 })) })).code).toBe(0);
    expect(await gen()).toBe(1);
    expect((await cluster.kubectl(['label', 'tundevice', 'tk-generation', 'team=edge'])).code).toBe(0);
    expect(await gen()).toBe(1);
    expect((await cluster.kubectl(['patch', 'tundevice', 'tk-generation', '--type=merge', '-p', '{"spec":{"mtu":1380}}'])).code).toBe(0);
    expect(await gen()).toBe(2);
  });

  it('round-trips probes and rollout as written, with the rollout defaults filled in', async () => {
    const spec = {
      addresses: ['192.0.2.1/24', '2001:db8:1::1/64'],
      routes: [{ to: '198.51.100.0/24' }, { to: '2001:db8:2::/48' }],
      probes: [{ route: { to: '198.51.100.7' } }, { ping: { to: '192.0.2.2' } }, { route: { to: '2001:db8:2::7' } }],
      rollout: { maxUnavailable: 1 },
    };
    const created = await cluster.kubectl(['create', '--validate=strict', '-o', 'json', '-f', '-'], { input: JSON.stringify(device('tk-probes', spec)) });
    expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: '' });
    const stored = JSON.parse(created.stdout) as { spec: Record<string, unknown> };
    expect(stored.spec.probes).toEqual(spec.probes);
    expect(stored.spec.rollout).toEqual({ maxUnavailable: 1, probeTimeoutSeconds: 30 });
    // The agent builds the same probes and rollout from what the server stored.
    const d = validateTunDevice(stored, { context: 'kubernetes' }).device;
    expect(d?.probes).toEqual([
      { kind: 'route', family: 4, to: '198.51.100.7' },
      { kind: 'ping', family: 4, to: '192.0.2.2' },
      { kind: 'route', family: 6, to: '2001:db8:2::7' },
    ]);
    expect(d?.rollout).toEqual({ maxUnavailable: 1, probeTimeoutSeconds: 30 });

    // An empty rollout gets both defaults; a percentage stays a string.
    const pct = await cluster.kubectl(['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(device('tk-rollout', { rollout: { maxUnavailable: '25%' } })) });
    expect(pct.code).toBe(0);
    expect((JSON.parse(pct.stdout) as { spec: Record<string, unknown> }).spec.rollout).toEqual({ maxUnavailable: '25%', probeTimeoutSeconds: 30 });
    const empty = await cluster.kubectl(['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(device('tk-rollout-empty', { rollout: {} })) });
    expect(empty.code).toBe(0);
    expect((JSON.parse(empty.stdout) as { spec: Record<string, unknown> }).spec.rollout).toEqual({ maxUnavailable: '100%', probeTimeoutSeconds: 30 });
  });

  it('leaves a probe outside every route to the agent, whose validator refuses it at the field', async () => {
    const spec = { addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24' }], probes: [{ route: { to: '203.0.113.9' } }] };
    const created = await cluster.kubectl(['create', '--validate=strict', '-o', 'json', '-f', '-'], { input: JSON.stringify(device('tk-pout', spec)) });
    expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: '' });
    const r = validateTunDevice(JSON.parse(created.stdout), { context: 'kubernetes' });
    expect(r.problems.map(fieldMessage)).toEqual([
      'spec.probes[0].route.to: 203.0.113.9 is outside every route and address prefix of this device (198.51.100.0/24, 192.0.2.0/24), so no lookup for it could leave through the device',
    ]);
    expect(r.device).toBeUndefined();

    // Why: the same rule in CEL is over the API server's cost budget.
    const crd = structuredClone(tunDeviceCrd()) as {
      metadata: { name: string };
      spec: { group: string; versions: { schema: { openAPIV3Schema: { properties: { spec: { 'x-kubernetes-validations': object[] } } } } }[] };
    };
    crd.spec.group = 'cost.tunkeeper.io';
    crd.metadata.name = `tundevices.${crd.spec.group}`;
    crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec['x-kubernetes-validations'].push({ rule: COVERAGE_RULE, message: 'a probe must lie inside a route or address prefix' });
    const tried = await cluster.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(crd) });
    expect(tried.code).not.toBe(0);
    expect(tried.stderr).toMatch(/x-kubernetes-validations\[\d+\]\.rule: Forbidden: estimated rule cost exceeds budget/);
  });

  it('defaults what the schema defaults, so the stored object is explicit', async () => {
    const r = await cluster.kubectl(['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(device('tk-defaults', {})) });
    expect(r.code).toBe(0);
    const spec = (JSON.parse(r.stdout) as { spec: Record<string, unknown> }).spec;
    expect(spec).toMatchObject({ mode: 'tun', mtu: 1500, up: true, multiQueue: false, vnetHdr: false, packetInfo: false });
  });
});
