/**
 * From what the cluster says (this node's labels, every TunDevice) to what this node should have:
 * a pure function, so the rules are tested without an API server.
 *
 * - Each TunDevice is validated with the one validator (validateTunDevice, Kubernetes context).
 *   An invalid object is never applied; it is reported as Refused with the validator's message. If
 *   an earlier version of it was valid, that version stays in force (fail static: a bad edit does
 *   not delete a working device); if none ever was, pruning stops, because a device from it might
 *   exist on the node and deleting it would read "invalid" as "delete".
 * - `spec.nodeSelector` against the node's labels decides whether the node gets the device.
 * - Two selected objects naming one interface: neither is applied, both are reported (the same
 *   rule and wording as for files, conflicts.ts), and pruning stops while it lasts.
 */
import type { DesiredDevice, DesiredRollout } from '../model/desired.js';
import { fieldMessage } from '../schema/problem.js';
import type { LabelSelector } from '../schema/tundevice.js';
import { validateTunDevice } from '../schema/validate.js';
import { resolveConflicts } from '../sources/conflicts.js';
import type { Declaration } from '../schema/yaml-declarations.js';
import { selectsNode, type Labels } from './selector.js';
import type { TunDeviceObject } from './types.js';

/** The last valid version of an object, kept in force while a newer one is invalid. */
export interface ValidVersion {
  device: DesiredDevice;
  generation?: number;
  selector?: LabelSelector;
}

/** One TunDevice selected for this node, as status reports it. */
export interface SelectedObject {
  name: string;
  ifname?: string;
  /** metadata.generation of the version in force (the invalid one when none is). */
  generation?: number;
  /** Why the current version is not applied (validation problems, joined). */
  invalid?: string;
  /**
   * metadata.generation of the invalid version itself, when an older valid one stays in force: the
   * Refused condition is about this one (so the fleet summary counts the node as having answered
   * the current generation), the rest of the status about the version in force.
   */
  refusedGeneration?: number;
  /** Why neither this nor another declaration of its name is applied. */
  conflict?: string;
}

export interface Selection {
  /** Applicable, unconflicted devices, sorted by interface name. */
  devices: DesiredDevice[];
  /** Every selected object, by name. */
  objects: SelectedObject[];
  /** False when pruning would be unsafe: an object never valid, or a contested name. */
  complete: boolean;
  /** Why it is not complete, in words. */
  incompleteBecause: string[];
  /** The valid versions to remember for the next call. */
  valid: Map<string, ValidVersion>;
  generations: Record<string, number>;
}

export function selectForNode(objects: readonly TunDeviceObject[], labels: Labels, previous: ReadonlyMap<string, ValidVersion>): Selection {
  const valid = new Map<string, ValidVersion>();
  const selected: SelectedObject[] = [];
  const declarations: Declaration[] = [];
  const incompleteBecause: string[] = [];

  for (const obj of [...objects].sort((a, b) => cmp(a.metadata?.name ?? '', b.metadata?.name ?? ''))) {
    const name = obj.metadata?.name ?? '';
    const generation = obj.metadata?.generation;
    const origin = `TunDevice/${name}`;
    const v = validateTunDevice(obj, { context: 'kubernetes', origin });
    if (v.device) {
      const version: ValidVersion = { device: v.device, ...(generation !== undefined ? { generation } : {}), ...(v.nodeSelector ? { selector: v.nodeSelector } : {}) };
      valid.set(name, version);
      if (!selectsNode(v.nodeSelector, labels)) continue;
      selected.push({ name, ifname: v.device.ifname, ...(generation !== undefined ? { generation } : {}) });
      declarations.push(declarationOf(v.device, v.ifnamePath.join('.')));
      continue;
    }
    const kept = previous.get(name);
    const selector = v.nodeSelector ?? rawSelector(obj) ?? kept?.selector;
    if (!safeSelects(selector, labels)) {
      if (kept) valid.set(name, kept);
      continue;
    }
    const message = v.problems.map(fieldMessage).join('; ');
    const entry: SelectedObject = { name, invalid: message, ...(generation !== undefined ? { generation } : {}) };
    if (v.ifname !== undefined) entry.ifname = v.ifname;
    if (kept) {
      valid.set(name, kept);
      entry.invalid = `${message}; the last valid version (generation ${kept.generation ?? '?'}) stays in force until this is fixed`;
      if (kept.generation !== undefined) entry.generation = kept.generation;
      if (generation !== undefined) entry.refusedGeneration = generation;
      entry.ifname = kept.device.ifname;
      declarations.push(declarationOf(kept.device, 'spec.ifname'));
    } else {
      incompleteBecause.push(`TunDevice ${name} is invalid and has no valid version in force`);
    }
    selected.push(entry);
  }

  const resolved = resolveConflicts(declarations);
  if (resolved.contested.length > 0) incompleteBecause.push(`names declared by more than one TunDevice: ${resolved.contested.join(', ')}`);
  const contested = new Set(resolved.contested);
  for (const s of selected) {
    if (s.ifname === undefined || (!contested.has(s.ifname) && !contested.has(s.name))) continue;
    const own = resolved.problems.filter((p) => p.file === `TunDevice/${s.name}`).map((p) => p.message);
    if (own.length > 0) s.conflict = own.join('; ');
  }
  const generations: Record<string, number> = {};
  for (const d of resolved.devices) {
    const g = valid.get(d.name)?.generation;
    if (g !== undefined) generations[d.name] = g;
  }
  return { devices: resolved.devices, objects: selected, complete: incompleteBecause.length === 0, incompleteBecause, valid, generations };
}

function declarationOf(device: DesiredDevice, ifnamePath: string): Declaration {
  const file = device.origin;
  return { device, nameAt: { file, path: 'metadata.name' }, ifnameAt: { file, path: ifnamePath === '' ? 'spec.ifname' : ifnamePath } };
}

function rawSelector(obj: TunDeviceObject): LabelSelector | undefined {
  const spec = obj.spec as { nodeSelector?: unknown } | undefined;
  const s = spec?.nodeSelector;
  return s !== null && typeof s === 'object' && !Array.isArray(s) ? (s as LabelSelector) : undefined;
}

/**
 * What the fleet summary needs from an object's spec, read the way the agents read it: the
 * selector its nodes are chosen by (the validated one, else what the raw spec says: an invalid
 * object still reaches the nodes it names, which then report it refused), and its rollout when the
 * spec is valid (an invalid one is rolled out nowhere: every node refuses it).
 */
export function fleetSpecOf(obj: TunDeviceObject): { selector: LabelSelector | undefined; rollout?: DesiredRollout } {
  const v = validateTunDevice(obj, { context: 'kubernetes', origin: `TunDevice/${obj.metadata?.name ?? ''}` });
  const selector = v.nodeSelector ?? rawSelector(obj);
  return v.device?.rollout ? { selector, rollout: v.device.rollout } : { selector };
}

/** An unreadable selector counts as selecting the node: its refusal is then reported here. */
export function safeSelects(selector: LabelSelector | undefined, labels: Labels): boolean {
  try {
    return selectsNode(selector, labels);
  } catch {
    return true;
  }
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
