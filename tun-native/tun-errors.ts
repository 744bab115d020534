/** Errors the TUN facade raises itself, shaped like the ones the native side throws. */
import { NativeError } from './errors.js';

const ERRNO: Record<string, number> = { EPERM: 1, EBADF: 9, EBUSY: 16, EINVAL: 22, EMSGSIZE: 90 };

/** A NativeError built in TypeScript, for conditions the facade detects before any syscall. */
export function nativeError(code: keyof typeof ERRNO & string, syscall: string, message: string): NativeError {
  const err = new NativeError(message);
  Object.defineProperties(err, {
    code: { value: code, enumerable: true },
    errno: { value: ERRNO[code], enumerable: true },
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
