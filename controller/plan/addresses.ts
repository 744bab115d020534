/**
 * Phase 3, addresses: delete-address for the owned addresses a managed link should not have, and
 * add-address for the declared ones that are missing, go on a new or recreated link, or that the
 * kernel may have removed along with an earlier action (kernel-effects.ts).
 */
import type { DesiredAddress } from '../model/desired.js';
import { addrId, compareStrings, emit, later, type Managed, type PlanContext } from './context.js';
import { addressDeleteSideEffects } from './kernel-effects.js';

export function planAddresses(ctx: PlanContext): void {
  for (const m of ctx.managed) planAddressDeletes(ctx, m);
  for (const m of ctx.managed) planAddressAdds(ctx, m);
}

function planAddressDeletes(ctx: PlanContext, m: Managed): void {
  if (m.mode !== 'manage' || m.link === undefined) return;
  const link = m.link;
  const deletes = [...m.unwanted]
    // Secondaries first: deleting a primary may take its secondaries along.
    .sort((x, y) => Number(y.flags.secondary) - Number(x.flags.secondary) || x.family - y.family || compareStrings(x.address, y.address) || x.prefixLength - y.prefixLength);
  let lastIPv4: number | undefined;
  deletes.forEach((o, i) => {
    if (o.family === 4) lastIPv4 = i;
  });
  deletes.forEach((o, i) => {
    const sideEffects = later(ctx, () => addressDeleteSideEffects(ctx, link, o, i === lastIPv4));
    emit(
      ctx,
      {
        type: 'delete-address',
        device: m.d.name,
        ifname: link.ifname,
        ifindex: link.ifindex,
        address: { family: o.family, address: o.address, prefixLength: o.prefixLength, ...(o.peer !== undefined ? { peer: o.peer } : {}) },
        sideEffects,
        reason: o.peer !== undefined ? `has a peer address; ${m.d.name} declares a plain address` : `not declared for ${m.d.name}`,
      },
      link.ifname,
      `${String(i).padStart(6, '0')}`,
    );
  });
}

function planAddressAdds(ctx: PlanContext, m: Managed): void {
  const d = m.d;
  const existing = m.mode === 'manage' && m.link !== undefined ? m.link : undefined;
  const goesDown = existing !== undefined && existing.up && !d.up;
  for (const a of m.addresses) {
    const reason = existing === undefined ? (m.mode === 'create' ? 'declared; on the new device' : 'declared; on the recreated device') : addReason(ctx, existing.ifindex, a, goesDown);
    if (reason === undefined) continue;
    emit(
      ctx,
      {
        type: 'add-address',
        device: d.name,
        ifname: d.ifname,
        ...(existing !== undefined ? { ifindex: existing.ifindex } : {}),
        address: { family: a.family, address: a.address, prefixLength: a.prefixLength },
        protocol: ctx.policy.routeProtocol,
        noDad: a.family === 6,
        reason,
      },
      d.ifname,
      `${a.family}|${a.address}|${String(a.prefixLength).padStart(3, '0')}`,
    );
  }
}

/** Why a declared address is added to an existing link, or undefined when it is there to stay. */
function addReason(ctx: PlanContext, ifindex: number, a: DesiredAddress, goesDown: boolean): string | undefined {
  const present = (ctx.addrsByLink.get(ifindex) ?? []).find((o) => o.family === a.family && o.address === a.address && o.prefixLength === a.prefixLength && o.peer === undefined);
  if (present === undefined) return 'declared, missing';
  if (a.family === 6 && goesDown) return 're-asserted: the kernel removes IPv6 addresses from a link that goes down';
  if ((ctx.removed.get(ifindex) ?? []).includes(present)) return 're-asserted: removing its primary address may have removed it (promote_secondaries off)';
  return undefined;
}

/** Addresses (family|address) present once the plan has run. */
export function addressesAfterPlan(ctx: PlanContext): Set<string> {
  const after = new Set<string>();
  for (const m of ctx.managed) for (const a of m.addresses) after.add(addrId(a.family, a.address));
  for (const a of ctx.observed.addresses) {
    if (ctx.managedByIndex.has(a.ifindex) || ctx.vanishing.has(a.ifindex) || ctx.pruned.has(a.ifindex)) continue;
    after.add(addrId(a.family, a.address));
  }
  return after;
}
