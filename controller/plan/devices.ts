/**
 * Phase 4, devices: create-device and recreate-device for the claimed links, set-link (mtu,
 * txqlen, MAC, up/down) and set-tun-options (owner, group, persist) where they differ from the
 * declaration, and delete-device for the owned links no declaration wants (claims.ts `pruned`).
 */
import type { DesiredDevice } from '../model/desired.js';
import { ownerMarker } from '../model/desired.js';
import type { ObservedLink } from '../model/observed.js';
import type { CreateDeviceSpec, FieldChange, LinkSettings } from './actions.js';
import { addressesAfterPlan } from './addresses.js';
import { addrId, emit, IPV6_MIN_MTU, later, type Managed, type PlanContext } from './context.js';
import { describeChange } from './describe.js';
import { linkDeleteSideEffects, linkSettingsSideEffects, removedFromHost } from './kernel-effects.js';

export function planDevices(ctx: PlanContext): void {
  for (const m of ctx.managed) {
    const d = m.d;
    if (m.mode === 'create') {
      emit(ctx, { type: 'create-device', device: d.name, ifname: d.ifname, spec: createSpec(d), reason: `declared by ${d.origin}; no link named ${d.ifname} exists` }, d.ifname);
    } else if (m.mode === 'recreate' && m.link !== undefined) {
      planRecreate(ctx, m, m.link);
    }
    if (m.mode === 'manage' && m.link !== undefined) planExistingLink(ctx, m, m.link);
    else planFreshLink(ctx, m);
  }
  planPrune(ctx);
}

function createSpec(d: DesiredDevice): CreateDeviceSpec {
  const spec: CreateDeviceSpec = {
    mode: d.mode,
    multiQueue: d.multiQueue,
    vnetHdr: d.vnetHdr,
    packetInfo: d.packetInfo,
    alias: ownerMarker(d.name),
    persist: true,
  };
  if (d.owner !== undefined) spec.owner = d.owner;
  if (d.group !== undefined) spec.group = d.group;
  return spec;
}

function planRecreate(ctx: PlanContext, m: Managed, link: ObservedLink): void {
  const d = m.d;
  const reason =
    m.previousOwner !== undefined
      ? `${d.ifname} holds the device of TunDevice "${m.previousOwner}", which no declaration wants any more; it is deleted and created for ${d.name}`
      : `${m.recreateChanges.map((c) => `${c.field} is fixed at creation (observed ${String(c.from)}, declared ${String(c.to)})`).join('; ')}: the device is deleted and created again`;
  emit(
    ctx,
    {
      type: 'recreate-device',
      device: d.name,
      ifname: d.ifname,
      ifindex: link.ifindex,
      spec: createSpec(d),
      changes: m.recreateChanges,
      ...(m.previousOwner !== undefined ? { previousOwner: m.previousOwner } : {}),
      sideEffects: later(ctx, () => linkDeleteSideEffects(ctx, link, (address) => removedFromHost(ctx, 4, address))),
      reason,
    },
    d.ifname,
  );
}

function planFreshLink(ctx: PlanContext, m: Managed): void {
  const d = m.d;
  const set: LinkSettings = { mtu: d.mtu };
  const changes: FieldChange[] = [{ field: 'mtu', to: d.mtu }];
  if (d.txQueueLength !== undefined) {
    set.txQueueLength = d.txQueueLength;
    changes.push({ field: 'txQueueLength', to: d.txQueueLength });
  }
  if (d.mode === 'tap' && d.macAddress !== undefined) {
    set.macAddress = d.macAddress;
    changes.push({ field: 'macAddress', to: d.macAddress });
  }
  if (d.up) {
    set.up = true;
    changes.push({ field: 'up', to: true });
  }
  emit(ctx, { type: 'set-link', device: d.name, ifname: d.ifname, set, changes, sideEffects: [], reason: 'settings of the new device' }, d.ifname);
}

function planExistingLink(ctx: PlanContext, m: Managed, link: ObservedLink): void {
  const d = m.d;
  const set: LinkSettings = {};
  const changes: FieldChange[] = [];
  const losesIPv6 = d.mtu < IPV6_MIN_MTU && link.mtu >= IPV6_MIN_MTU;
  const goesDown = link.up && !d.up;
  if (d.mtu !== link.mtu) {
    set.mtu = d.mtu;
    changes.push({ field: 'mtu', from: link.mtu, to: d.mtu });
  }
  if (d.txQueueLength !== undefined && d.txQueueLength !== link.txQueueLength) {
    set.txQueueLength = d.txQueueLength;
    changes.push({ field: 'txQueueLength', from: link.txQueueLength, to: d.txQueueLength });
  }
  if (d.mode === 'tap' && d.macAddress !== undefined && d.macAddress !== link.macAddress) {
    set.macAddress = d.macAddress;
    changes.push({ field: 'macAddress', from: link.macAddress ?? null, to: d.macAddress });
  }
  if (d.up !== link.up) {
    set.up = d.up;
    changes.push({ field: 'up', from: link.up, to: d.up });
  }
  const sideEffects = later(ctx, () => linkSettingsSideEffects(ctx, link, goesDown, losesIPv6));
  if (changes.length > 0) {
    emit(
      ctx,
      {
        type: 'set-link',
        device: d.name,
        ifname: d.ifname,
        ifindex: link.ifindex,
        set,
        changes,
        sideEffects,
        reason: `differs from the declaration: ${changes.map(describeChange).join(', ')}`,
      },
      d.ifname,
    );
  }
  planTunOptions(ctx, d, link);
}

function planTunOptions(ctx: PlanContext, d: DesiredDevice, link: ObservedLink): void {
  const tun = link.tun;
  if (tun === undefined) return; // kernels before 4.15 do not report owner, group or persist
  const tunSet: { owner?: number | null; group?: number | null; persist?: true } = {};
  const tunChanges: FieldChange[] = [];
  const wantOwner = d.owner ?? null;
  if (wantOwner !== (tun.owner ?? null)) {
    tunSet.owner = wantOwner;
    tunChanges.push({ field: 'owner', from: tun.owner ?? null, to: wantOwner });
  }
  const wantGroup = d.group ?? null;
  if (wantGroup !== (tun.group ?? null)) {
    tunSet.group = wantGroup;
    tunChanges.push({ field: 'group', from: tun.group ?? null, to: wantGroup });
  }
  if (!tun.persist) {
    tunSet.persist = true;
    tunChanges.push({ field: 'persist', from: false, to: true });
  }
  if (tunChanges.length === 0) return;
  emit(
    ctx,
    {
      type: 'set-tun-options',
      device: d.name,
      ifname: d.ifname,
      ifindex: link.ifindex,
      flags: { mode: tun.mode, multiQueue: tun.multiQueue, vnetHdr: tun.vnetHdr, packetInfo: tun.packetInfo },
      set: tunSet,
      changes: tunChanges,
      reason: `differs from the declaration: ${tunChanges.map(describeChange).join(', ')}`,
    },
    d.ifname,
  );
}

/** delete-device for the stale owned links; their addresses and routes go with them. */
function planPrune(ctx: PlanContext): void {
  const after = addressesAfterPlan(ctx);
  for (const [ifindex, owner] of ctx.pruned) {
    const link = ctx.linkByIndex.get(ifindex) as ObservedLink;
    const declaredElsewhere = ctx.devices.find((d) => d.name === owner);
    emit(
      ctx,
      {
        type: 'delete-device',
        device: owner,
        ifname: link.ifname,
        ifindex,
        sideEffects: later(ctx, () => linkDeleteSideEffects(ctx, link, (address) => !after.has(addrId(4, address)))),
        reason:
          declaredElsewhere !== undefined
            ? `carries the marker of TunDevice "${owner}", which now declares ifname ${declaredElsewhere.ifname}`
            : `carries the marker of TunDevice "${owner}", which is no longer declared`,
      },
      link.ifname,
    );
  }
}
