/** Turning what went wrong into an ActionFailure: a stable code and the kernel's own words. */
import type { Action } from '../plan/actions.js';

/** One action the kernel refused, as the reconcile report and the status carry it. */
export interface ActionFailure {
  action: Action;
  /** TunDevice name the action belongs to ('' for actions on no declared device). */
  device: string;
  /** errno name ('EEXIST', 'EPERM', ...) or another stable code. */
  code: string;
  /** The kernel's extended-ack text where it gave one, else the error's message. */
  message: string;
}

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
