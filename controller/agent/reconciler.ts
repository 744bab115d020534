/**
 * Where `tunkeeper run` gets its reconciler: controller/reconcile/reconcile.ts (observe → plan → apply),
 * keeping the relevant foreign routes between passes while provably unchanged (a long-running
 * agent beside a big routing table must not dump it on every drift; observe/cache.ts).
 */
import type { ReconcilerFactory } from './agent.js';
import { createReconciler } from '../reconcile/reconcile.js';

export const createAgentReconciler: ReconcilerFactory = (opts) => createReconciler({ keepForeignRoutes: true, ...opts });
