/** Errors the TUN facade raises itself, shaped like the ones the native side throws. */
import { NativeError } from './errors.js';

const ERRNO = {
  EPERM: [1, 'Operation not permitted'],
  EBADF: [9, 'Bad file descriptor'],
  EINVAL: [22, 'Invalid argument'],
} as const;

/**
 * A NativeError for a condition the facade detects before any syscall, worded like the addon's:
 * "<what was being done>: <CODE> (<strerror>): <why>".
 */
export function nativeError(code: keyof typeof ERRNO, syscall: string, what: string, why: string): NativeError {
  const [errno, text] = ERRNO[code];
  const err = new NativeError(`${what}: ${code} (${text}): ${why}`);
  Object.defineProperties(err, {
    code: { value: code, enumerable: true },
    errno: { value: errno, enumerable: true },
    syscall: { value: syscall, enumerable: true },
  });
  return err;
}

/** An invalid option value: a TypeError (wrong type) or RangeError (wrong value), code ERR_INVALID_ARG like the addon's. */
export function invalidArg(message: string, kind: 'type' | 'range' = 'range'): TypeError | RangeError {
  const err = kind === 'type' ? new TypeError(message) : new RangeError(message);
  Object.defineProperty(err, 'code', { value: 'ERR_INVALID_ARG', enumerable: true });
  return err;
}
