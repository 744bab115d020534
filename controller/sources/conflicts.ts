/**
 * Two declarations of one device: the same metadata.name, or the same interface name. Neither is
 * applied, both are reported (each pointing at the other), and the names are listed as contested
 * so that a consumer leaves the device alone: a second file must not be able to take over, or
 * delete, a device someone else declared.
 */
import type { DesiredDevice } from '../model/desired.js';
import { compareProblems, formatProblem, type Problem } from '../schema/problem.js';
import type { Declaration, FieldLocation } from '../schema/yaml-declarations.js';

export interface ConflictResolution {
  /** Declarations without a rival, sorted by interface name. */
  devices: DesiredDevice[];
  problems: Problem[];
  /** Interface names and object names that are declared more than once. */
  contested: string[];
}

const where = (l: FieldLocation) => formatProblem({ ...l, message: '' }).replace(/: $/, '');

export function resolveConflicts(declarations: readonly Declaration[]): ConflictResolution {
  const byName = new Map<string, Declaration[]>();
  const byIfname = new Map<string, Declaration[]>();
  const add = (map: Map<string, Declaration[]>, key: string, d: Declaration) => {
    const list = map.get(key);
    if (list) list.push(d);
    else map.set(key, [d]);
  };
  for (const d of declarations) {
    add(byName, d.device.name, d);
    add(byIfname, d.device.ifname, d);
  }

  const excluded = new Set<Declaration>();
  const contested = new Set<string>();
  const problems: Problem[] = [];
  const reported = new Set<string>();
  const report = (at: FieldLocation, message: string) => {
    const key = `${where(at)}\n${message}`;
    if (reported.has(key)) return;
    reported.add(key);
    problems.push({ ...(at.file !== undefined ? { file: at.file } : {}), ...(at.line !== undefined ? { line: at.line, col: at.col } : {}), path: at.path, message });
  };
  const clash = (
    groups: Map<string, Declaration[]>,
    what: (d: Declaration) => string,
    at: (d: Declaration) => FieldLocation,
    alreadySaid: (d: Declaration) => boolean,
  ) => {
    for (const [key, group] of groups) {
      if (group.length < 2) continue;
      contested.add(key);
      for (const d of group) {
        excluded.add(d);
        contested.add(d.device.ifname);
        if (alreadySaid(d)) continue;
        const others = group.filter((o) => o !== d).map((o) => where(at(o)));
        report(at(d), `${at(d).path}: ${what(d)} is also declared at ${others.join(', ')}; neither declaration is applied until only one remains`);
      }
    }
  };
  clash(byName, (d) => `TunDevice "${d.device.name}"`, (d) => d.nameAt, () => false);
  // When the interface name is the defaulted metadata.name, the name clash already points there.
  clash(
    byIfname,
    (d) => `interface name "${d.device.ifname}"`,
    (d) => d.ifnameAt,
    (d) => where(d.ifnameAt) === where(d.nameAt) && (byName.get(d.device.name)?.length ?? 0) > 1,
  );

  const devices = declarations
    .filter((d) => !excluded.has(d))
    .map((d) => d.device)
    .sort((a, b) => (a.ifname < b.ifname ? -1 : a.ifname > b.ifname ? 1 : 0));
  return { devices, problems: problems.sort(compareProblems), contested: [...contested].sort() };
}
