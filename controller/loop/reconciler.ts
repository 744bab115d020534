/** Where `tunkeeper run` gets its reconciler: controller/reconcile.ts (observe → plan → apply). */
import type { ReconcilerFactory } from '../agent.js';
import { createReconciler } from '../reconcile.js';

export const createAgentReconciler: ReconcilerFactory = (opts) => createReconciler(opts);
