/**
 * TunDevice.status: the fleet summary, written by one agent at a time (the holder of the status
 * Lease, controller/kube/fleet/fleet-status.ts) from every selected node's TunNodeState. It is what
 * GitOps tools read, so its shape follows the conventions they understand:
 * - kstatus (Flux): top-level observedGeneration, and the abnormal-true conditions Reconciling and
 *   Stalled, never both True;
 * - `kubectl wait --for=condition=Ready`: a Ready condition;
 * - Argo CD: the Lua health check shipped with the chart reads the same three.
 * A summary, not a list per node: at 5,000 nodes the object stays a few kilobytes (at most
 * MAX_FAILING_NODES named, the rest counted).
 */
import { Type, type Static } from '@sinclair/typebox';
import { CONDITION_LIST, conditionSchema } from './condition.js';

export const FLEET_CONDITION_TYPES = ['Ready', 'Reconciling', 'Stalled'] as const;
export type FleetConditionType = (typeof FLEET_CONDITION_TYPES)[number];

/** How many failing nodes the status names; the rest are counted in moreFailingNodes. */
export const MAX_FAILING_NODES = 10;
/** A failing node's message is cut to this many characters (the node's TunNodeState has it whole). */
export const MAX_NODE_MESSAGE = 256;

const count = (description: string) => Type.Integer({ minimum: 0, description });

export const FleetConditionSchema = conditionSchema(
  FLEET_CONDITION_TYPES,
  'Ready: every selected node reports the device Ready at the current generation. Reconciling: some selected node has not reported the current generation yet. Stalled: progress needs a person (a rollout halted by a node that rolled the generation back, a node refused the device, a conflict, an apply failing for long).',
);

export const NodeCountsSchema = Type.Object(
  {
    selected: count('Nodes whose labels match spec.nodeSelector.'),
    ready: count('Selected nodes that report the device Ready at the current generation.'),
    degraded: count('Selected nodes that report it not Ready at the current generation (an apply failing and retried, or a repair held).'),
    refused: count('Selected nodes that refused the current generation (invalid, or outside the agent\'s policy).'),
    conflicted: count('Selected nodes where another declaration or a foreign link claims the device.'),
    notReporting: count('Selected nodes whose agent has not reported the current generation (still working, or not running).'),
  },
  { additionalProperties: false },
);

export const FailingNodeSchema = Type.Object(
  {
    node: Type.String({ description: 'The Node name.' }),
    reason: Type.String({ description: 'Refused, Conflict, Degraded or NotReporting, or the node\'s own reason.' }),
    message: Type.String({ maxLength: MAX_NODE_MESSAGE + 16, description: 'What the node says, shortened; its TunNodeState has it whole.' }),
  },
  { additionalProperties: false },
);

/** How many reclaimed slots the status remembers (the nodes longest ago reclaimed drop off). */
export const MAX_RECLAIMED = 50;

export const RolloutSlotsSchema = Type.Object(
  {
    generation: Type.Integer({ minimum: 0, description: 'The generation being rolled out.' }),
    maxUnavailable: Type.Integer({ minimum: 1, description: 'spec.rollout.maxUnavailable resolved against the selected nodes.' }),
    granted: Type.Array(
      Type.Object(
        {
          node: Type.String({ description: 'A node allowed to move to the generation now.' }),
          since: Type.String({ format: 'date-time', description: 'When it was granted; a grant unanswered after probeTimeoutSeconds plus a grace is reclaimed.' }),
        },
        { additionalProperties: false },
      ),
      { description: 'The nodes holding a slot: moving until their probes pass or they roll back.' },
    ),
    done: count('Selected nodes that have answered the generation (probes passed, refused, or in conflict).'),
    waiting: count('Selected nodes waiting for a slot; they keep their last good generation in force.'),
    reclaimed: Type.Optional(
      Type.Array(
        Type.Object(
          {
            node: Type.String(),
            at: Type.String({ format: 'date-time', description: 'When its slot was last taken back.' }),
            times: Type.Integer({ minimum: 1, description: 'How many times; the pause before it is granted again doubles with each.' }),
          },
          { additionalProperties: false },
        ),
        { maxItems: MAX_RECLAIMED, description: 'Slots taken back from nodes that did not answer in time (their agent died or stopped reporting); they are granted again last, after a pause, and stay listed until they answer.' },
      ),
    ),
    haltedBy: Type.Optional(
      Type.Array(Type.String(), { maxItems: 10, description: 'Nodes that rolled the generation back: no further node starts it (the Stalled condition says why).' }),
    ),
  },
  { additionalProperties: false, description: 'The rollout of the current generation across nodes (spec.rollout.maxUnavailable below 100%), granted by the agent holding the status Lease.' },
);

export const TunDeviceStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'The metadata.generation this status describes.' })),
    ready: Type.Optional(Type.String({ description: 'Ready nodes / selected nodes, e.g. 12/12 (printer column READY).' })),
    conditions: Type.Optional(Type.Array(FleetConditionSchema, { maxItems: 8, ...CONDITION_LIST })),
    nodes: Type.Optional(NodeCountsSchema),
    failingNodes: Type.Optional(
      Type.Array(FailingNodeSchema, {
        maxItems: MAX_FAILING_NODES,
        description: `At most ${MAX_FAILING_NODES} nodes that are not Ready, the most serious first (refused, conflicted, degraded, then not reporting), by name within each.`,
      }),
    ),
    moreFailingNodes: Type.Optional(count('How many more nodes are not Ready than failingNodes names.')),
    rollout: Type.Optional(RolloutSlotsSchema),
  },
  { additionalProperties: false, description: 'The summary over every selected node, written by the agent holding the status Lease. Per-node detail is in TunNodeState.' },
);

export type FleetCondition = Static<typeof FleetConditionSchema>;
export type NodeCounts = Static<typeof NodeCountsSchema>;
export type FailingNode = Static<typeof FailingNodeSchema>;
export type RolloutSlots = Static<typeof RolloutSlotsSchema>;
export type TunDeviceFleetStatus = Static<typeof TunDeviceStatusSchema>;
