/**
 * The narrow interface apply creates and attaches to TUN/TAP devices through, so that apply runs
 * against the real addon in integration tests and against a stand-in in unit tests.
 */
import { Tun, type TunOpenOptions } from '../../tun-native/index.js';

/** What apply does with an open device: make it persistent, set owner and group, let go. */
export interface TunHandle {
  readonly name: string;
  readonly ifindex: number;
  setPersist(on: boolean): void;
  setOwner(uid: number): void;
  setGroup(gid: number): void;
  close(): Promise<void>;
}

export interface TunOpener {
  /** TUNSETIFF: creates the device, or attaches to an existing one of that name. */
  open(options: TunOpenOptions): Promise<TunHandle>;
}

export const nativeTunOpener: TunOpener = {
  open: (options) => Tun.open(options),
};
