/**
 * The codec's two error classes. Decoding bytes that came from a socket can fail in exactly one
 * way, NetlinkDecodeError, so callers catch one class and never see a RangeError from a Buffer
 * read. Encoding fails with NetlinkEncodeError when an object holds a value its wire field
 * cannot carry (an IP address that does not parse, a u8 of 300): a bug in the caller's data,
 * reported with the field's path so the reconciler can name the offending declaration.
 */

export class NetlinkDecodeError extends Error {
  override readonly name = 'NetlinkDecodeError';
  /**
   * @param reason what is wrong, without the offset
   * @param offset byte offset into the buffer handed to the decoder where the fault was found
   */
  constructor(
    readonly reason: string,
    readonly offset: number,
  ) {
    super(`netlink decode error at byte ${offset}: ${reason}`);
  }
}

export function isNetlinkDecodeError(e: unknown): e is NetlinkDecodeError {
  return e instanceof NetlinkDecodeError;
}

export class NetlinkEncodeError extends Error {
  override readonly name = 'NetlinkEncodeError';
  /**
   * @param field dotted path of the offending field, e.g. `route.metrics.mtu`
   * @param reason what is wrong with its value
   */
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`cannot encode ${field}: ${reason}`);
  }
}
