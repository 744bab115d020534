/**
 * The error every failed syscall in tun-native surfaces as. The native side constructs this class
 * (registered at load time), so `instanceof NativeError` holds and `code` is always the errno's
 * symbolic name ('EPERM', 'EBUSY', 'ENOBUFS', ...).
 */
export class NativeError extends Error {
  /** Symbolic errno name, e.g. 'EPERM'. */
  declare readonly code: string;
  /** Numeric errno. */
  declare readonly errno: number;
  /** The syscall or ioctl that failed, e.g. 'ioctl(TUNSETIFF)'. */
  declare readonly syscall: string;

  constructor(message: string) {
    super(message);
    this.name = 'NativeError';
  }
}

export function isNativeError(e: unknown, code?: string): e is NativeError {
  return e instanceof NativeError && (code === undefined || e.code === code);
}
