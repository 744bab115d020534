/**
 * metav1.Condition, with the same constraints the API machinery puts on it, for a given set of
 * condition types. One definition for TunNodeState (per node) and TunDevice (the fleet summary),
 * so both CRDs and every reader agree on the shape.
 */
import { FormatRegistry, Type } from '@sinclair/typebox';

/** RFC 3339 date-time, as metav1.Time and MicroTime serialize (TypeBox checks no format by itself). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => RFC3339.test(v) && !Number.isNaN(Date.parse(v)));

export function conditionSchema<T extends string>(types: readonly T[], typeDescription: string) {
  return Type.Object(
    {
      type: Type.Union(
        types.map((t) => Type.Literal(t)),
        { description: typeDescription },
      ),
      status: Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')]),
      observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'The TunDevice generation this condition was set for.' })),
      lastTransitionTime: Type.String({ format: 'date-time', description: 'When the condition last changed status.' }),
      reason: Type.String({
        minLength: 1,
        maxLength: 1024,
        pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
        description: 'A CamelCase word for programs, e.g. Converged, PolicyRefused, NameTaken.',
      }),
      message: Type.String({ maxLength: 32768, description: 'What happened, for people.' }),
    },
    { additionalProperties: false },
  );
}

/** The list of conditions: a map keyed by type, as kubectl and server-side apply expect. */
export const CONDITION_LIST = { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] } as const;
