/**
 * One TunDevice document (already parsed into plain values) to a DesiredDevice: kind and
 * apiVersion, then structure (the TypeBox schema), defaults (from the same schema), then the
 * kernel's rules (semantics.ts). Problems are field paths with sentences; the YAML layer turns the
 * paths into file:line:col.
 */
import type { DesiredDevice } from '../model/desired.js';
import type { FieldPath, FieldProblem } from './problem.js';
import { checkSemantics, type DeclarationContext } from './semantics.js';
import { structuralProblems, withDefaults } from './structural.js';
import { API_VERSION, GROUP, TUN_DEVICE_KIND, TunDeviceSchema, type LabelSelector, type TunDeviceManifest, type TunDeviceSpec } from './tundevice.js';

export type { DeclarationContext };

export interface ValidateOptions {
  /** `file` (default): the document is the whole declaration. `kubernetes`: an object from the
   * API server, whose metadata and status are the server's business; nodeSelector is allowed. */
  context?: DeclarationContext;
  /** Recorded in DesiredDevice.origin, e.g. `path:line:col` or `TunDevice/edge`. */
  origin?: string;
}

export interface TunDeviceValidation {
  /** Present when there are no problems. */
  device?: DesiredDevice;
  problems: FieldProblem[];
  /** metadata.name, when it is a string (also for invalid documents: used to report conflicts). */
  name?: string;
  /** The interface name as declared or defaulted, when it is a string. */
  ifname?: string;
  /** Where the interface name is written (spec.ifname, or metadata.name when defaulted). */
  ifnamePath: FieldPath;
  /** The node selector of a Kubernetes object, validated. */
  nodeSelector?: LabelSelector;
}

const isMapping = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

export function validateTunDevice(doc: unknown, options: ValidateOptions = {}): TunDeviceValidation {
  const context = options.context ?? 'file';
  const fail = (path: FieldPath, detail: string): TunDeviceValidation => ({ problems: [{ path, detail }], ifnamePath: ['metadata', 'name'] });
  if (!isMapping(doc)) {
    return fail([], `a declaration must be a TunDevice mapping (apiVersion, kind, metadata, spec), got ${Array.isArray(doc) ? 'a list' : JSON.stringify(doc)}`);
  }
  const kind = doc.kind;
  if (kind === undefined) return fail([], `has no kind: every document must be a Kubernetes-style object, "apiVersion: ${API_VERSION}" and "kind: ${TUN_DEVICE_KIND}"`);
  if (kind !== TUN_DEVICE_KIND) {
    return fail(['kind'], `${JSON.stringify(kind)} is not a kind tunkeeper reads: declarations are ${TUN_DEVICE_KIND} documents (apiVersion ${API_VERSION})`);
  }
  const apiVersion = doc.apiVersion;
  if (apiVersion !== API_VERSION) {
    if (apiVersion === undefined) return fail([], `has no apiVersion: write "apiVersion: ${API_VERSION}"`);
    const ours = typeof apiVersion === 'string' && apiVersion.startsWith(`${GROUP}/`);
    return fail(
      ['apiVersion'],
      `${JSON.stringify(apiVersion)} is not supported: ${ours ? 'this version of tunkeeper reads' : 'a TunDevice is'} ${API_VERSION}`,
    );
  }

  let value: Record<string, unknown> = doc;
  if (context === 'kubernetes') {
    // The API server owns metadata and has already applied the CRD schema; only the name matters.
    const metadata = isMapping(doc.metadata) ? { name: doc.metadata.name } : doc.metadata;
    value = { apiVersion, kind, metadata, ...(doc.spec !== undefined ? { spec: doc.spec } : {}) };
  }

  const structural = structuralProblems(TunDeviceSchema, value);
  const defaulted = withDefaults(TunDeviceSchema, value) as Partial<TunDeviceManifest>;
  const metadata: Record<string, unknown> = isMapping(defaulted.metadata) ? defaulted.metadata : {};
  const name = typeof metadata.name === 'string' ? metadata.name : undefined;
  const spec = (isMapping(defaulted.spec) ? defaulted.spec : {}) as TunDeviceSpec;
  const semantic = checkSemantics({
    name: metadata.name,
    spec,
    context,
    origin: options.origin ?? `${TUN_DEVICE_KIND}/${name ?? '?'}`,
    invalid: structural.invalid,
  });

  const problems = [...structural.problems, ...semantic.problems];
  const ifname = typeof spec.ifname === 'string' ? spec.ifname : name;
  const result: TunDeviceValidation = { problems, ifnamePath: semantic.ifnamePath };
  if (name !== undefined) result.name = name;
  if (ifname !== undefined) result.ifname = ifname;
  if (semantic.nodeSelector) result.nodeSelector = semantic.nodeSelector;
  if (problems.length === 0 && semantic.device) result.device = semantic.device;
  return result;
}
