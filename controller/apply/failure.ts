/** Turning what went wrong into an ActionFailure: a stable code and the kernel's own words. */
import type { Action } from '../plan/actions.js';
import type { ActionFailure } from '../reconcile-types.js';

/** An error apply raises itself (a precondition the kernel state no longer meets). */
export class ApplyError extends Error {
  override name = 'ApplyError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function failureOf(action: Action, e: unknown): ActionFailure {
  const err = e as { code?: unknown; extAck?: unknown; message?: unknown } | undefined;
  const code = typeof err?.code === 'string' && err.code !== '' ? err.code : 'EIO';
  // The kernel's extended ack says what exactly it refused ("Nexthop has invalid gateway").
  const message = typeof err?.extAck === 'string' && err.extAck !== '' ? err.extAck : typeof err?.message === 'string' ? err.message : String(e);
  return { action, device: action.device ?? '', code, message };
}
