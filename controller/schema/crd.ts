/**
 * The CustomResourceDefinitions, generated from the TypeBox schemas. The API server wants a
 * structural schema: every node typed, no $ref, no anyOf/oneOf carrying types, and
 * `additionalProperties` never next to `properties` (unknown fields are pruned, or refused by
 * `kubectl --validate=strict`). toStructural() converts TypeBox's output into that form and throws
 * on any keyword it does not know, so a schema change cannot silently produce a broken CRD.
 *
 * What JSON Schema cannot say travels as CEL (`x-kubernetes-validations`, written next to the
 * fields in tundevice.ts). The agent also runs the full TypeScript validation on every object it
 * reads, so checks CEL cannot express (host bits, gateway reachability, byte 0xA0 in a name)
 * still refuse the device, visibly, in TunNodeState.
 */
import type { TSchema } from '@sinclair/typebox';
import { Document, visit } from 'yaml';
import { API_VERSION, GROUP, TUN_DEVICE_KIND, TunDeviceSpecSchema, VERSION } from './tundevice.js';
import { TUN_NODE_STATE_KIND, TunNodeStateStatusSchema } from './tunnodestate.js';
import { TunDeviceStatusSchema } from './tundevice-status.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** Keywords copied as they are, in this order (the order they appear in the CRD). */
const COPIED = ['description', 'type', 'format', 'enum', 'default', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'minItems', 'maxItems', 'nullable'];
/** TypeBox bookkeeping and our own keywords: never part of the CRD. */
const DROPPED = new Set(['additionalProperties', 'x-tunkeeper-format', 'x-tunkeeper-hint', '$id']);
const HANDLED = new Set([...COPIED, 'properties', 'required', 'items', 'anyOf', 'const', 'patternProperties']);

const ANY_KEY = '^(.*)$';

export function toStructural(schema: TSchema, where = '<root>'): JsonObject {
  const out: JsonObject = {};
  for (const key of Object.keys(schema)) {
    if (!HANDLED.has(key) && !DROPPED.has(key) && !key.startsWith('x-kubernetes-')) {
      throw new Error(`CRD generation: keyword "${key}" at ${where} has no structural form; extend toStructural or change the schema`);
    }
  }
  const literals = literalValues(schema);
  if (isIntOrString(schema)) {
    // The one union a structural schema may carry: no type of its own, and exactly this anyOf.
    for (const key of COPIED) if (schema[key] !== undefined) out[key] = schema[key] as Json;
    out.anyOf = INT_OR_STRING;
  } else if (literals) {
    if (schema.description !== undefined) out.description = schema.description as string;
    out.type = typeof literals[0] === 'number' ? 'integer' : typeof literals[0];
    out.enum = literals as Json[];
    if (schema.default !== undefined) out.default = schema.default as Json;
  } else {
    if (schema.anyOf !== undefined) throw new Error(`CRD generation: anyOf at ${where} is not a union of literals`);
    for (const key of COPIED) if (schema[key] !== undefined) out[key] = schema[key] as Json;
  }
  if (schema.items !== undefined) out.items = toStructural(schema.items as TSchema, `${where}[]`);
  if (schema.properties !== undefined) {
    const props: JsonObject = {};
    for (const [name, child] of Object.entries(schema.properties as Record<string, TSchema>)) props[name] = toStructural(child, `${where}.${name}`);
    out.properties = props;
    const required = (schema.required as string[] | undefined) ?? [];
    if (required.length > 0) out.required = required;
  }
  if (schema.patternProperties !== undefined) {
    const entries = Object.entries(schema.patternProperties as Record<string, TSchema>);
    if (entries.length !== 1 || entries[0][0] !== ANY_KEY) throw new Error(`CRD generation: patternProperties at ${where} must be a plain string map`);
    out.additionalProperties = toStructural(entries[0][1], `${where}{}`);
  }
  for (const key of Object.keys(schema)) if (key.startsWith('x-kubernetes-')) out[key] = schema[key] as Json;
  return out;
}

/** The anyOf of an int-or-string field, as the API server wants it (controller-gen writes the same). */
const INT_OR_STRING: Json[] = [{ type: 'integer' }, { type: 'string' }];

function isIntOrString(schema: TSchema): boolean {
  if (schema['x-kubernetes-int-or-string'] !== true) return false;
  // Symbol keys (TypeBox's Kind) do not take part in JSON.stringify.
  if (JSON.stringify(schema.anyOf) !== JSON.stringify(INT_OR_STRING)) {
    throw new Error('CRD generation: x-kubernetes-int-or-string needs exactly Type.Union([Type.Integer(), Type.String()]), with the constraints in CEL');
  }
  return true;
}

function literalValues(schema: TSchema): unknown[] | undefined {
  if ('const' in schema) return [schema.const];
  const variants = schema.anyOf as TSchema[] | undefined;
  if (variants && variants.every((v) => 'const' in v && Object.keys(v).every((k) => k === 'const' || k === 'type'))) return variants.map((v) => v.const);
  return undefined;
}

const TYPE_META = {
  apiVersion: {
    description: 'APIVersion defines the versioned schema of this representation of an object.',
    type: 'string',
  },
  kind: {
    description: 'Kind is a string value representing the REST resource this object represents.',
    type: 'string',
  },
  metadata: { type: 'object' },
} satisfies JsonObject;

interface PrinterColumn extends JsonObject {
  name: string;
  type: 'string' | 'integer' | 'boolean' | 'date' | 'number';
  jsonPath: string;
}

interface CrdInput {
  kind: string;
  plural: string;
  shortNames: string[];
  description: string;
  properties: JsonObject;
  columns: PrinterColumn[];
  statusSubresource: boolean;
}

function crd(input: CrdInput): JsonObject {
  const singular = input.kind.toLowerCase();
  const version: JsonObject = {
    name: VERSION,
    served: true,
    storage: true,
    schema: {
      openAPIV3Schema: {
        description: input.description,
        type: 'object',
        properties: { ...TYPE_META, ...input.properties },
      },
    },
    additionalPrinterColumns: input.columns,
  };
  if (input.statusSubresource) version.subresources = { status: {} };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${input.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'tunkeeper', 'app.kubernetes.io/component': 'crd' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: input.kind,
        listKind: `${input.kind}List`,
        plural: input.plural,
        singular,
        shortNames: input.shortNames,
        categories: ['tunkeeper'],
      },
      scope: 'Cluster',
      versions: [version],
    },
  };
}

const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export function tunDeviceCrd(): JsonObject {
  return crd({
    kind: TUN_DEVICE_KIND,
    plural: 'tundevices',
    shortNames: ['tund'],
    description: 'A TUN/TAP device that tunkeeper creates and keeps on the selected nodes, with its addresses and routes. Its status summarizes the selected nodes; per-node detail is in TunNodeState.',
    properties: {
      spec: toStructural(TunDeviceSpecSchema, 'spec'),
      status: toStructural(TunDeviceStatusSchema, 'status'),
    },
    columns: [
      { name: 'Ready', type: 'string', jsonPath: '.status.ready', description: 'Ready nodes / selected nodes' },
      { name: 'Status', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason', description: 'The reason of the Ready condition' },
      { name: 'Ifname', type: 'string', jsonPath: '.spec.ifname', description: 'Interface name (empty: the object name)' },
      { name: 'Mode', type: 'string', jsonPath: '.spec.mode' },
      { name: 'MTU', type: 'integer', jsonPath: '.spec.mtu' },
      { name: 'Up', type: 'boolean', jsonPath: '.spec.up', priority: 1 },
      { name: 'Addresses', type: 'string', jsonPath: '.spec.addresses', priority: 1 },
      AGE,
    ],
    // One writer (the status Lease holder) writes the summary, coalesced: N agents writing here
    // would wake the N agents watching TunDevices (O(N²)), so each node writes its own
    // TunNodeState instead. The subresource also makes metadata.generation move only with the
    // spec (so observedGeneration means "this spec"), and a status in an applied manifest is
    // ignored rather than stored.
    statusSubresource: true,
  });
}

export function tunNodeStateCrd(): JsonObject {
  return crd({
    kind: TUN_NODE_STATE_KIND,
    plural: 'tunnodestates',
    shortNames: ['tuns'],
    description: "What one node's tunkeeper agent did with the TunDevices selected for it. Named after the node; written only by its agent.",
    properties: { status: toStructural(TunNodeStateStatusSchema, 'status') },
    columns: [
      { name: 'Devices', type: 'integer', jsonPath: '.status.deviceCount' },
      { name: 'Ready', type: 'integer', jsonPath: '.status.readyCount' },
      { name: 'Last Sync', type: 'date', jsonPath: '.status.lastSyncTime' },
      { name: 'Ifnames', type: 'string', jsonPath: '.status.devices[*].ifname', priority: 1 },
      AGE,
    ],
    statusSubresource: true,
  });
}

/** The chart carries its own copy (Helm installs a chart's crds/ only from inside the chart). */
export const REGENERATE_COMMAND = 'npm run build:ts && bin/tunkeeper crds --output-dir crds && bin/tunkeeper crds --output-dir charts/tunkeeper/crds';

/** The files of crds/, by name, with their exact contents. */
export function crdFiles(): { name: string; text: string }[] {
  const header = [
    `# Generated from controller/schema by \`tunkeeper crds\` (${API_VERSION}); do not edit.`,
    `# Regenerate with: ${REGENERATE_COMMAND}`,
  ].join('\n');
  return [tunDeviceCrd(), tunNodeStateCrd()].map((doc) => ({
    name: `${(doc.metadata as JsonObject).name as string}.yaml`,
    text: `${header}\n${crdYaml(doc)}`,
  }));
}

const INVISIBLE = /[\p{Cc}\p{Cf}]/gu;

/**
 * The YAML of one CRD, with invisible characters (the ifname pattern lists bidi overrides and
 * zero-width characters literally, the one spelling both RE2 and ECMAScript read) written as
 * \uXXXX escapes, so the file shows what it holds instead of reordering its own line on screen.
 * The yaml library writes such characters as they are, so every scalar holding one is forced into
 * double quotes, where YAML reads \uXXXX back as the character.
 */
function crdYaml(doc: JsonObject): string {
  const yaml = new Document(doc);
  visit(yaml, {
    Scalar(_key, node) {
      if (typeof node.value === 'string' && node.value.match(INVISIBLE) !== null) node.type = 'QUOTE_DOUBLE';
    },
  });
  const text = yaml.toString({ lineWidth: 0, minContentWidth: 0 });
  return text.replace(INVISIBLE, (c) => (c === '\n' ? c : `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, '0')}`));
}

/** Every CRD as one multi-document YAML stream. */
export function renderCrds(): string {
  return crdFiles()
    .map((f) => f.text)
    .join('---\n');
}
