/** A request that must fail: its NetlinkRequestError (errno, extended ack), for asserting on. */
import { expect } from '@jest/globals';
import { NetlinkRequestError } from '../../netlink/index.js';

export async function failure(p: Promise<unknown>): Promise<NetlinkRequestError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(NetlinkRequestError);
  return e as NetlinkRequestError;
}
