/**
 * TunNodeState (tunkeeper.io/v1alpha1, cluster-scoped): one per node, named after the node, written
 * only by that node's agent (through the status subresource). It reports, for every TunDevice
 * selected for the node, what happened to it there. Per-node objects rather than a list inside
 * TunDevice.status, so that N agents writing status do not wake N agents watching TunDevices.
 */
import { Type, type Static } from '@sinclair/typebox';
import { CONDITION_LIST, conditionSchema } from './condition.js';

export const TUN_NODE_STATE_KIND = 'TunNodeState';

export const CONDITION_TYPES = ['Ready', 'Degraded', 'Conflict', 'Refused'] as const;
export type TunConditionType = (typeof CONDITION_TYPES)[number];

/** metav1.Condition for the per-node conditions. */
export const ConditionSchema = conditionSchema(
  CONDITION_TYPES,
  "Ready: the device, its addresses and routes are as declared. Degraded: something could not be applied and is being retried. Conflict: another declaration or a foreign link claims the name. Refused: outside the agent's policy or invalid.",
);

export const ROLLOUT_PHASES = ['Settled', 'Waiting', 'Applying', 'Probing', 'RolledBack', 'ProbeFailed'] as const;
export type RolloutPhase = (typeof ROLLOUT_PHASES)[number];
export const MAX_PROBE_RESULTS = 16;

export const ProbeStatusSchema = Type.Object(
  {
    probe: Type.String({ maxLength: 64, description: 'Which probe: `route 198.51.100.7` or `ping 192.0.2.254`.' }),
    result: Type.Union([Type.Literal('Passed'), Type.Literal('Failed'), Type.Literal('Pending')], { description: 'The last result for the generation in `rollout.generation`.' }),
    message: Type.String({ maxLength: 1024, description: "The kernel's answer, e.g. `198.51.100.7 → dev eth1 via a foreign route 198.51.100.0/25 proto static`." }),
    attempts: Type.Optional(Type.Integer({ minimum: 0, description: 'How many times it was tried before this result.' })),
    lastProbeTime: Type.Optional(Type.String({ format: 'date-time', description: 'When it was last tried.' })),
  },
  { additionalProperties: false },
);

export const RolloutStatusSchema = Type.Object(
  {
    generation: Type.Optional(Type.Integer({ minimum: 0, description: 'The declared generation this is about.' })),
    phase: Type.Union(
      ROLLOUT_PHASES.map((p) => Type.Literal(p)),
      {
        description:
          'Settled: the declared generation passed its probes here. Waiting: for a rollout slot (the previous generation stays in force). Applying, Probing: moving to it. RolledBack: it failed a probe and the last good generation is back in force. ProbeFailed: it failed a probe and there was no earlier one to go back to.',
      },
    ),
    inForceGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'The generation in force on this node now (differs while waiting or after a rollback).' })),
    message: Type.Optional(Type.String({ maxLength: 2048 })),
  },
  { additionalProperties: false },
);

export const DeviceStatusSchema = Type.Object(
  {
    name: Type.String({ description: 'metadata.name of the TunDevice.' }),
    ifname: Type.String({ description: 'The interface name on this node.' }),
    ifindex: Type.Optional(Type.Integer({ minimum: 1, description: 'The kernel\'s interface index; absent while the device does not exist.' })),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'The TunDevice generation last reconciled on this node.' })),
    conditions: Type.Optional(
      Type.Array(ConditionSchema, { maxItems: 8, ...CONDITION_LIST }),
    ),
    lastError: Type.Optional(Type.String({ maxLength: 32768, description: 'The last error applying this device, if any.' })),
    rollout: Type.Optional(RolloutStatusSchema),
    probes: Type.Optional(Type.Array(ProbeStatusSchema, { maxItems: MAX_PROBE_RESULTS, description: 'The probes of the declared generation and their last results here.' })),
  },
  { additionalProperties: false },
);

export const TunNodeStateStatusSchema = Type.Object(
  {
    devices: Type.Optional(
      Type.Array(DeviceStatusSchema, {
        description: 'One entry per TunDevice selected for this node.',
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
      }),
    ),
    deviceCount: Type.Optional(Type.Integer({ minimum: 0, description: 'Number of entries in devices.' })),
    readyCount: Type.Optional(Type.Integer({ minimum: 0, description: 'Number of devices whose Ready condition is True.' })),
    lastSyncTime: Type.Optional(Type.String({ format: 'date-time', description: 'End of the last reconcile on this node.' })),
  },
  { additionalProperties: false },
);

export const TunNodeStateSchema = Type.Object(
  {
    apiVersion: Type.String(),
    kind: Type.String(),
    metadata: Type.Object({}),
    status: Type.Optional(TunNodeStateStatusSchema),
  },
  { description: "What one node's tunkeeper agent did with the TunDevices selected for it. Named after the node; written only by its agent." },
);

export type TunCondition = Static<typeof ConditionSchema>;
export type ProbeStatus = Static<typeof ProbeStatusSchema>;
export type RolloutStatus = Static<typeof RolloutStatusSchema>;
export type TunDeviceStatus = Static<typeof DeviceStatusSchema>;
export type TunNodeStateStatus = Static<typeof TunNodeStateStatusSchema>;
