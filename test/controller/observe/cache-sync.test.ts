/**
 * ForeignRouteCache's bookkeeping with a scripted watch socket: the generation a sync() reads
 * covers exactly the notifications queued before its ack, an overflow gives up on reuse, and
 * only tunkeeper's own route notifications in places every pass re-lists leave it unchanged.
 */
import { describe, expect, it } from '@jest/globals';
import { ForeignRouteCache } from '../../../controller/observe/cache.js';
import type { NetlinkHandlers, NetlinkTransport } from '../../../netlink/index.js';
import { PROTO } from '../plan/fixtures.js';

const NLMSG_ERROR = 2;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_NEWLINK = 16;
const NLM_F_REPLACE = 0x100;
const AF_INET = 2;
const AF_INET6 = 10;

function nlmsg(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(16 + payload.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq, 8);
  payload.copy(b, 16);
  return b;
}

/** A route notification: struct rtmsg and RTA_TABLE. */
function route(type: number, opts: { family?: number; table?: number; protocol: number; flags?: number }): Buffer {
  const p = Buffer.alloc(12 + 8);
  p[0] = opts.family ?? AF_INET;
  p[4] = Math.min(opts.table ?? 254, 252);
  p[5] = opts.protocol;
  p.writeUInt16LE(8, 12);
  p.writeUInt16LE(15, 14); // RTA_TABLE
  p.writeUInt32LE(opts.table ?? 254, 16);
  return nlmsg(type, opts.flags ?? 0, 0, p);
}

class ScriptedWatch implements NetlinkTransport {
  readonly rcvbuf = 1 << 20;
  readonly sndbuf = 1 << 20;
  handlers: NetlinkHandlers | undefined;
  readonly sent: Buffer[] = [];
  start(h: NetlinkHandlers): void {
    this.handlers = h;
  }
  send(data: Uint8Array): void {
    this.sent.push(Buffer.from(data));
  }
  close(): void {}
  /** The ack of the latest sync's NOOP. */
  ack(): Buffer {
    const req = this.sent.at(-1)!;
    const payload = Buffer.alloc(4 + 16);
    req.copy(payload, 4, 0, 16);
    return nlmsg(NLMSG_ERROR, 0, req.readUInt32LE(8), payload);
  }
  deliver(...messages: Buffer[]): void {
    this.handlers!.data([Buffer.concat(messages)]);
  }
}

async function open(): Promise<{ cache: ForeignRouteCache; watch: ScriptedWatch }> {
  const watch = new ScriptedWatch();
  const cache = await ForeignRouteCache.open({ protocol: PROTO, transport: watch });
  return { cache, watch };
}

describe('ForeignRouteCache: sync and generations', () => {
  it('reads at the ack: notifications queued before it count, those after it count for the next sync', async () => {
    const { cache, watch } = await open();
    let s = cache.sync([254]);
    watch.deliver(watch.ack());
    const g0 = await s;
    expect(g0).toBeDefined();
    s = cache.sync([254]);
    const foreign = route(RTM_NEWROUTE, { protocol: 4 });
    watch.deliver(foreign, watch.ack(), foreign);
    expect(await s).toBe(g0! + 1);
    s = cache.sync([254]);
    watch.deliver(watch.ack());
    expect(await s).toBe(g0! + 2);
    cache.close();
  });

  it('gives up on a sync when the watch socket overflows, and ignores its late ack', async () => {
    const { cache, watch } = await open();
    const s = cache.sync([254]);
    const late = watch.ack();
    watch.handlers!.overflow();
    expect(await s).toBeUndefined();
    watch.deliver(late);
    const next = cache.sync([254]);
    watch.deliver(watch.ack());
    expect(await next).toBeDefined();
    expect(cache.stats.invalidations).toBe(1);
    cache.close();
    expect(await cache.sync([254])).toBeUndefined();
  });

  it('lets through only own route changes that replace nothing where every pass re-lists them', async () => {
    const { cache, watch } = await open();
    const scope = { tables: [100, 254], links: new Set<number>(), sources: new Set<string>(), prefixes: new Set<string>() };
    const syncNow = async (): Promise<number | undefined> => {
      const s = cache.sync(scope.tables);
      watch.deliver(watch.ack());
      return s;
    };
    const g = (await syncNow())!;
    cache.put(g, scope, { foreign: [], ownedElsewhere: [] });
    expect(cache.get(g, scope)).toEqual({ foreign: [], ownedElsewhere: [] });
    const bumps = (m: Buffer): Promise<boolean> => {
      const before = cache.stats.invalidations;
      watch.deliver(m);
      return Promise.resolve(cache.stats.invalidations > before);
    };
    expect(await bumps(route(RTM_NEWROUTE, { protocol: PROTO }))).toBe(false);
    expect(await bumps(route(RTM_DELROUTE, { protocol: PROTO, table: 100 }))).toBe(false);
    expect(await bumps(route(RTM_DELROUTE, { protocol: PROTO, table: 300 }))).toBe(true);
    expect(await bumps(route(RTM_NEWROUTE, { protocol: PROTO, family: AF_INET6, table: 300 }))).toBe(false);
    expect(await bumps(route(RTM_NEWROUTE, { protocol: PROTO, flags: NLM_F_REPLACE }))).toBe(true);
    expect(await bumps(route(RTM_DELROUTE, { protocol: 4 }))).toBe(true);
    expect(await bumps(nlmsg(RTM_NEWLINK, 0, 0, Buffer.alloc(16)))).toBe(true);
    // What was kept is stale now, whatever the next sync reads.
    expect(cache.get((await syncNow())!, scope)).toBeUndefined();
    cache.close();
  });
});
