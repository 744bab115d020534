/**
 * TUN lifecycle, every ordering (issue #6, item 9): two handles A and B on one device name and the
 * events open (create, or reattach to a persistent device), close, persist on/off, delete from
 * outside (`ip link del`), and GC (A dropped unclosed, global.gc until its fd is gone). Every
 * sequence of three events (four with --long), starting from no device and from a persistent one
 * nobody holds, runs against the real kernel in a namespace and
 * against a model of tun(4); after each event the kernel must agree with the model: whether the
 * device exists, its ifindex (a reattach gets the same device, a re-create a new one), its persist
 * flag, and each operation's outcome (EBUSY for a second open of a single-queue device). B always
 * has a `for await` reader running: it must end normally when B is closed and with ENODEV when
 * the device is deleted under it. After every sequence every fd opened is closed again
 * (/proc/self/fd counted before and after the whole run).
 */
import { expect, it } from '@jest/globals';
import { Rtnl } from '../../netlink/index.js';
import { Tun, isNativeError } from '../../tun-native/index.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { openFdCount } from '../helpers/tun-netns.js';
import { scale } from './helpers/scale.js';

const NAME = 'tk-life0';
const EVENTS = ['openA', 'openB', 'closeA', 'closeB', 'persist', 'unpersist', 'delete', 'gcA'] as const;
type Event = (typeof EVENTS)[number];
type Slot = 'A' | 'B';

interface ModelHandle {
  /** Which incarnation of the device this fd is attached to. */
  gen: number;
}
interface Model {
  device: { gen: number; persistent: boolean } | undefined;
  handles: Partial<Record<Slot, ModelHandle>>;
  nextGen: number;
}

/** What tun(4) does, as far as these events go. Returns the expected outcome of the event. */
function step(m: Model, e: Event): string {
  const holders = (gen: number) => (['A', 'B'] as Slot[]).filter((s) => m.handles[s]?.gen === gen);
  const current = (['A', 'B'] as Slot[]).find((s) => m.device !== undefined && m.handles[s]?.gen === m.device.gen);
  const release = (s: Slot) => {
    const h = m.handles[s]!;
    delete m.handles[s];
    if (m.device?.gen === h.gen && holders(h.gen).length === 0 && !m.device.persistent) m.device = undefined;
  };
  switch (e) {
    case 'openA':
    case 'openB': {
      const s: Slot = e === 'openA' ? 'A' : 'B';
      if (m.handles[s]) return 'noop';
      if (m.device === undefined) {
        m.device = { gen: m.nextGen++, persistent: false };
        m.handles[s] = { gen: m.device.gen };
        return 'created';
      }
      if (holders(m.device.gen).length > 0) return 'EBUSY';
      m.handles[s] = { gen: m.device.gen };
      return 'reattached';
    }
    case 'closeA':
    case 'closeB':
    case 'gcA': {
      const s: Slot = e === 'closeB' ? 'B' : 'A';
      if (!m.handles[s]) return 'noop';
      release(s);
      return 'ok';
    }
    case 'persist':
    case 'unpersist':
      if (current === undefined) return 'noop';
      m.device!.persistent = e === 'persist';
      return 'ok';
    case 'delete':
      if (m.device === undefined) return 'noop';
      m.device = undefined;
      return 'ok';
  }
}

interface RealHandle {
  tun: Tun;
  gen: number;
  /** B's reader: how its for-await loop ended ('completed', or the error code). */
  reader?: Promise<string>;
  /** The device this fd was attached to was deleted from outside. */
  stale: boolean;
}

function sequences(length: number): Event[][] {
  let out: Event[][] = [[]];
  for (let i = 0; i < length; i++) out = out.flatMap((s) => EVENTS.map((e) => [...s, e]));
  return out;
}

/**
 * Runs one event on the real handles. Its own function, so that no register of the long-running
 * test body ever holds a Tun: a suspended async function keeps its whole register file alive, and a
 * handle left in a dead register could never be garbage-collected by the gcA event.
 */
async function perform(e: Event, expected: string, model: Model, real: Partial<Record<Slot, RealHandle>>, ifindexOf: Map<number, number>, ns: Netns): Promise<string> {
  if (expected === 'noop') return 'noop';
  const slot: Slot = e === 'openB' || e === 'closeB' ? 'B' : 'A';
  try {
    switch (e) {
      case 'openA':
      case 'openB': {
        const tun = await Tun.open({ name: NAME, netns: ns.name });
        const gen = model.handles[slot]!.gen;
        const h: RealHandle = { tun, gen, stale: false };
        if (slot === 'B') {
          h.reader = (async () => {
            for await (const _p of tun.packets());
            return 'completed';
          })().catch((err: unknown) => (isNativeError(err) ? err.code : String(err)));
        }
        real[slot] = h;
        const known = ifindexOf.get(gen);
        if (known === undefined) ifindexOf.set(gen, tun.ifindex);
        return known === undefined ? 'created' : known === tun.ifindex ? 'reattached' : `reattached to another device (ifindex ${tun.ifindex}, not ${known})`;
      }
      case 'closeA':
      case 'closeB': {
        const h = real[slot]!;
        delete real[slot];
        await h.tun.close();
        // close() wakes the reader blocked in for-await; one whose device was deleted already ended with ENODEV.
        const ended = h.reader ? await h.reader : 'completed';
        const want = h.stale ? 'ENODEV' : 'completed';
        return h.reader === undefined || ended === want ? 'ok' : `B's reader ended with ${ended}, not ${want}`;
      }
      case 'gcA': {
        const before = openFdCount();
        delete real.A; // the only reference: nothing closes it but the garbage collector
        await collectUntil(() => openFdCount() < before, 'the dropped handle to be collected and its fd closed');
        return 'ok';
      }
      case 'persist':
      case 'unpersist': {
        const s = (['A', 'B'] as Slot[]).find((x) => real[x] !== undefined && !real[x]!.stale)!;
        real[s]!.tun.setPersist(e === 'persist');
        return 'ok';
      }
      case 'delete':
        await ns.ip('link', 'del', NAME);
        for (const h of Object.values(real)) h.stale = true;
        // What a delete does to B: its reader notices on its own and ends with ENODEV. Wait for that
        // here; a close() right after the delete could otherwise overtake the reader's noticing
        // (the reader then ends 'completed'), which failed once on a busy machine.
        await Promise.all(Object.values(real).map((h) => h.reader));
        return 'ok';
    }
  } catch (err) {
    return isNativeError(err) ? err.code : `threw ${String(err)}`;
  }
}

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

async function collectUntil(done: () => boolean, what: string): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') throw new Error('global.gc is missing: run the tests through scripts/run-tests.mjs (node --expose-gc)');
  for (let i = 0; i < 200 && !done(); i++) {
    gc();
    await tick(10);
  }
  if (!done()) throw new Error(`gave up waiting for ${what}`);
}

describeKernel('TUN lifecycle: every ordering of open, close, persist, delete and GC', () => {
  it(`all ${EVENTS.length}^${scale(3, 4)} sequences, from nothing and from a persistent device, agree with the model of tun(4), and leak no fd`, () =>
    withNetns(async (ns: Netns) => {
      const rtnl = await Rtnl.open({ netns: ns.name });
      try {
        const kernel = async () => {
          const l = await rtnl.link({ ifname: NAME });
          return l === undefined ? undefined : { ifindex: l.ifindex, persist: l.linkInfo?.tun?.persist === true };
        };
        // Warm-up: the libuv pool, the namespace thread and the reader machinery exist from here on.
        const warm = await Tun.open({ name: NAME, netns: ns.name });
        const warmReader = (async () => {
          for await (const _p of warm.packets());
        })();
        await warm.close();
        await warmReader;
        const fdsBefore = openFdCount();

        const length = scale(3, 4);
        let events = 0;
        const outcomes = new Map<string, number>();
        // From nothing, and from a persistent device that nobody holds (so that open is a reattach).
        const runs = sequences(length).flatMap((seq) => [{ seq, persistentAtStart: false }, { seq, persistentAtStart: true }]);
        for (const { seq, persistentAtStart } of runs) {
          const model: Model = { device: undefined, handles: {}, nextGen: 1 };
          const real: Partial<Record<Slot, RealHandle>> = {};
          const ifindexOf = new Map<number, number>();
          if (persistentAtStart) {
            const t = await Tun.open({ name: NAME, netns: ns.name, persist: true });
            ifindexOf.set(1, t.ifindex);
            await t.close();
            model.device = { gen: 1, persistent: true };
            model.nextGen = 2;
          }
          const log: string[] = [];
          const at = () => `${persistentAtStart ? 'from a persistent device, ' : ''}sequence ${seq.join(' → ')}, after ${log.join(', ')}`;
          for (const e of seq) {
            const expected = step(model, e);
            const got = await perform(e, expected, model, real, ifindexOf, ns);
            log.push(`${e}=${got}`);
            outcomes.set(`${e}=${got}`, (outcomes.get(`${e}=${got}`) ?? 0) + 1);
            events++;
            expect({ at: at(), outcome: got }).toEqual({ at: at(), outcome: expected });
            // The kernel agrees with the model.
            const k = await kernel();
            const want = model.device === undefined ? undefined : { ifindex: ifindexOf.get(model.device.gen), persist: model.device.persistent };
            expect({ at: at(), kernel: k }).toEqual({ at: at(), kernel: want });
          }
          // A reader whose device was deleted under it ended with ENODEV by now (the delete waited for it).
          for (const s of ['A', 'B'] as Slot[]) {
            const h = real[s];
            if (!h) continue;
            await h.tun.close();
            if (h.reader) expect({ at: at(), reader: await h.reader }).toEqual({ at: at(), reader: h.stale ? 'ENODEV' : 'completed' });
          }
          if ((await kernel()) !== undefined) await rtnl.deleteLink({ ifname: NAME });
          expect({ at: at(), fds: openFdCount() }).toEqual({ at: at(), fds: fdsBefore });
        }
        console.log(
          `TUN lifecycle orderings: ${runs.length} sequences, ${events} events; outcomes ${[...outcomes]
            .sort()
            .map(([k, v]) => `${k}×${v}`)
            .join(' ')}`,
        );
        // Every kind of outcome the model knows happened somewhere in the run.
        for (const o of ['openA=created', 'openA=reattached', 'openB=EBUSY', 'gcA=ok', 'delete=ok', 'persist=ok', 'unpersist=ok', 'closeB=ok']) {
          expect(outcomes.get(o)).toBeGreaterThan(0);
        }
        expect(openFdCount()).toBe(fdsBefore);
      } finally {
        rtnl.close();
      }
    }), scale(10, 60) * 60_000);
});
