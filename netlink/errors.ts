/**
 * The errors of the rtnetlink client. A failed request is always a NetlinkRequestError: the
 * errno the kernel answered (name and number), the kernel's own explanation when it gave one
 * (extended ack, e.g. "Nexthop has invalid gateway"), and which request it was, spelled the way an
 * operator would type it ("route add 198.51.100.0/24 table 100"), so a reconciler can attach the
 * error to the declaration that caused it without keeping its own bookkeeping.
 */
import { getSystemErrorMap } from 'node:util';

const ERRNO_MAP = getSystemErrorMap();

/** Symbolic name of a positive errno, e.g. 17 → 'EEXIST' ('E<n>' when the platform has none). */
export function errnoName(errno: number): string {
  return ERRNO_MAP.get(-errno)?.[0] ?? `E${errno}`;
}

/** The platform's description of a positive errno, e.g. 17 → 'file already exists'. */
export function errnoDescription(errno: number): string {
  return ERRNO_MAP.get(-errno)?.[1] ?? `errno ${errno}`;
}

export const EINTR = 4;
export const ENOENT = 2;
export const EIO = 5;
export const EINVAL = 22;
export const ENODEV = 19;
export const EBADF = 9;
export const ENOBUFS = 105;
export const ETIMEDOUT = 110;
export const EPROTO = 71;

export interface NetlinkRequestErrorInit {
  /** Positive errno. */
  errno: number;
  /** What was asked, e.g. 'route add', 'link dump'. */
  operation: string;
  /** Its key fields, e.g. '198.51.100.0/24 table 100' (may be empty). */
  target: string;
  /** The kernel's extended-ack text (NLMSGERR_ATTR_MSG). */
  extAck?: string;
  /** Offset of the offending attribute in the request (NLMSGERR_ATTR_OFFS). */
  extAckOffset?: number;
  /** Why the client itself failed the request when no kernel answer exists (lost ack, closed). */
  detail?: string;
  cause?: unknown;
}

/** A request the kernel (or the client on its behalf) refused or could not complete. */
export class NetlinkRequestError extends Error {
  override name = 'NetlinkRequestError';
  /** Symbolic errno, e.g. 'EEXIST'. */
  readonly code: string;
  /** Positive errno, e.g. 17. */
  readonly errno: number;
  /** The kernel's explanation, when it sent one. */
  readonly extAck: string | undefined;
  readonly extAckOffset: number | undefined;
  /** e.g. 'route add' */
  readonly operation: string;
  /** e.g. '198.51.100.0/24 table 100' */
  readonly target: string;

  constructor(init: NetlinkRequestErrorInit) {
    const request = init.target === '' ? init.operation : `${init.operation} ${init.target}`;
    let text = `${request}: ${errnoName(init.errno)} (${errnoDescription(init.errno)})`;
    if (init.extAck !== undefined && init.extAck !== '') text += `: ${init.extAck}`;
    if (init.detail !== undefined) text += `: ${init.detail}`;
    super(text, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = errnoName(init.errno);
    this.errno = init.errno;
    this.extAck = init.extAck;
    this.extAckOffset = init.extAckOffset;
    this.operation = init.operation;
    this.target = init.target;
  }

  /** The failing request as one phrase: operation and key fields. */
  get request(): string {
    return this.target === '' ? this.operation : `${this.operation} ${this.target}`;
  }
}

/**
 * A dump kept being interrupted (NLM_F_DUMP_INTR: the table changed while the kernel walked it)
 * through every retry. Its partial result is never returned: a reconciler that acted on it would
 * see objects missing that exist, and delete or re-add them.
 */
export class NetlinkDumpInterruptedError extends NetlinkRequestError {
  override name = 'NetlinkDumpInterruptedError';
  /** How many times the dump was run. */
  readonly attempts: number;

  constructor(operation: string, target: string, attempts: number) {
    super({ errno: EINTR, operation, target, detail: `dump interrupted by concurrent changes (NLM_F_DUMP_INTR) on all ${attempts} attempts` });
    this.attempts = attempts;
  }
}

export function isNetlinkRequestError(e: unknown, code?: string): e is NetlinkRequestError {
  return e instanceof NetlinkRequestError && (code === undefined || e.code === code);
}
