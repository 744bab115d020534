/**
 * tunkeeper/controller: the reconciler as a library.
 *
 *   const snapshot = await loadDeclarations(['decl/']);
 *   const r = createReconciler({ netns: 'blue', policy: DEFAULT_POLICY });
 *   const result = await r.reconcile({ desired: snapshot.devices, prune: snapshot.complete });
 *   r.close();
 */
export * from './model/desired.js';
export * from './model/observed.js';
export type * from './reconcile/types.js';
export * as schema from './schema/index.js';
export { loadDeclarations, type FileSnapshot, type FileLoadOptions } from './sources/files-load.js';
export * from './plan/index.js';
export { observe, observedTables, ObservationError, type ObserveOptions } from './observe/observe.js';
export { toObservedAddress, toObservedLink, toObservedRoute } from './observe/convert.js';
export * from './apply/index.js';
export { createReconciler, deviceReports, repairsOf, type Reconciler, type ReconcilerOptions, type ReconcileReport } from './reconcile/reconcile.js';
