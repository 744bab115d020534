/**
 * Does a TunDevice's `spec.nodeSelector` select this node? metav1.LabelSelector semantics:
 * matchLabels and every matchExpression must all hold (AND); an absent or empty selector selects
 * every node. The validator (schema/semantics.ts) has already checked the shape, so In/NotIn come
 * with values and Exists/DoesNotExist without.
 */
import type { LabelSelector } from '../schema/tundevice.js';

export type Labels = Readonly<Record<string, string>>;

export function selectsNode(selector: LabelSelector | undefined, labels: Labels): boolean {
  if (!selector) return true;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (!Object.hasOwn(labels, key) || labels[key] !== value) return false;
  }
  for (const expr of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, expr.key);
    const values = expr.values ?? [];
    switch (expr.operator) {
      case 'In':
        if (!has || !values.includes(labels[expr.key]!)) return false;
        break;
      case 'NotIn':
        // As in Kubernetes: a node without the label is "not in" any set.
        if (has && values.includes(labels[expr.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        // An operator this version does not know selects nothing rather than everything.
        return false;
    }
  }
  return true;
}
