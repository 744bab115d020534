import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { main } from '../../../controller/cli/main.js';
import { crdFiles, REGENERATE_COMMAND, toStructural } from '../../../controller/schema/crd.js';
import { Type } from '@sinclair/typebox';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const CRDS = join(ROOT, 'crds');
/** The Helm chart's copy: Helm installs only CRDs inside the chart, so they must be the same bytes. */
const CHART_CRDS = join(ROOT, 'charts', 'tunkeeper', 'crds');

function capture() {
  let text = '';
  return { stream: { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream, text: () => text };
}

type Node = Record<string, unknown>;

/** Every place where the API server's structural-schema rules could be broken. */
function structuralViolations(node: Node, where: string, out: string[] = []): string[] {
  const intOrString = node['x-kubernetes-int-or-string'] === true;
  for (const forbidden of ['$ref', '$id', '$schema', 'anyOf', 'oneOf', 'allOf', 'not', 'patternProperties', 'const', 'definitions']) {
    // The one anyOf the API server allows: exactly integer or string, next to x-kubernetes-int-or-string and no type.
    if (forbidden === 'anyOf' && intOrString && JSON.stringify(node.anyOf) === JSON.stringify([{ type: 'integer' }, { type: 'string' }]) && !('type' in node)) continue;
    if (forbidden in node) out.push(`${where}: ${forbidden}`);
  }
  const preserve = node['x-kubernetes-preserve-unknown-fields'] === true || intOrString;
  if (typeof node.type !== 'string' && !preserve) out.push(`${where}: no type`);
  if ('properties' in node && 'additionalProperties' in node) out.push(`${where}: properties and additionalProperties`);
  if (node.additionalProperties === false) out.push(`${where}: additionalProperties: false`);
  if (node.type === 'array' && typeof node.items !== 'object') out.push(`${where}: array without items`);
  for (const [k, child] of Object.entries((node.properties as Record<string, Node>) ?? {})) structuralViolations(child, `${where}.${k}`, out);
  if (typeof node.items === 'object') structuralViolations(node.items as Node, `${where}[]`, out);
  if (typeof node.additionalProperties === 'object') structuralViolations(node.additionalProperties as Node, `${where}{}`, out);
  return out;
}

describe('CRDs', () => {
  it.each([
    ['crds/', CRDS],
    ['charts/tunkeeper/crds/', CHART_CRDS],
  ])('%s is what the schema generates', (label, dir) => {
    const generated = crdFiles();
    const onDisk = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
    const hint = `${label} is out of date with controller/schema; regenerate with: ${REGENERATE_COMMAND}`;
    expect({ files: onDisk, hint }).toEqual({ files: generated.map((f) => f.name).sort(), hint });
    for (const f of generated) {
      const current = readFileSync(join(dir, f.name), 'utf8');
      expect({ file: f.name, upToDate: current === f.text, hint }).toEqual({ file: f.name, upToDate: true, hint });
    }
  });

  it('are structural, cluster-scoped v1alpha1 with names, columns and (TunNodeState) a status subresource', () => {
    for (const f of crdFiles()) {
      const [doc] = parseAllDocuments(f.text) as unknown as { toJS(): Node }[];
      const crd = doc.toJS();
      expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
      const spec = crd.spec as Node;
      expect(spec.scope).toBe('Cluster');
      expect(spec.group).toBe('tunkeeper.io');
      const names = spec.names as Node;
      expect(names.categories).toEqual(['tunkeeper']);
      const [version] = spec.versions as Node[];
      expect(version).toMatchObject({ name: 'v1alpha1', served: true, storage: true });
      const schema = (version.schema as Node).openAPIV3Schema as Node;
      expect(structuralViolations(schema, names.kind as string)).toEqual([]);
      const columns = (version.additionalPrinterColumns as Node[]).map((c) => c.name);
      expect(columns).toContain('Age');
      if (names.kind === 'TunDevice') {
        expect(names.shortNames).toEqual(['tund']);
        expect(columns.slice(0, 5)).toEqual(['Ready', 'Status', 'Ifname', 'Mode', 'MTU']);
        const specSchema = (schema.properties as Record<string, Node>).spec;
        expect(specSchema.default).toEqual({});
        const props = specSchema.properties as Record<string, Node>;
        expect([props.mode.default, props.mtu.default, props.up.default, props.multiQueue.default]).toEqual(['tun', 1500, true, false]);
        expect(((props.routes.items as Node).properties as Record<string, Node>).table.default).toBe(254);
        // rollout has no default of its own (an object without it stays as written); its fields do.
        const rollout = props.rollout as Node;
        expect(rollout.default).toBeUndefined();
        const rolloutProps = rollout.properties as Record<string, Node>;
        expect(rolloutProps.maxUnavailable).toMatchObject({ default: '100%', 'x-kubernetes-int-or-string': true });
        expect(rolloutProps.probeTimeoutSeconds).toMatchObject({ type: 'integer', default: 30, minimum: 1, maximum: 3600 });
        expect(props.probes).toMatchObject({ type: 'array', maxItems: 16 });
      } else {
        expect(names.shortNames).toEqual(['tuns']);
        expect(version.subresources).toEqual({ status: {} });
        const conditions = ((((schema.properties as Record<string, Node>).status.properties as Record<string, Node>).devices.items as Node).properties as Record<string, Node>)
          .conditions;
        expect(((conditions.items as Node).properties as Record<string, Node>).type.enum).toEqual(['Ready', 'Degraded', 'Conflict', 'Refused']);
        expect(conditions['x-kubernetes-list-map-keys']).toEqual(['type']);
      }
    }
  });

  it('refuses to generate from schema constructs that have no structural form', () => {
    expect(() => toStructural(Type.Union([Type.String(), Type.Integer()]))).toThrow('anyOf');
    expect(() => toStructural(Type.Object({ a: Type.String() }, { $id: 'x', oneOf: [] }))).toThrow('oneOf');
    // int-or-string carries its constraints in CEL: the API server takes no other anyOf.
    expect(() => toStructural(Type.Union([Type.Integer({ minimum: 1 }), Type.String()], { 'x-kubernetes-int-or-string': true }))).toThrow('x-kubernetes-int-or-string');
  });

  it('`tunkeeper crds` prints them as one multi-document stream, and --output-dir writes crds/', async () => {
    const out = capture();
    expect(await main(['crds'], { stdout: out.stream })).toBe(0);
    const docs = parseAllDocuments(out.text()) as unknown as { toJS(): Node }[];
    expect(docs.map((d) => (d.toJS().metadata as Node).name)).toEqual(['tundevices.tunkeeper.io', 'tunnodestates.tunkeeper.io']);

    const dir = mkdtempSync(join(tmpdir(), 'tunkeeper-crds-'));
    try {
      const err = capture();
      expect(await main(['crds', '--output-dir', dir], { stderr: err.stream })).toBe(0);
      for (const f of crdFiles()) expect(readFileSync(join(dir, f.name), 'utf8')).toBe(f.text);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
