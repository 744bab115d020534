/** Validation of Tun.open() options and the facade's pure parts; no privileges needed. */
import { describe, expect, it } from '@jest/globals';
import { NativeError, Tun, netnsPath, validateIfName } from '../../tun-native/index.js';
import {
  IFF_MULTI_QUEUE,
  IFF_NO_PI,
  IFF_TAP,
  IFF_TUN,
  IFF_VNET_HDR,
  offloadBits,
  resolveOpenOptions,
  type TunOpenOptions,
} from '../../tun-native/tun-options.js';
import { PacketBatch } from '../../tun-native/tun-batch.js';
import { PacketIterator } from '../../tun-native/tun-packets.js';

function resolve(opts?: TunOpenOptions) {
  return resolveOpenOptions(opts, netnsPath);
}

function thrown(fn: () => unknown): Error & { code?: string; errno?: number; syscall?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

describe('interface names', () => {
  it('accepts what the kernel accepts', () => {
    for (const name of ['tk0', 'a', 'tk%d', 'x'.repeat(15), 'tun-edge.1', 'ünï']) expect(validateIfName(name)).toBe(name);
  });

  it('rejects what the kernel rejects, saying why', () => {
    expect(thrown(() => validateIfName('')).message).toMatch(/must not be empty/);
    expect(thrown(() => validateIfName('x'.repeat(16))).message).toMatch(/16 bytes long; Linux allows at most 15/);
    // 8 characters, 16 bytes in UTF-8: the limit is in bytes.
    expect(thrown(() => validateIfName('ü'.repeat(8))).message).toMatch(/16 bytes/);
    expect(thrown(() => validateIfName('a/b')).message).toMatch(/'\/'/);
    expect(thrown(() => validateIfName('a:b')).message).toMatch(/':'/);
    expect(thrown(() => validateIfName('a b')).message).toMatch(/whitespace/);
    expect(thrown(() => validateIfName('a\tb')).message).toMatch(/whitespace/);
    expect(thrown(() => validateIfName('.')).message).toMatch(/not allowed/);
    expect(thrown(() => validateIfName('..')).message).toMatch(/not allowed/);
    expect(thrown(() => validateIfName('tk%s')).message).toMatch(/'%d'/);
    expect(thrown(() => validateIfName('tk%d%d')).message).toMatch(/only once/);
    const e = thrown(() => validateIfName(42 as unknown as string));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.code).toBe('ERR_INVALID_ARG');
  });
});

describe('Tun.open options', () => {
  it('defaults to a tun device without packet info, kernel-picked name, batch 64, queue 4096', () => {
    const { request, mode } = resolve();
    expect(mode).toBe('tun');
    expect(request).toEqual({ name: '', flags: IFF_TUN | IFF_NO_PI, readBatch: 64, queueLimit: 4096 });
  });

  it('maps every flag', () => {
    const { request } = resolve({
      name: 'tk0',
      mode: 'tap',
      multiQueue: true,
      vnetHdr: true,
      packetInfo: true,
      persist: true,
      owner: 1000,
      group: 1001,
      mtu: 9000,
      offload: { csum: true, tso4: true, tso6: true, tsoEcn: true, ufo: true, uso4: true, uso6: true },
      netns: 'blue',
      readBatch: 128,
      queueLimit: 1024,
    });
    expect(request).toEqual({
      name: 'tk0',
      flags: IFF_TAP | IFF_MULTI_QUEUE | IFF_VNET_HDR,
      persist: true,
      owner: 1000,
      group: 1001,
      mtu: 9000,
      offload: 0x7f,
      netns: '/run/netns/blue',
      readBatch: 128,
      queueLimit: 1024,
    });
  });

  it('keeps netns paths and persist: false', () => {
    const { request } = resolve({ netns: '/proc/1/ns/net', persist: false });
    expect(request.netns).toBe('/proc/1/ns/net');
    expect(request.persist).toBe(false);
  });

  it('checks the MTU against the kernel range of the mode', () => {
    expect(resolve({ mtu: 68 }).request.mtu).toBe(68);
    expect(resolve({ mtu: 65535 }).request.mtu).toBe(65535);
    expect(resolve({ mode: 'tap', mtu: 65521 }).request.mtu).toBe(65521);
    expect(thrown(() => resolve({ mtu: 67 })).message).toBe('option mtu must be an integer from 68 to 65535 for a tun device, got 67');
    expect(thrown(() => resolve({ mode: 'tap', mtu: 65522 })).message).toMatch(/from 68 to 65521 for a tap device/);
    expect(thrown(() => resolve({ mtu: 1500.5 }))).toBeInstanceOf(RangeError);
    expect(thrown(() => resolve({ mtu: '1500' as unknown as number }))).toBeInstanceOf(TypeError);
  });

  it('checks ids, batch and queue sizes', () => {
    expect(thrown(() => resolve({ owner: -1 })).message).toMatch(/owner must be an integer from 0 to 4294967294/);
    expect(thrown(() => resolve({ group: 2 ** 32 - 1 })).message).toMatch(/group/);
    expect(thrown(() => resolve({ readBatch: 0 })).message).toMatch(/readBatch/);
    expect(thrown(() => resolve({ queueLimit: 10, readBatch: 64 })).message).toMatch(/at least readBatch/);
    expect(resolve({ readBatch: 4096 }).request.queueLimit).toBe(4096);
    expect(resolve({ readBatch: 8, queueLimit: 8 }).request).toMatchObject({ readBatch: 8, queueLimit: 8 });
  });

  it('rejects unknown modes and options, and non-boolean flags', () => {
    expect(thrown(() => resolve({ mode: 'tan' as 'tun' })).message).toMatch(/mode must be 'tun' or 'tap'/);
    expect(thrown(() => resolve({ multiqueue: true } as TunOpenOptions)).message).toMatch(/unknown Tun.open option 'multiqueue'/);
    expect(thrown(() => resolve({ persist: 1 as unknown as boolean }))).toBeInstanceOf(TypeError);
    expect(thrown(() => resolve({ name: 'bad name' })).message).toMatch(/whitespace/);
  });

  it('rejects offloads without vnetHdr as EINVAL, like the kernel would', () => {
    const e = thrown(() => resolve({ offload: { csum: true } }));
    expect(e).toBeInstanceOf(NativeError);
    expect(e.code).toBe('EINVAL');
    expect(e.errno).toBe(22);
    expect(e.syscall).toBe('ioctl(TUNSETOFFLOAD)');
    expect(e.message).toMatch(/offload needs vnetHdr: true/);
  });
});

describe('offload bits', () => {
  it('encodes TUN_F_* bits', () => {
    expect(offloadBits({})).toBe(0);
    expect(offloadBits({ csum: true })).toBe(0x01);
    expect(offloadBits({ csum: true, tso4: true, tso6: false })).toBe(0x03);
    expect(offloadBits({ csum: true, uso4: true, uso6: true })).toBe(0x61);
  });

  it('spells out the kernel rules', () => {
    const noCsum = thrown(() => offloadBits({ tso4: true }));
    expect(noCsum).toBeInstanceOf(NativeError);
    expect(noCsum.code).toBe('EINVAL');
    expect(noCsum.message).toMatch(/need csum: true/);
    expect(thrown(() => offloadBits({ csum: true, tsoEcn: true })).message).toMatch(/tsoEcn needs tso4 or tso6/);
    expect(thrown(() => offloadBits({ csum: true, uso4: true })).message).toMatch(/uso4 and uso6 go together/);
    expect(thrown(() => offloadBits({ csum: true, gro: true } as never)).message).toMatch(/unknown offload 'gro'/);
  });
});

describe('batches', () => {
  // A ring as the reader fills it: packets 4-byte aligned, back to back, wrapping to offset 0
  // when the end is near (here after the second packet), garbage everywhere else.
  function lend(packets: Buffer[], at: number[], capacity = 8): PacketBatch {
    const ring = Buffer.alloc(64, 0xee);
    // offsets, lengths, then the batch's mode word (0: not segmented), as the addon lays them out.
    const slots = Buffer.alloc(4 * (2 * capacity + 1));
    const batch = new PacketBatch(ring, slots, capacity);
    packets.forEach((p, i) => {
      p.copy(ring, at[i]);
      batch.offsets[i] = at[i] as number;
      batch.lengths[i] = p.length;
    });
    batch.setCount(packets.length);
    return batch;
  }
  const input = [Buffer.from('45000014', 'hex'), Buffer.from('hello world'), Buffer.alloc(0), Buffer.from('wrapped!')];
  const at = [40, 44, 0, 0];

  it('copies a batch into real Buffers of their own, also across the wrap of the ring', () => {
    const batch = lend(input, at);
    const out = batch.copyAll();
    expect(out).toHaveLength(4);
    out.forEach((p, i) => {
      expect(Buffer.isBuffer(p)).toBe(true);
      expect(p).toBeInstanceOf(Buffer);
      expect(p.constructor).toBe(Buffer);
      expect(p).toStrictEqual(input[i]);
    });
    expect(out[1]?.subarray(0, 5).toString()).toBe('hello');
    expect(out[0]?.readUInt32BE(0)).toBe(0x45000014);
    // One allocation for the whole batch, not the ring's memory.
    expect(out[0]?.buffer).toBe(out[3]?.buffer);
    expect(out[0]?.buffer).not.toBe(batch.buffer.buffer);
    batch.buffer.fill(0);
    expect(out[3]?.toString()).toBe('wrapped!');
  });

  it("takes each batch's form from the native batch's mode word, not from the reader that lends it", () => {
    const batch = lend(input, at);
    expect(batch.segmented).toBe(false);
    const mode = new Uint32Array(batch.offsets.buffer, batch.offsets.byteOffset + 4 * 2 * 8, 1);
    mode[0] = 1;
    batch.setCount(2);
    expect(batch.segmented).toBe(true);
    expect(() => batch.vnetHeader(0)).toThrow(/segmented batch holds wire packets/);
    mode[0] = 0;
    batch.setCount(4);
    expect(batch.segmented).toBe(false);
  });

  it('lends packets in place, copies single ones, and refuses both once the batch is over', () => {
    const batch = lend(input, at);
    expect(batch.count).toBe(4);
    const view = batch.packet(1);
    const copy = batch.copy(1);
    expect(view.toString()).toBe('hello world');
    expect(view.buffer).toBe(batch.buffer.buffer);
    batch.buffer.fill(0x41, 44, 55);
    expect(view.toString()).toBe('A'.repeat(11)); // a view sees the ring reused
    expect(copy.toString()).toBe('hello world'); // a copy does not
    expect(() => batch.packet(4)).toThrow(/packet 4 is out of range \(the batch has 4\)/);
    batch.setCount(0);
    expect(() => batch.packet(0)).toThrow(/valid only during the callback/);
    expect(() => batch.copy(0)).toThrow(RangeError);
    expect(batch.copyAll()).toEqual([]);
  });
});

describe('the packet iterator', () => {
  function source() {
    const calls: string[] = [];
    return { calls, src: { pause: (p: boolean) => calls.push(p ? 'pause' : 'resume'), detach: () => calls.push('detach') } };
  }
  const pkt = (s: string) => Buffer.from(s);

  it('hands out packets in order, pausing at the high-water mark and resuming when drained', async () => {
    const { calls, src } = source();
    const it = new PacketIterator(src, 2);
    it.push([pkt('a'), pkt('b')]);
    expect(calls).toEqual(['pause']);
    expect((await it.next()).value?.toString()).toBe('a');
    expect((await it.next()).value?.toString()).toBe('b');
    expect(calls).toEqual(['pause', 'resume']);
    const pending = it.next();
    it.push([pkt('c')]);
    expect((await pending).value?.toString()).toBe('c');
  });

  it('serves what is buffered, then reports an error once, then is done', async () => {
    const { src } = source();
    const it = new PacketIterator(src, 64);
    it.push([pkt('x')]);
    const err = new Error('gone');
    it.end(err);
    expect((await it.next()).value?.toString()).toBe('x');
    await expect(it.next()).rejects.toBe(err);
    expect(await it.next()).toEqual({ value: undefined, done: true });
  });

  it('completes a waiting next() when ended without error', async () => {
    const { src } = source();
    const it = new PacketIterator(src, 64);
    const pending = it.next();
    it.end();
    expect(await pending).toEqual({ value: undefined, done: true });
  });

  it('queues next() calls made without waiting, and answers them in order', async () => {
    const { src } = source();
    const it = new PacketIterator(src, 64);
    const first = it.next();
    const second = it.next();
    const third = it.next();
    it.push([pkt('1'), pkt('2')]);
    it.end();
    expect((await first).value?.toString()).toBe('1');
    expect((await second).value?.toString()).toBe('2');
    expect(await third).toEqual({ value: undefined, done: true });
  });

  it('detaches when the consumer leaves the loop', async () => {
    const { calls, src } = source();
    const it = new PacketIterator(src, 64);
    it.push([pkt('1'), pkt('2'), pkt('3')]);
    for await (const p of it) {
      if (p.toString() === '2') break;
    }
    expect(calls).toEqual(['detach']);
    expect(await it.next()).toEqual({ value: undefined, done: true });
  });
});

describe('Tun', () => {
  it('rejects invalid options before any syscall', async () => {
    await expect(Tun.open({ name: 'a/b' })).rejects.toThrow(/'\/'/);
    await expect(Tun.open({ mtu: 1 })).rejects.toBeInstanceOf(RangeError);
  });
});
