/**
 * Enough of a check that a DesiredDevice read back from the node's disk (the cluster state, the
 * rollout memory) is not a damaged or foreign value before it is handed to plan. The files were
 * written by this program, so this guards against corruption, not against a hostile author.
 */
const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Undefined when `d` looks like a DesiredDevice; otherwise what is wrong, naming `where`. */
export function persistedDeviceProblem(d: unknown, where: string): string | undefined {
  if (!isRecord(d)) return `${where} is not an object`;
  for (const k of ['name', 'ifname', 'mode', 'origin']) if (typeof d[k] !== 'string') return `${where}.${k} is not a string`;
  if (d.mode !== 'tun' && d.mode !== 'tap') return `${where}.mode is neither tun nor tap`;
  if (!Number.isSafeInteger(d.mtu)) return `${where}.mtu is not an integer`;
  for (const k of ['up', 'multiQueue', 'vnetHdr', 'packetInfo']) if (typeof d[k] !== 'boolean') return `${where}.${k} is not a boolean`;
  if (!Array.isArray(d.addresses) || !Array.isArray(d.routes)) return `${where} has no address or route list`;
  if (d.probes !== undefined && !Array.isArray(d.probes)) return `${where}.probes is not a list`;
  return undefined;
}
