/** The reconcile loop: when to run a reconcile, coalesced, with retries and fail-static gating. */
export { ReconcileLoop, LOOP_DEFAULTS, UNDECLARED_RETRY_PREFIX, WAKE_REASONS, type WakeReason, type LoopOptions, type LoopObserver, type LoopStatus, type PassReport } from './loop.js';
export { backoffDelay, type BackoffOptions, type Random } from './backoff.js';
export { systemClock, type Clock, type TimerHandle } from './clock.js';
export { DesiredSources } from './desired-sources.js';
export { ManualClock } from './manual-clock.js';
