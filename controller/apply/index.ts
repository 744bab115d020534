/** apply: executes a plan against the kernel (see apply.ts). */
export { applyPlan, describeAction, type ActionOutcome, type ActionStatus, type ApplyOptions, type ApplyResult } from './apply.js';
export { ApplyError, failureOf, type ActionFailure } from './failure.js';
export { nativeTunOpener, type TunHandle, type TunOpener } from './tun-opener.js';
