/**
 * Where `tunkeeper run` gets its reconciler: controller/reconcile.ts (observe → plan → apply),
 * built on another branch. Loaded by a computed specifier so this branch compiles and tests
 * without it; once it is merged this becomes a plain import.
 */
import type { ReconcilerFactory } from '../agent.js';

export const createAgentReconciler: ReconcilerFactory = async (opts) => {
  const specifier = '../reconcile.js';
  let mod: { createReconciler?: ReconcilerFactory };
  try {
    mod = (await import(specifier)) as { createReconciler?: ReconcilerFactory };
  } catch (e) {
    throw new Error(`the reconciler (controller/reconcile.ts) is not part of this build: ${(e as Error).message}`);
  }
  if (typeof mod.createReconciler !== 'function') throw new Error('controller/reconcile.js does not export createReconciler');
  return mod.createReconciler(opts);
};
