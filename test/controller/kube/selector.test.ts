/** spec.nodeSelector against a node's labels: metav1.LabelSelector semantics. */
import { describe, expect, it } from '@jest/globals';
import { selectsNode } from '../../../controller/kube/selector.js';

const node = { 'kubernetes.io/hostname': 'n1', 'tunkeeper.io/edge': 'true', zone: 'a' };

describe('selectsNode', () => {
  it('selects every node when the selector is absent or empty', () => {
    expect(selectsNode(undefined, node)).toBe(true);
    expect(selectsNode({}, node)).toBe(true);
    expect(selectsNode({ matchLabels: {}, matchExpressions: [] }, {})).toBe(true);
  });

  it('needs every matchLabels pair', () => {
    expect(selectsNode({ matchLabels: { 'tunkeeper.io/edge': 'true' } }, node)).toBe(true);
    expect(selectsNode({ matchLabels: { 'tunkeeper.io/edge': 'true', zone: 'b' } }, node)).toBe(false);
    expect(selectsNode({ matchLabels: { missing: '' } }, node)).toBe(false);
    // An empty value matches only a label that is present and empty.
    expect(selectsNode({ matchLabels: { missing: '' } }, { missing: '' })).toBe(true);
  });

  it('In and NotIn', () => {
    expect(selectsNode({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] }, node)).toBe(true);
    expect(selectsNode({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] }, node)).toBe(false);
    expect(selectsNode({ matchExpressions: [{ key: 'rack', operator: 'In', values: ['a'] }] }, node)).toBe(false);
    expect(selectsNode({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['b'] }] }, node)).toBe(true);
    expect(selectsNode({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, node)).toBe(false);
    // As in Kubernetes: a node without the label is "not in" any set.
    expect(selectsNode({ matchExpressions: [{ key: 'rack', operator: 'NotIn', values: ['a'] }] }, node)).toBe(true);
  });

  it('Exists and DoesNotExist', () => {
    expect(selectsNode({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, node)).toBe(true);
    expect(selectsNode({ matchExpressions: [{ key: 'rack', operator: 'Exists' }] }, node)).toBe(false);
    expect(selectsNode({ matchExpressions: [{ key: 'rack', operator: 'DoesNotExist' }] }, node)).toBe(true);
    expect(selectsNode({ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, node)).toBe(false);
  });

  it('ANDs matchLabels and every expression', () => {
    const selector = {
      matchLabels: { 'tunkeeper.io/edge': 'true' },
      matchExpressions: [
        { key: 'zone', operator: 'In' as const, values: ['a'] },
        { key: 'drain', operator: 'DoesNotExist' as const },
      ],
    };
    expect(selectsNode(selector, node)).toBe(true);
    expect(selectsNode(selector, { ...node, drain: 'yes' })).toBe(false);
    expect(selectsNode(selector, { ...node, zone: 'b' })).toBe(false);
    expect(selectsNode(selector, { zone: 'a' })).toBe(false);
  });

  it('selects nothing for an operator it does not know', () => {
    const selector = { matchExpressions: [{ key: 'zone', operator: 'Gt', values: ['1'] }] } as unknown as Parameters<typeof selectsNode>[0];
    expect(selectsNode(selector, node)).toBe(false);
  });

  it('does not read inherited properties as labels', () => {
    expect(selectsNode({ matchExpressions: [{ key: 'constructor', operator: 'Exists' }] }, {})).toBe(false);
    expect(selectsNode({ matchExpressions: [{ key: 'toString', operator: 'DoesNotExist' }] }, {})).toBe(true);
  });
});
