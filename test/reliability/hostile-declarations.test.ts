/**
 * Hostile declarations (issue #6, item 7), without a kernel: every file of
 * test/fixtures/hostile/ and the generated monsters (over 4 MiB, 10001 documents, 65537 routes,
 * 50000 brackets ...) through `tunkeeper validate` — exit 1, `file:line:col: message` at the
 * offending text — and hostile TunDevice objects (as the API server would hand them over) through
 * the agent's validator, its policy, and the CRD schema the API server applies.
 * Parse time is not asserted (jest's timeout is the hang guard): each case must complete and fail.
 * The running agent's side of the same files is hostile-agent.test.ts.
 */
import { describe, expect, it } from '@jest/globals';
import { Value } from '@sinclair/typebox/value';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_POLICY } from '../../controller/model/desired.js';
import { tunDeviceCrd } from '../../controller/schema/crd.js';
import { policyProblems } from '../../controller/schema/policy-problems.js';
import { formatPath } from '../../controller/schema/problem.js';
import { TunDeviceSchema } from '../../controller/schema/tundevice.js';
import { validateTunDevice } from '../../controller/schema/validate.js';
import { loadDeclarations } from '../../controller/sources/files-load.js';
import { evaluateRule } from '../helpers/cel.js';
import { runCli } from '../helpers/cli.js';
import { DUPLICATE_DIR, GENERATED, HOSTILE_DIR, HOSTILE_FILES } from './helpers/hostile-catalog.js';

/** Lines `file:line:col: message` of a validate run, by file. */
function problemLines(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l !== '');
}

function expectReported(lines: string[], file: string, at: string, phrase: string): void {
  const prefix = `${file}:${at}: `;
  const line = lines.find((l) => l.startsWith(prefix) && l.includes(phrase));
  expect({ file, at, phrase, line: line ?? lines.filter((l) => l.startsWith(`${file}:`)) }).toEqual({ file, at, phrase, line: expect.any(String) });
}

describe('hostile declaration files: tunkeeper validate', () => {
  it('has an expectation for every hostile fixture, and at least 50 of them', async () => {
    const files = (await readdir(HOSTILE_DIR)).filter((f) => f.endsWith('.yaml')).sort();
    const dup = (await readdir(DUPLICATE_DIR)).map((f) => `duplicate-across-files/${f}`).sort();
    const covered = [...new Set(HOSTILE_FILES.map(([f]) => f))].sort();
    expect(covered).toEqual([...files, ...dup].sort());
    expect(covered.length + GENERATED.length).toBeGreaterThanOrEqual(50);
  });

  it('each file on its own is invalid and declares nothing valid of itself', async () => {
    for (const file of new Set(HOSTILE_FILES.map(([f]) => f))) {
      const path = file.startsWith('duplicate-across-files/') ? DUPLICATE_DIR : join(HOSTILE_DIR, file);
      const snapshot = await loadDeclarations([path], { policy: DEFAULT_POLICY });
      expect({ file, invalid: snapshot.problems.length > 0 }).toEqual({ file, invalid: true });
      // A file with a problem declares nothing, not even its valid documents (second-document-bad.yaml).
      expect({ file, devices: snapshot.devices.map((d) => d.ifname) }).toEqual({ file, devices: [] });
    }
  });

  it('validate exits 1 and names file:line:col and the reason for every file', async () => {
    const r = await runCli(['validate', '-f', HOSTILE_DIR, '-f', DUPLICATE_DIR]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^invalid: \d+ problems in \d+ files\n$/);
    const lines = problemLines(r.stdout);
    for (const [file, at, phrase] of HOSTILE_FILES) expectReported(lines, join(HOSTILE_DIR, file), at, phrase);
    // Every line has a place: a file, a line and a column.
    for (const l of lines) expect(l).toMatch(/^\/\S+\.yaml:\d+:\d+: \S/);
  });

  it('the same policy cases pass when the agent allows them (the refusal is the policy, not the schema)', async () => {
    const files = ['ifname-outside-prefixes.yaml', 'route-default-v4.yaml', 'route-default-v6.yaml'].map((f) => join(HOSTILE_DIR, f));
    const refused = await runCli(['validate', '-f', ...files]);
    expect(refused.code).toBe(1);
    const allowed = await runCli(['validate', '-f', ...files, '--allowed-prefix', 'tk-', '--allowed-prefix', 'wg', '--allow-default-route']);
    expect({ code: allowed.code, stdout: allowed.stdout }).toEqual({ code: 0, stdout: '' });
    // A policy that would hand the host's interfaces over is refused before anything is read.
    const takeover = await runCli(['validate', '-f', files[0]!, '--allowed-prefix', 'e']);
    expect(takeover.code).toBe(1);
    expect(takeover.stderr).toContain('would let declarations take over host interfaces such as eth0');
  });

  it(`generated monsters (${GENERATED.map((g) => g.file).join(', ')}) are refused at a place, and the run completes`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tk-hostile-'));
    try {
      for (const g of GENERATED) await writeFile(join(dir, g.file), g.text());
      const r = await runCli(['validate', '-f', dir]);
      expect(r.code).toBe(1);
      const lines = problemLines(r.stdout);
      for (const g of GENERATED) expectReported(lines, join(dir, g.file), g.at, g.phrase);
      // 300 bad documents: the first 200 problems, then one line that counts the rest.
      expect(lines.filter((l) => l.startsWith(join(dir, 'gen-300-problems.yaml')))).toHaveLength(201);
      expect(lines).toContain(`${join(dir, 'gen-300-problems.yaml')}: 100 more problems in this file not shown`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ---- TunDevice objects, as the API server hands them over -------------------------------------

type Schema = { properties?: Record<string, Schema>; items?: Schema; 'x-kubernetes-validations'?: { rule: string }[] };
const crdSchema = (tunDeviceCrd().spec as { versions: { schema: { openAPIV3Schema: Schema } }[] }).versions[0]!.schema.openAPIV3Schema;

/** Whether the API server would refuse the object: the structural schema, then every CEL rule that applies. */
function crdRefuses(obj: unknown): boolean {
  const value = Value.Default(TunDeviceSchema, structuredClone(obj));
  if (!Value.Check(TunDeviceSchema, value)) return true;
  const refused = (schema: Schema, v: unknown): boolean => {
    if (v === undefined) return false;
    for (const r of schema['x-kubernetes-validations'] ?? []) if (evaluateRule(r.rule, v) !== true) return true;
    if (schema.items && Array.isArray(v)) return v.some((x) => refused(schema.items!, x));
    if (schema.properties && v !== null && typeof v === 'object') {
      return Object.entries(schema.properties).some(([k, s]) => refused(s, (v as Record<string, unknown>)[k]));
    }
    return false;
  };
  return refused(crdSchema, value);
}

const object = (spec: unknown, name = 'tk-obj'): Record<string, unknown> => ({ apiVersion: 'tunkeeper.io/v1alpha1', kind: 'TunDevice', metadata: { name }, spec });

/** [what, object, field the agent names, phrase, whether the CRD schema is checked to refuse it too]. */
const HOSTILE_OBJECTS: Array<[string, unknown, string, string, boolean]> = [
  ['ifname eth0', object({ ifname: 'eth0' }), 'spec.ifname', 'belong to the host', false],
  ['ifname lo', object({ ifname: 'lo' }), 'spec.ifname', "one of the host's own devices", false],
  ['ifname cni0', object({ ifname: 'cni0' }), 'spec.ifname', 'belong to the host', false],
  ['name eth0 as the ifname', object({}, 'eth0'), 'metadata.name', 'belong to the host', false],
  ['default route', object({ addresses: ['192.0.2.1/24'], routes: [{ to: '0.0.0.0/0', via: '192.0.2.254' }] }), 'spec.routes[0].to', 'default route', false],
  ['ifname with /', object({ ifname: 'tk-a/b' }), 'spec.ifname', "contains '/'", true],
  ['ifname of 16 bytes', object({ ifname: 'tk-0123456789abc' }), 'spec.ifname', 'at most 15 bytes', true],
  // Its UTF-8 holds byte 0xA0, which the kernel reads as a blank; the CRD's pattern lists U+00A0 itself.
  ['ifname with U+00A0', object({ ifname: 'tk-\u00a0' }), 'spec.ifname', 'byte 0xA0', true],
  // 'à' (C3 A0) holds the byte too; no pattern over characters can list every such character.
  ['ifname with à', object({ ifname: 'tk-\u00e0' }), 'spec.ifname', 'byte 0xA0', false],
  ['ifname with a right-to-left override', object({ ifname: 'tk-\u202e0ab' }), 'spec.ifname', 'U+202E', true],
  ['ifname a number', object({ ifname: 12345 }), 'spec.ifname', 'must be a string', true],
  ['mtu a string', object({ mtu: '1400' }), 'spec.mtu', 'must be a whole number', true],
  ['mtu a million', object({ mtu: 1e6 }), 'spec.mtu', 'must be from 68 to 65535', true],
  ['up a string', object({ up: 'false' }), 'spec.up', 'must be true or false', true],
  ['spec null', object(null), 'spec', 'must be a mapping', true],
  ['2000 addresses', object({ addresses: Array.from({ length: 2000 }, (_, i) => `198.18.${i >> 8}.${i & 255}/32`) }), 'spec.addresses', 'at most 1024', true],
  // (The CRD's maxItems refuses it as well; walking 70000 items through the test's CEL evaluator would only cost time.)
  ['70000 routes', object({ addresses: ['198.18.0.1/15'], routes: Array.from({ length: 70000 }, (_, i) => ({ to: `198.19.${(i >> 8) & 255}.${i & 255}/32`, table: 100 + (i >> 16) })) }), 'spec.routes', 'at most 65536', false],
  ['gateway not an address', object({ addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24', via: '192.0.2.300' }] }), 'spec.routes[0].via', 'is not an IPv4 address', true],
  ['duplicate address', object({ addresses: ['192.0.2.1/24', '192.0.2.1/24'] }), 'spec.addresses[1]', 'already declared', false],
  ['MAC on tun', object({ mode: 'tun', macAddress: '02:00:00:00:00:01' }), 'spec.macAddress', 'only for tap devices', true],
  ['owner (uid_t)-1', object({ owner: 4294967295 }), 'spec.owner', 'must be from 0 to 4294967294', true],
  ['table 2^32', object({ routes: [{ to: '198.51.100.0/24', table: 4294967296 }] }), 'spec.routes[0].table', 'must be from 1 to 4294967295', true],
  // Unknown fields: an API server prunes them (without strict field validation); the agent refuses them.
  ['unknown spec field', object({ mtu: 1400, hostNetwork: true }), 'spec.hostNetwork', 'unknown field', false],
  ['__proto__ key', JSON.parse('{"apiVersion":"tunkeeper.io/v1alpha1","kind":"TunDevice","metadata":{"name":"tk-proto"},"spec":{"__proto__":{"polluted":true}}}'), 'spec.__proto__', 'unknown field', false],
  ['constructor key', object({ constructor: { prototype: { polluted: true } } }), 'spec.constructor', 'unknown field', false],
  ['kind with a trailing blank', { apiVersion: 'tunkeeper.io/v1alpha1', kind: 'TunDevice ', metadata: { name: 'tk-k' } }, 'kind', 'is not a kind tunkeeper reads', false],
  ['not an object', [object({})], '', 'must be a TunDevice mapping', false],
  // Probes and rollout. Whether a probe lies inside the device's routes is the agent's alone: the
  // API server's CEL cost estimate for probes × 65536 routes is over its budget (see tundevice.ts).
  ['probe outside every route and address', object({ addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24' }], probes: [{ route: { to: '203.0.113.9' } }] }), 'spec.probes[0].route.to', 'is outside every route and address prefix', false],
  ['probe on a device without addresses', object({ routes: [{ to: '198.51.100.0/24' }], probes: [{ ping: { to: '198.51.100.1' } }] }), 'spec.probes', 'without addresses', true],
  ['probe of a family without an address', object({ addresses: ['2001:db8::1/64'], routes: [{ to: '198.51.100.0/24' }], probes: [{ ping: { to: '198.51.100.1' } }] }), 'spec.probes[0].ping.to', 'has no IPv4 address', true],
  ['probe of the device itself', object({ addresses: ['192.0.2.1/24'], probes: [{ ping: { to: '192.0.2.1' } }] }), 'spec.probes[0].ping.to', 'an address of this device itself', false],
  ['probe both route and ping', object({ addresses: ['192.0.2.1/24'], probes: [{ route: { to: '192.0.2.7' }, ping: { to: '192.0.2.7' } }] }), 'spec.probes[0]', 'has both route and ping', true],
  ['probe neither route nor ping', object({ addresses: ['192.0.2.1/24'], probes: [{}] }), 'spec.probes[0]', 'needs one of route or ping', true],
  ['10000 probes', object({ addresses: ['192.0.2.1/24'], probes: Array.from({ length: 10000 }, () => ({ ping: { to: '192.0.2.2' } })) }), 'spec.probes', 'at most 16 are allowed', true],
  ['probe timeout 0', object({ rollout: { probeTimeoutSeconds: 0 } }), 'spec.rollout.probeTimeoutSeconds', 'a probe needs time to run', true],
  ['maxUnavailable 0', object({ rollout: { maxUnavailable: 0 } }), 'spec.rollout.maxUnavailable', 'no node could ever take a new generation', true],
  ['maxUnavailable 0%', object({ rollout: { maxUnavailable: '0%' } }), 'spec.rollout.maxUnavailable', 'no node could ever take a new generation', true],
];

describe('hostile TunDevice objects: the agent validator, its policy, and the CRD schema', () => {
  it.each(HOSTILE_OBJECTS)('%s: refused, at the field', (_what, obj, field, phrase, crd) => {
    const r = validateTunDevice(obj, { context: 'kubernetes' });
    const problems = r.device ? policyProblems(r.device, DEFAULT_POLICY, r.ifnamePath) : r.problems;
    expect(problems.length).toBeGreaterThan(0);
    const named = problems.find((p) => formatPath(p.path) === field && p.detail.includes(phrase));
    expect({ named: named !== undefined, problems }).toMatchObject({ named: true });
    // Where the CRD can say it, the API server refuses it first; policy is the agent's alone.
    if (crd) expect(crdRefuses(obj)).toBe(true);
    // Nothing a declaration says reaches the prototypes the agent's objects inherit from.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('has at least 25 hostile objects', () => {
    expect(HOSTILE_OBJECTS.length).toBeGreaterThanOrEqual(25);
  });
});
