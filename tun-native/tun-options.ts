/**
 * Options of Tun.open() and their validation. Everything a person can get wrong is caught here
 * with a message that says what and why, before any syscall; what only the kernel knows (a name
 * taken by a device of another kind, missing privileges) comes back as a NativeError from it.
 */
import { invalidArg, nativeError } from './tun-errors.js';

export type TunMode = 'tun' | 'tap';

/** TUNSETOFFLOAD features: what the reader of this fd can take unsegmented / without checksum. */
export interface TunOffload {
  csum?: boolean;
  tso4?: boolean;
  tso6?: boolean;
  tsoEcn?: boolean;
  ufo?: boolean;
  uso4?: boolean;
  uso6?: boolean;
}

export interface TunOpenOptions {
  /** Requested name (may contain one %d); default: the kernel picks tun%d / tap%d. */
  name?: string;
  /** Default 'tun'. */
  mode?: TunMode;
  /** Set on open (SIOCSIFMTU in the device's namespace). */
  mtu?: number;
  /** IFF_MULTI_QUEUE. */
  multiQueue?: boolean;
  /** IFF_VNET_HDR: every packet read or written starts with a virtio_net_hdr. */
  vnetHdr?: boolean;
  /** !IFF_NO_PI: every packet read or written starts with the 4-byte struct tun_pi. */
  packetInfo?: boolean;
  /** TUNSETPERSIST. Left as it is when not given (a new device starts non-persistent). */
  persist?: boolean;
  /** TUNSETOWNER. */
  owner?: number;
  /** TUNSETGROUP. */
  group?: number;
  /**
   * TUNSETOFFLOAD; needs vnetHdr. 'auto': checksum and TCP segmentation offload (csum, tso4,
   * tso6), plus UDP segmentation offload (uso4, uso6) where the kernel has it (Linux 6.2+; probed
   * at open). What was set is `tun.offload`.
   */
  offload?: TunOffload | 'auto';
  /** Network namespace name (/run/netns/NAME) or path; the device is opened or created inside it. */
  netns?: string;
  /** Most packets per crossing into JS (default 64). */
  readBatch?: number;
  /** Most packets buffered native-side before new ones are dropped (default 4096). */
  queueLimit?: number;
  /**
   * What the reader does when its queue is full (JS is not keeping up). 'drop' (the default):
   * it keeps reading and drops, so the device's kernel queue never fills. 'backpressure': it
   * stops reading until JS gives room back, so packets wait in the kernel's queue: a local TCP
   * sender is then slowed by its small-queue limits instead of losing segments (what a forwarder
   * of TCP streams wants), and the device's txqueuelen decides what is dropped.
   */
  overflow?: 'drop' | 'backpressure';
}

// <linux/if_tun.h>
export const IFF_TUN = 0x0001;
export const IFF_TAP = 0x0002;
export const IFF_MULTI_QUEUE = 0x0100;
export const IFF_PERSIST = 0x0800;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;

export const TUN_F: Readonly<Record<keyof TunOffload, number>> = {
  csum: 0x01,
  tso4: 0x02,
  tso6: 0x04,
  tsoEcn: 0x08,
  ufo: 0x10,
  uso4: 0x20,
  uso6: 0x40,
};

export const DEFAULT_READ_BATCH = 64;
export const DEFAULT_QUEUE_LIMIT = 4096;
export const MAX_READ_BATCH = 4096;
export const MAX_QUEUE_LIMIT = 1 << 20;
/** The kernel's limits for tun and tap (MIN_MTU; MAX_MTU less the Ethernet header for tap). */
export const MTU_RANGE: Record<TunMode, readonly [number, number]> = { tun: [68, 65535], tap: [68, 65521] };
const MAX_ID = 0xfffffffe; // (uid_t)-1 means "no owner" to the kernel, so it is not an id

/** The request the addon's openTun() takes. */
export interface NativeOpenRequest {
  name: string;
  flags: number;
  persist?: boolean;
  owner?: number;
  group?: number;
  offload?: number;
  /** Bits of `offload` to drop when the kernel refuses them (EINVAL): the probe of 'auto'. */
  offloadOptional?: number;
  mtu?: number;
  netns?: string;
  readBatch: number;
  queueLimit: number;
  /** Facade-side (the addon's openTun ignores it): applied with setBackpressure() after the open. */
  overflow?: 'backpressure';
}

/**
 * Checks an interface name the way the kernel's dev_valid_name() does, plus the %d rule of
 * dev_alloc_name(): 1..15 bytes, not '.' or '..', no '/', ':' or whitespace, at most one '%' and
 * only as '%d'.
 */
export function validateIfName(name: unknown): string {
  if (typeof name !== 'string') throw invalidArg(`interface name must be a string, got ${typeof name}`, 'type');
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes === 0) throw invalidArg('interface name must not be empty (leave it out to let the kernel pick one)');
  if (bytes > 15) throw invalidArg(`interface name '${name}' is ${bytes} bytes long; Linux allows at most 15 (IFNAMSIZ - 1)`);
  if (name === '.' || name === '..') throw invalidArg(`interface name '${name}' is not allowed`);
  const bad = /[/:\s\0]/.exec(name);
  if (bad) {
    const what = bad[0] === '/' ? "'/'" : bad[0] === ':' ? "':'" : 'whitespace or NUL';
    throw invalidArg(`interface name '${name}' contains ${what}, which Linux does not allow in names`);
  }
  const percent = name.indexOf('%');
  if (percent >= 0 && (name[percent + 1] !== 'd' || name.indexOf('%', percent + 1) >= 0)) {
    throw invalidArg(`interface name '${name}' may contain '%' only once, as the '%d' the kernel replaces with a number`);
  }
  return name;
}

function optionalBool(opts: Record<string, unknown>, key: string): boolean | undefined {
  const v = opts[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw invalidArg(`option ${key} must be a boolean, got ${typeof v}`, 'type');
  return v;
}

function optionalInt(opts: Record<string, unknown>, key: string, min: number, max: number, why = ''): number | undefined {
  const v = opts[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number') throw invalidArg(`option ${key} must be a number, got ${typeof v}`, 'type');
  if (!Number.isInteger(v) || v < min || v > max) {
    throw invalidArg(`option ${key} must be an integer from ${min} to ${max}${why}, got ${v}`);
  }
  return v;
}

/** The offloads TUN_F_* bits stand for (every key present). */
export function offloadFromBits(bits: number): Required<TunOffload> {
  const out = {} as Required<TunOffload>;
  for (const [key, bit] of Object.entries(TUN_F)) out[key as keyof TunOffload] = (bits & bit) !== 0;
  return out;
}

/** Validates an id for TUNSETOWNER/TUNSETGROUP. */
export function validateId(what: 'owner' | 'group', v: unknown): number {
  const n = optionalInt({ [what]: v }, what, 0, MAX_ID);
  if (n === undefined) throw invalidArg(`${what} must be a number`, 'type');
  return n;
}

/**
 * TUN_F_* bits for an offload set, with the kernel's rules spelled out: everything but csum needs
 * csum (segmented packets need checksum offload), uso4 and uso6 come as a pair, and tsoEcn needs
 * tso4 or tso6. Violations are EINVAL NativeErrors, as the kernel would return.
 */
export function offloadBits(offload: TunOffload): number {
  if (typeof offload !== 'object' || offload === null) throw invalidArg('offload must be an object of booleans', 'type');
  let bits = 0;
  for (const [key, value] of Object.entries(offload)) {
    if (value === undefined) continue;
    if (!(key in TUN_F)) throw invalidArg(`unknown offload '${key}' (known: ${Object.keys(TUN_F).join(', ')})`, 'type');
    if (typeof value !== 'boolean') throw invalidArg(`offload.${key} must be a boolean`, 'type');
    if (value) bits |= TUN_F[key as keyof TunOffload];
  }
  if (bits & ~TUN_F.csum && !(bits & TUN_F.csum)) {
    throw nativeError('EINVAL', 'ioctl(TUNSETOFFLOAD)', 'set offloads', 'offloads other than csum need csum: true (segmentation offload implies checksum offload)');
  }
  if (!(bits & TUN_F.uso4) !== !(bits & TUN_F.uso6)) {
    throw nativeError('EINVAL', 'ioctl(TUNSETOFFLOAD)', 'set offloads', 'uso4 and uso6 go together (the kernel has one UDP segmentation feature for both)');
  }
  if (bits & TUN_F.tsoEcn && !(bits & (TUN_F.tso4 | TUN_F.tso6))) {
    throw nativeError('EINVAL', 'ioctl(TUNSETOFFLOAD)', 'set offloads', 'offload tsoEcn needs tso4 or tso6');
  }
  return bits;
}

export interface ResolvedOpen {
  request: NativeOpenRequest;
  mode: TunMode;
}

/** Validates Tun.open() options and turns them into the addon's request. */
export function resolveOpenOptions(opts: TunOpenOptions | undefined, netnsPath: (n: string) => string): ResolvedOpen {
  if (opts === undefined) opts = {};
  if (typeof opts !== 'object' || opts === null) throw invalidArg('Tun.open options must be an object', 'type');
  const o = opts as Record<string, unknown>;
  const mode = o.mode ?? 'tun';
  if (mode !== 'tun' && mode !== 'tap') throw invalidArg(`option mode must be 'tun' or 'tap', got ${String(mode)}`);
  const name = o.name === undefined ? '' : validateIfName(o.name);
  const multiQueue = optionalBool(o, 'multiQueue') ?? false;
  const vnetHdr = optionalBool(o, 'vnetHdr') ?? false;
  const packetInfo = optionalBool(o, 'packetInfo') ?? false;
  const persist = optionalBool(o, 'persist');
  const [mtuMin, mtuMax] = MTU_RANGE[mode];
  const mtu = optionalInt(o, 'mtu', mtuMin, mtuMax, ` for a ${mode} device`);
  const owner = optionalInt(o, 'owner', 0, MAX_ID);
  const group = optionalInt(o, 'group', 0, MAX_ID);
  const readBatch = optionalInt(o, 'readBatch', 1, MAX_READ_BATCH) ?? DEFAULT_READ_BATCH;
  const queueLimit = optionalInt(o, 'queueLimit', 1, MAX_QUEUE_LIMIT) ?? Math.max(DEFAULT_QUEUE_LIMIT, readBatch);
  if (queueLimit < readBatch) {
    throw invalidArg(`option queueLimit (${queueLimit}) must be at least readBatch (${readBatch}): a whole batch has to fit`);
  }
  let offload: number | undefined;
  let offloadOptional: number | undefined;
  if (o.offload === 'auto') {
    offload = TUN_F.csum | TUN_F.tso4 | TUN_F.tso6 | TUN_F.uso4 | TUN_F.uso6;
    offloadOptional = TUN_F.uso4 | TUN_F.uso6;
  } else if (o.offload !== undefined) {
    offload = offloadBits(o.offload as TunOffload);
  }
  if (offload !== undefined) {
    if (!vnetHdr) {
      throw nativeError(
        'EINVAL',
        'ioctl(TUNSETOFFLOAD)',
        'set offloads',
        'offload needs vnetHdr: true (without a virtio-net header the reader cannot tell offloaded packets from plain ones)',
      );
    }
  }
  if (o.overflow !== undefined && o.overflow !== 'drop' && o.overflow !== 'backpressure') {
    throw invalidArg(`option overflow must be 'drop' or 'backpressure', got ${String(o.overflow)}`);
  }
  let netns: string | undefined;
  if (o.netns !== undefined) {
    if (typeof o.netns !== 'string') throw invalidArg('option netns must be a namespace name or path', 'type');
    netns = netnsPath(o.netns);
  }
  for (const key of Object.keys(o)) {
    if (!KNOWN_OPTIONS.has(key)) throw invalidArg(`unknown Tun.open option '${key}'`, 'type');
  }
  const flags =
    (mode === 'tap' ? IFF_TAP : IFF_TUN) |
    (packetInfo ? 0 : IFF_NO_PI) |
    (vnetHdr ? IFF_VNET_HDR : 0) |
    (multiQueue ? IFF_MULTI_QUEUE : 0);
  const request: NativeOpenRequest = { name, flags, readBatch, queueLimit };
  if (persist !== undefined) request.persist = persist;
  if (owner !== undefined) request.owner = owner;
  if (group !== undefined) request.group = group;
  if (offload !== undefined) request.offload = offload;
  if (offloadOptional !== undefined) request.offloadOptional = offloadOptional;
  if (mtu !== undefined) request.mtu = mtu;
  if (netns !== undefined) request.netns = netns;
  if (o.overflow === 'backpressure') request.overflow = 'backpressure';
  return { request, mode };
}

const KNOWN_OPTIONS = new Set([
  'name',
  'mode',
  'mtu',
  'multiQueue',
  'vnetHdr',
  'packetInfo',
  'persist',
  'owner',
  'group',
  'offload',
  'netns',
  'readBatch',
  'queueLimit',
  'overflow',
]);
