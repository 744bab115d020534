/**
 * Creating and attaching TUN/TAP devices inside a fresh namespace, every flag checked against the
 * kernel's own view (`ip -d link show`, linkinfo.info_data).
 */
import { expect, it } from '@jest/globals';
import { NativeError, Tun, isNativeError } from '../../tun-native/index.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { linkDetails, runNode, tunModuleUrl } from '../helpers/tun-netns.js';

async function infoData(ns: Netns, name: string): Promise<Record<string, unknown>> {
  const link = await linkDetails(ns, name);
  if (!link) throw new Error(`${name} does not exist in ${ns.name}`);
  expect(link.linkinfo?.info_kind).toBe('tun');
  return link.linkinfo?.info_data ?? {};
}

async function expectNativeError(p: Promise<unknown>, code: string): Promise<NativeError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(NativeError);
  expect(isNativeError(caught, code)).toBe(true);
  return caught as NativeError;
}

describeKernel('Tun.open: creating devices', () => {
  it('creates a tun device with defaults and reports the kernel name and ifindex', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tk0', netns: ns.name });
      try {
        expect(tun.name).toBe('tk0');
        expect(tun.mode).toBe('tun');
        expect([tun.multiQueue, tun.vnetHdr, tun.packetInfo]).toEqual([false, false, false]);
        const link = await linkDetails(ns, 'tk0');
        expect(link?.ifindex).toBe(tun.ifindex);
        expect(link?.mtu).toBe(1500);
        expect(link?.linkinfo?.info_data).toEqual({ type: 'tun', pi: false, vnet_hdr: false, multi_queue: false, persist: false });
      } finally {
        await tun.close();
      }
      // Not persistent: gone with its only fd.
      expect(await linkDetails(ns, 'tk0')).toBeUndefined();
    }));

  it('creates tun and tap devices with every flag', () =>
    withNetns(async (ns) => {
      for (const mode of ['tun', 'tap'] as const) {
        const name = `tkf${mode}`;
        const tun = await Tun.open({
          name,
          mode,
          netns: ns.name,
          packetInfo: true,
          multiQueue: true,
          vnetHdr: true,
          persist: true,
          owner: 4242,
          group: 4343,
          mtu: 1280,
          offload: { csum: true, tso4: true, tso6: true },
        });
        try {
          expect([tun.mode, tun.multiQueue, tun.vnetHdr, tun.packetInfo]).toEqual([mode, true, true, true]);
          const data = await infoData(ns, name);
          expect(data).toMatchObject({ type: mode, pi: true, vnet_hdr: true, multi_queue: true, persist: true, user: 4242, group: 4343 });
          expect((await linkDetails(ns, name))?.mtu).toBe(1280);
        } finally {
          tun.setPersist(false);
          await tun.close();
        }
        expect(await linkDetails(ns, name)).toBeUndefined();
      }
    }));

  it('sets each flag on its own', () =>
    withNetns(async (ns) => {
      const cases: Array<[Parameters<typeof Tun.open>[0], Record<string, unknown>]> = [
        [{ packetInfo: true }, { pi: true, vnet_hdr: false, multi_queue: false }],
        [{ vnetHdr: true }, { pi: false, vnet_hdr: true, multi_queue: false }],
        [{ multiQueue: true }, { pi: false, vnet_hdr: false, multi_queue: true, numqueues: 1 }],
        [{ owner: 1234 }, { user: 1234 }],
        [{ group: 2345 }, { group: 2345 }],
        [{ mode: 'tap' }, { type: 'tap', pi: false }],
      ];
      for (const [opts, expected] of cases) {
        const tun = await Tun.open({ ...opts, name: 'tks0', netns: ns.name });
        try {
          expect(await infoData(ns, 'tks0')).toMatchObject(expected);
        } finally {
          await tun.close();
        }
      }
    }));

  it('sets the MTU on open, within the mode’s kernel range', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkm0', netns: ns.name, mtu: 65535 });
      const tap = await Tun.open({ name: 'tkm1', netns: ns.name, mode: 'tap', mtu: 68 });
      try {
        expect((await linkDetails(ns, 'tkm0'))?.mtu).toBe(65535);
        expect((await linkDetails(ns, 'tkm1'))?.mtu).toBe(68);
      } finally {
        await Promise.all([tun.close(), tap.close()]);
      }
    }));

  it('lets the kernel pick names: tk%d, and tun%d / tap%d by default', () =>
    withNetns(async (ns) => {
      const a = await Tun.open({ name: 'tk%d', netns: ns.name });
      const b = await Tun.open({ name: 'tk%d', netns: ns.name });
      const c = await Tun.open({ netns: ns.name });
      const d = await Tun.open({ netns: ns.name, mode: 'tap' });
      try {
        expect([a.name, b.name, c.name, d.name]).toEqual(['tk0', 'tk1', 'tun0', 'tap0']);
        for (const t of [a, b, c, d]) expect((await linkDetails(ns, t.name))?.ifindex).toBe(t.ifindex);
      } finally {
        await Promise.all([a, b, c, d].map((t) => t.close()));
      }
    }));

  it('changes persist, owner, group and offloads on an open device', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkc0', netns: ns.name, vnetHdr: true });
      try {
        tun.setPersist(true);
        tun.setOwner(5000);
        tun.setGroup(5001);
        expect(await infoData(ns, 'tkc0')).toMatchObject({ persist: true, user: 5000, group: 5001 });
        tun.setOffload({ csum: true, tso4: true, tso6: true, tsoEcn: true, uso4: true, uso6: true });
        tun.setOffload({});
        tun.setPersist(false);
        expect(await infoData(ns, 'tkc0')).toMatchObject({ persist: false });
        expect(() => tun.setOwner(-1)).toThrow(RangeError);
        expect(() => tun.setOffload({ tso4: true })).toThrow(/need csum/);
      } finally {
        await tun.close();
      }
      const plain = await Tun.open({ name: 'tkc1', netns: ns.name });
      try {
        let caught: unknown;
        try {
          plain.setOffload({ csum: true });
        } catch (e) {
          caught = e;
        }
        expect(isNativeError(caught, 'EINVAL')).toBe(true);
        expect((caught as Error).message).toMatch(/opened without vnetHdr/);
      } finally {
        await plain.close();
      }
    }));

  it('reports a missing namespace as ENOENT naming it', () =>
    (async () => {
      const err = await expectNativeError(Tun.open({ netns: '/run/netns/tunkeeper-no-such-ns' }), 'ENOENT');
      expect(err.message).toContain('/run/netns/tunkeeper-no-such-ns');
      expect(err.syscall).toBe('open');
    })());

  it('reports EPERM with a hint when CAP_NET_ADMIN is missing; the owner may still attach', () =>
    withNetns(async (ns) => {
      // Persistent devices owned by another uid and by root (this process's uid).
      const other = await Tun.open({ name: 'tkown', netns: ns.name, persist: true, owner: 4242 });
      const mine = await Tun.open({ name: 'tkmine', netns: ns.name, persist: true, owner: 0 });
      await Promise.all([other.close(), mine.close()]);
      // A child without CAP_NET_ADMIN (dropped from its bounding and inheritable sets) but
      // still able to enter the namespace (CAP_SYS_ADMIN).
      const script = `
        const { Tun } = await import(${JSON.stringify(tunModuleUrl)});
        const out = {};
        for (const name of ['tknew', 'tkown', 'tkmine']) {
          try { await (await Tun.open({ name, netns: process.argv[1] })).close(); out[name] = 'opened'; }
          catch (e) { out[name] = { name: e.name, code: e.code, syscall: e.syscall, message: e.message }; }
        }
        console.log(JSON.stringify(out));
      `;
      const r = await runNode(script, {
        args: [ns.name],
        wrapper: ['setpriv', '--inh-caps=-net_admin', '--bounding-set=-net_admin'],
      });
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout.trim()) as Record<string, { name: string; code: string; syscall: string; message: string } | 'opened'>;
      expect(out.tknew).toMatchObject({ name: 'NativeError', code: 'EPERM', syscall: 'ioctl(TUNSETIFF)' });
      expect((out.tknew as { message: string }).message).toMatch(/create or attach to tun device 'tknew': EPERM .*CAP_NET_ADMIN/);
      expect(out.tkown).toMatchObject({ code: 'EPERM' });
      expect((out.tkown as { message: string }).message).toMatch(/the device exists: attaching needs CAP_NET_ADMIN, or the device's owner/);
      expect(out.tkmine).toBe('opened');
      expect(await linkDetails(ns, 'tknew')).toBeUndefined();
    }));

  it('explains EINVAL when the name belongs to a device that is not a tun/tap device', () =>
    withNetns(async (ns) => {
      const err = await expectNativeError(Tun.open({ name: 'lo', netns: ns.name }), 'EINVAL');
      expect(err.message).toMatch(/tun device 'lo' \(a device of that name exists.*no tun\/tap device at all\)/);
    }));
});

describeKernel('Tun.open: attaching to existing devices', () => {
  it('re-attaches to a persistent device after close, keeping its flags', () =>
    withNetns(async (ns) => {
      const first = await Tun.open({ name: 'tkp0', netns: ns.name, persist: true, packetInfo: true });
      const ifindex = first.ifindex;
      await first.close();
      expect(await infoData(ns, 'tkp0')).toMatchObject({ persist: true, pi: true });
      const again = await Tun.open({ name: 'tkp0', netns: ns.name, packetInfo: true });
      try {
        expect(again.ifindex).toBe(ifindex);
        expect(again.packetInfo).toBe(true);
        // persist not given: left as it is.
        expect(await infoData(ns, 'tkp0')).toMatchObject({ persist: true });
        again.setPersist(false);
      } finally {
        await again.close();
      }
      expect(await linkDetails(ns, 'tkp0')).toBeUndefined();
    }));

  it('refuses a second fd on a single-queue device with EBUSY', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkb0', netns: ns.name });
      try {
        const err = await expectNativeError(Tun.open({ name: 'tkb0', netns: ns.name }), 'EBUSY');
        expect(err.syscall).toBe('ioctl(TUNSETIFF)');
        expect(err.message).toMatch(/tkb0.*held by another process/);
      } finally {
        await tun.close();
      }
    }));

  it('refuses mismatched flags with EINVAL: tap over tun, multi-queue over single-queue, and back', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tkx0', netns: ns.name, persist: true });
      const mq = await Tun.open({ name: 'tkx1', netns: ns.name, multiQueue: true });
      try {
        await tun.close();
        const asTap = await expectNativeError(Tun.open({ name: 'tkx0', netns: ns.name, mode: 'tap' }), 'EINVAL');
        expect(asTap.message).toMatch(/tap device 'tkx0'.*differ from the existing device/);
        await expectNativeError(Tun.open({ name: 'tkx0', netns: ns.name, multiQueue: true }), 'EINVAL');
        await expectNativeError(Tun.open({ name: 'tkx1', netns: ns.name }), 'EINVAL');
        // The right flags still attach.
        const ok = await Tun.open({ name: 'tkx0', netns: ns.name, persist: false });
        await ok.close();
        expect(await linkDetails(ns, 'tkx0')).toBeUndefined();
      } finally {
        await Promise.all([tun.close(), mq.close()]);
      }
    }));

  it('opens, closes and re-attaches queues of a multi-queue device', () =>
    withNetns(async (ns) => {
      const first = await Tun.open({ name: 'tkq0', netns: ns.name, multiQueue: true, vnetHdr: true });
      const queues = [first];
      for (let i = 0; i < 3; i++) queues.push(await first.openQueue());
      try {
        for (const q of queues) {
          expect([q.name, q.ifindex, q.multiQueue, q.vnetHdr]).toEqual(['tkq0', first.ifindex, true, true]);
        }
        expect(await infoData(ns, 'tkq0')).toMatchObject({ multi_queue: true, numqueues: 4 });
        await Promise.all([queues[1]?.close(), queues[2]?.close()]);
        expect(await infoData(ns, 'tkq0')).toMatchObject({ numqueues: 2 });
        const again = await queues[3]!.openQueue();
        queues.push(again);
        expect(await infoData(ns, 'tkq0')).toMatchObject({ numqueues: 3 });
        // Any queue's openQueue works, and Tun.open by name attaches another queue too.
        queues.push(await Tun.open({ name: 'tkq0', netns: ns.name, multiQueue: true, vnetHdr: true }));
        expect(await infoData(ns, 'tkq0')).toMatchObject({ numqueues: 4 });
        await first.close();
        await expectNativeError(first.openQueue(), 'EBADF');
      } finally {
        await Promise.all(queues.map((q) => q.close()));
      }
      expect(await linkDetails(ns, 'tkq0')).toBeUndefined();
    }));

  it('refuses openQueue on a single-queue device with EINVAL', () =>
    withNetns(async (ns) => {
      const tun = await Tun.open({ name: 'tko0', netns: ns.name });
      try {
        const err = await expectNativeError(tun.openQueue(), 'EINVAL');
        expect(err.message).toMatch(/single-queue device/);
      } finally {
        await tun.close();
      }
    }));
});
