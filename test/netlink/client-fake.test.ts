/**
 * The client against the fake socket: sequence matching, multipart dumps, NLM_F_DUMP_INTR,
 * errno + ext-ack reporting, batches with mixed outcomes, and the in-flight bound.
 */
import { describe, expect, it } from '@jest/globals';
import {
  NetlinkDumpInterruptedError,
  NetlinkEncodeError,
  NetlinkRequestError,
  Rtnl,
  addRoute,
  deleteRoute,
  setLink,
  type RouteMessage,
} from '../../netlink/index.js';
import { FakeNetlinkSocket, fakeAck, fakeDelay, fakeDump, fakeError, fakeReply, type FakeObject, type FakeRequest } from '../../netlink/testing/index.js';
import type { RouteMessageInit } from '../../netlink/codec/route.js';
import { NLM_F_DUMP_FILTERED, NLM_F_DUMP_INTR, NLM_F_MULTI, NLMSG_DONE } from '../../netlink/constants/netlink.js';
import { RTM_NEWROUTE } from '../../netlink/constants/rtnetlink.js';
import { encodeMessages } from '../../netlink/codec/messages.js';

const AF_INET = 2;

function route(i: number, over: Partial<RouteMessageInit> = {}): FakeObject {
  return {
    kind: 'route',
    body: { family: AF_INET, dstLen: 32, headerTable: 254, table: 254, protocol: 116, scope: 0, type: 6, dst: `198.18.${i >> 8}.${i & 255}`, ...over },
  };
}

/** The metric of a route request the fake received (tests key answers on it). */
function metricOf(req: FakeRequest): number {
  return req.message.kind === 'route' ? (req.message.body.metric ?? -1) : -1;
}

async function withClient<T>(fake: FakeNetlinkSocket, fn: (rtnl: Rtnl) => Promise<T>, opts: { dumpAttempts?: number; timeoutMs?: number; ackEach?: boolean } = {}): Promise<T> {
  const rtnl = await Rtnl.open({ transport: fake, ...opts });
  try {
    return await fn(rtnl);
  } finally {
    rtnl.close();
  }
}

describe('Rtnl requests on the fake socket', () => {
  for (const ackEach of [false, true]) {
    it(`matches answers to requests by sequence number even when they arrive out of order (ackEach ${ackEach})`, async () => {
      const fake = new FakeNetlinkSocket({
        reorder: { seed: 7 },
        batchSize: 16,
        // Odd metrics fail, with ext-ack text naming the metric; some answers come late.
        handler: (req) => {
          const m = metricOf(req);
          const answer = m % 2 === 1 ? fakeError('EEXIST', `route with metric ${m} exists`) : fakeAck();
          return m % 3 === 0 ? fakeDelay(m % 5, answer) : answer;
        },
      });
      const results = await withClient(
        fake,
        (rtnl) => rtnl.batch(Array.from({ length: 300 }, (_, i) => addRoute({ dst: '198.51.100.0/24', table: 100, metric: i, protocol: 116 }))),
        { ackEach },
      );
      expect(results).toHaveLength(300);
      results.forEach((r, i) => {
        if (i % 2 === 0) {
          expect(r.ok).toBe(true);
        } else {
          expect(r.ok).toBe(false);
          if (r.ok) return;
          expect(r.error.code).toBe('EEXIST');
          expect(r.error.extAck).toBe(`route with metric ${i} exists`);
          expect(r.error.target).toBe(`198.51.100.0/24 table 100 metric ${i}`);
        }
      });
    });
  }

  it('asks no ack per request: the kernel reports failures anyway, and one acked NLMSG_NOOP per send vouches for the rest', async () => {
    const fake = new FakeNetlinkSocket({ handler: (req) => (metricOf(req) === 7 ? fakeError('EEXIST') : fakeAck()) });
    const results = await withClient(fake, (rtnl) => rtnl.batch(Array.from({ length: 20 }, (_, i) => addRoute({ dst: '192.0.2.0/24', metric: i }))));
    expect(results.map((r) => r.ok)).toEqual(Array.from({ length: 20 }, (_, i) => i !== 7));
    expect(fake.requests.every((r) => !r.ack)).toBe(true);
    expect(fake.sends).toHaveLength(1);
    expect(fake.controlMessages).toBe(1);

    const each = new FakeNetlinkSocket();
    await withClient(each, (rtnl) => rtnl.batch([addRoute({ dst: '192.0.2.0/24' }), addRoute({ dst: '192.0.2.0/25' })]), { ackEach: true });
    expect(each.requests.every((r) => r.ack)).toBe(true);
    expect(each.controlMessages).toBe(0);
  });

  it('surfaces errno, errno name, the kernel ext-ack text and which request failed', async () => {
    const fake = new FakeNetlinkSocket({ handler: () => fakeError(22, 'Invalid prefix for given prefix length') });
    const err = await withClient(fake, (rtnl) => rtnl.addRoute({ dst: '198.51.100.0/24', table: 100, protocol: 116 })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NetlinkRequestError);
    const e = err as NetlinkRequestError;
    expect(e.code).toBe('EINVAL');
    expect(e.errno).toBe(22);
    expect(e.extAck).toBe('Invalid prefix for given prefix length');
    expect(e.operation).toBe('route add');
    expect(e.target).toBe('198.51.100.0/24 table 100');
    expect(e.request).toBe('route add 198.51.100.0/24 table 100');
    expect(e.message).toBe('route add 198.51.100.0/24 table 100: EINVAL (invalid argument): Invalid prefix for given prefix length');
  });

  it('reports each result of a mixed batch in order, a failure not stopping the rest', async () => {
    const fake = new FakeNetlinkSocket({
      handler: (req) => {
        if (req.message.kind === 'link') return fakeError('ENODEV', 'Device not found');
        return metricOf(req) === 2 ? fakeError('ESRCH') : fakeAck();
      },
    });
    const results = await withClient(fake, (rtnl) =>
      rtnl.batch([
        addRoute({ dst: '198.51.100.0/24', metric: 1 }),
        deleteRoute({ dst: '198.51.100.0/24', metric: 2, protocol: 116 }),
        setLink({ ifindex: 42, mtu: 1400 }),
        addRoute({ dst: '2001:db8::/48', metric: 3 }),
      ]),
    );
    expect(results.map((r) => r.ok)).toEqual([true, false, false, true]);
    const [, del, link] = results;
    expect(!del!.ok && del!.error.message).toBe('route delete 198.51.100.0/24 table 254 metric 2: ESRCH (no such process)');
    expect(!link!.ok && link!.error.message).toBe('link set ifindex 42 mtu 1400: ENODEV (no such device): Device not found');
    // All four went out in a single send().
    expect(fake.sends).toHaveLength(1);
  });

  it('bounds what is in flight by the receive buffer, so no ack is ever dropped', async () => {
    // A 64 KiB receive buffer holds ~80 answers (768 bytes of overhead each, as the kernel
    // charges). Every request fails, so every one is answered (with ext-ack text).
    const fake = new FakeNetlinkSocket({ rcvbuf: 64 * 1024, batchSize: 8, handler: () => fakeError('EEXIST', 'Route already exists') });
    const n = 5000;
    const results = await withClient(fake, (rtnl) =>
      rtnl.batch(Array.from({ length: n }, (_, i) => addRoute({ dst: `198.18.${i >> 8}.${i & 255}/32`, type: 'blackhole', table: 100, protocol: 116 }))),
    );
    expect(results.every((r) => !r.ok && r.error.code === 'EEXIST' && r.error.extAck === 'Route already exists')).toBe(true);
    expect(fake.dropped).toBe(0);
    expect(fake.peakCharged).toBeLessThanOrEqual(64 * 1024);
    expect(fake.peakOutstanding).toBeLessThanOrEqual(Math.floor((64 * 1024 * 3) / 4 / 1280));
    // Pipelined: many requests per send(), far fewer sends than requests.
    expect(fake.requests).toHaveLength(n);
    expect(fake.sends.length).toBeGreaterThan(n / 100);
    expect(fake.sends.length).toBeLessThan(n / 10);
  });

  it('splits a batch into sends that fit the send buffer', async () => {
    const fake = new FakeNetlinkSocket({ sndbuf: 16 * 1024 });
    const results = await withClient(fake, (rtnl) =>
      rtnl.batch(Array.from({ length: 2000 }, (_, i) => addRoute({ dst: `2001:db8:${i.toString(16)}::/48`, gateway: '2001:db8::1', table: 1000, metric: i }))),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    expect(Math.max(...fake.sends)).toBeLessThanOrEqual(16 * 1024 - 32);
    expect(fake.sends.length).toBeGreaterThan(5);
  });

  for (const ackEach of [false, true]) {
    it(`fails requests whose answers the kernel dropped (ENOBUFS) as outcome-unknown, never as success (ackEach ${ackEach})`, async () => {
      // The fake charges far more per answer than the client budgets, so the buffer overflows.
      // Every request fails: a request reported ok would be a lie.
      const fake = new FakeNetlinkSocket({ rcvbuf: 64 * 1024, truesizeOverhead: 4000, batchSize: 4, handler: () => fakeError('EEXIST') });
      const results = await withClient(fake, (rtnl) => rtnl.batch(Array.from({ length: 400 }, (_, i) => addRoute({ dst: `198.18.1.${i % 256}/32`, metric: i }))), { ackEach });
      expect(fake.dropped).toBeGreaterThan(0);
      expect(results.filter((r) => r.ok)).toEqual([]);
      const unknown = results.filter((r) => !r.ok && r.error.code === 'ENOBUFS');
      expect(unknown.length).toBeGreaterThanOrEqual(fake.dropped - (ackEach ? 0 : Math.ceil(400 / 10)));
      for (const r of unknown) expect(!r.ok && r.error.message).toContain('outcome is unknown');
      expect(results.every((r) => !r.ok && (r.error.code === 'EEXIST' || r.error.code === 'ENOBUFS'))).toBe(true);
    });
  }

  it('pipelines concurrent single requests made in the same tick into one send', async () => {
    const fake = new FakeNetlinkSocket();
    await withClient(fake, async (rtnl) => {
      await Promise.all(Array.from({ length: 50 }, (_, i) => rtnl.replaceRoute({ dst: `203.0.113.${i}/32`, table: 300, protocol: 116 })));
    });
    expect(fake.sends).toHaveLength(1);
    expect(fake.requests).toHaveLength(50);
  });

  it('rejects invalid request data when the request is built, naming the field', () => {
    expect(() => addRoute({ dst: '198.51.100.0/33' })).toThrow(NetlinkEncodeError);
    expect(() => addRoute({ dst: 'not-an-address/24' })).toThrow(/route\.dst/);
    expect(() => addRoute({ dst: '198.51.100.0/24', gateway: '2001:db8::1' })).toThrow(/route\.gateway/);
    expect(() => setLink({ mtu: 1400 })).toThrow(/needs ifindex or ifname/);
  });

  it('fails everything pending with EBADF on close, and later calls too', async () => {
    const fake = new FakeNetlinkSocket({ handler: (req) => (req.dump ? fakeDelay(1000, fakeDump([])) : fakeDelay(1000, fakeAck())) });
    const rtnl = await Rtnl.open({ transport: fake });
    const pendingDump = rtnl.routes();
    const pendingReq = rtnl.addRoute({ dst: '192.0.2.0/24' });
    const pendingBatch = rtnl.batch([addRoute({ dst: '192.0.2.0/25' })]);
    await new Promise((r) => setImmediate(r));
    rtnl.close();
    await expect(pendingDump).rejects.toMatchObject({ code: 'EBADF', operation: 'route dump' });
    await expect(pendingReq).rejects.toMatchObject({ code: 'EBADF', operation: 'route add' });
    const [r] = await pendingBatch;
    expect(r!.ok).toBe(false);
    await expect(rtnl.links()).rejects.toMatchObject({ code: 'EBADF' });
    expect(fake.closed).toBe(true);
  });

  it('times out requests the transport never answers (a lost answer never hangs the caller)', async () => {
    const never = () => new Promise<undefined>(() => undefined);
    const fake = new FakeNetlinkSocket({ handler: (req) => (metricOf(req) === 1 ? never() : fakeAck()) });
    const results = await withClient(fake, (rtnl) => rtnl.batch([addRoute({ dst: '192.0.2.0/24', metric: 1 }), addRoute({ dst: '192.0.2.0/24', metric: 2 })]), { timeoutMs: 40, ackEach: true });
    expect(results[1]!.ok).toBe(true);
    expect(!results[0]!.ok && results[0]!.error.code).toBe('ETIMEDOUT');
    // Without an ack per request, the send's barrier never comes back: both outcomes are unknown.
    const fake2 = new FakeNetlinkSocket({ handler: (req) => (metricOf(req) === 1 ? never() : fakeAck()) });
    const results2 = await withClient(fake2, (rtnl) => rtnl.batch([addRoute({ dst: '192.0.2.0/24', metric: 1 }), addRoute({ dst: '192.0.2.0/24', metric: 2 })]), { timeoutMs: 40 });
    expect(results2.map((r) => !r.ok && r.error.code)).toEqual(['ETIMEDOUT', 'ETIMEDOUT']);
  });

  it('does not keep the process alive while idle', async () => {
    const fake = new FakeNetlinkSocket({ handler: () => fakeDelay(5, fakeAck()) });
    await withClient(fake, async (rtnl) => {
      expect(fake.refed).toBe(false);
      const p = rtnl.addRoute({ dst: '192.0.2.0/24' });
      await new Promise((r) => queueMicrotask(() => r(undefined)));
      await Promise.resolve();
      expect(fake.refed).toBe(true);
      await p;
      expect(fake.refed).toBe(false);
    });
  });
});

describe('Rtnl dumps on the fake socket', () => {
  it('assembles a multipart dump spread over many datagrams and deliveries', async () => {
    const objects = Array.from({ length: 1000 }, (_, i) => route(i));
    const fake = new FakeNetlinkSocket({ batchSize: 3, handler: (req) => (req.dump ? fakeDump(objects, { perDatagram: 7 }) : undefined) });
    const routes = await withClient(fake, (rtnl) => rtnl.routes());
    expect(routes).toHaveLength(1000);
    expect(routes.map((r) => r.dst)).toEqual(objects.map((o) => (o.body as RouteMessageInit).dst));
    expect(routes[0]).toMatchObject({ family: AF_INET, dstLen: 32, table: 254, protocol: 116, type: 6 });
  });

  it('retries a dump that came back NLM_F_DUMP_INTR and returns only the consistent result', async () => {
    let attempt = 0;
    const fake = new FakeNetlinkSocket({
      handler: (req) => {
        if (!req.dump) return undefined;
        attempt++;
        // The first two walks saw the table change: partial, flagged; the third is clean.
        return attempt < 3 ? fakeDump([route(1)], { interrupted: true }) : fakeDump([route(1), route(2), route(3)]);
      },
    });
    const routes = await withClient(fake, (rtnl) => rtnl.routes());
    expect(attempt).toBe(3);
    expect(routes.map((r) => r.dst)).toEqual(['198.18.0.1', '198.18.0.2', '198.18.0.3']);
    // Each attempt used a new sequence number.
    expect(new Set(fake.requests.map((r) => r.header.seq)).size).toBe(3);
  });

  it('fails with NetlinkDumpInterruptedError, never a partial list, when every attempt is interrupted', async () => {
    let attempts = 0;
    const fake = new FakeNetlinkSocket({
      handler: (req) => {
        attempts++;
        return req.dump ? fakeDump([route(attempts)], { interrupted: true }) : undefined;
      },
    });
    const err = await withClient(fake, (rtnl) => rtnl.routes({ table: 100 }), { dumpAttempts: 4 }).then(
      (v) => v,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NetlinkDumpInterruptedError);
    expect(err).toBeInstanceOf(NetlinkRequestError);
    expect(err).toMatchObject({ code: 'EINTR', attempts: 4, operation: 'route dump', target: 'table 100' });
    expect(attempts).toBe(4);
  });

  it('detects NLM_F_DUMP_INTR on any message of the dump, not only on NLMSG_DONE', async () => {
    let attempt = 0;
    const fake = new FakeNetlinkSocket({
      handler: (req) => {
        if (!req.dump) return undefined;
        attempt++;
        if (attempt > 1) return fakeDump([route(1)]);
        // The flag on a middle message only; NLMSG_DONE is clean.
        const h = (type: number, flags: number) => ({ type, flags, seq: req.header.seq, pid: 1 });
        const datagram = encodeMessages([
          { kind: 'route', header: h(RTM_NEWROUTE, NLM_F_MULTI), body: route(1).body as RouteMessageInit },
          { kind: 'route', header: h(RTM_NEWROUTE, NLM_F_MULTI | NLM_F_DUMP_INTR), body: route(9).body as RouteMessageInit },
          { kind: 'done', header: h(NLMSG_DONE, NLM_F_MULTI), body: { errno: 0 } },
        ]);
        return { kind: 'raw', datagrams: [datagram] };
      },
    });
    const routes = await withClient(fake, (rtnl) => rtnl.routes());
    expect(attempt).toBe(2);
    expect(routes.map((r) => r.dst)).toEqual(['198.18.0.1']);
  });

  it('filters client-side what a kernel ignored, and sends the filter to the kernel', async () => {
    const objects = [
      route(1, { table: 100, headerTable: 100 }),
      route(2, { table: 100, headerTable: 100, protocol: 4 }),
      route(3, { table: 300, headerTable: 252 }),
      route(4, { table: 100, headerTable: 100, family: 10, dstLen: 64, dst: '2001:db8::' }),
    ];
    const fake = new FakeNetlinkSocket({ handler: (req) => (req.dump ? fakeDump(objects) : undefined) });
    const routes = await withClient(fake, (rtnl) => rtnl.routes({ family: 4, table: 100, protocol: 116 }));
    expect(routes.map((r) => r.dst)).toEqual(['198.18.0.1']);
    const sent = fake.requests[0]!.message;
    expect(sent.kind).toBe('route');
    expect(sent.kind === 'route' && sent.body).toMatchObject({ family: AF_INET, headerTable: 100, protocol: 116 });

    const fake300 = new FakeNetlinkSocket({ handler: (req) => (req.dump ? fakeDump(objects) : undefined) });
    const t300 = await withClient(fake300, (rtnl) => rtnl.routes({ table: 300 }));
    expect(t300.map((r: RouteMessage) => r.dst)).toEqual(['198.18.0.3']);
    // Tables above 255 travel in RTA_TABLE.
    const m = fake300.requests[0]!.message;
    expect(m.kind === 'route' && m.body.table).toBe(300);
    expect(NLM_F_DUMP_FILTERED).toBe(0x20);
  });

  it('treats "table does not exist" (ENOENT) on a table-filtered dump as an empty table', async () => {
    const fake = new FakeNetlinkSocket({ handler: (req) => (req.dump ? fakeDump([], { errno: 'ENOENT', extAck: 'ipv4: FIB table does not exist' }) : undefined) });
    await expect(withClient(fake, (rtnl) => rtnl.routes({ family: 4, table: 4242 }))).resolves.toEqual([]);
  });

  it('rejects a dump the kernel refused, with its errno and ext-ack', async () => {
    const fake = new FakeNetlinkSocket({ handler: () => fakeError('EINVAL', 'Invalid values in header for FIB dump request') });
    await expect(withClient(fake, (rtnl) => rtnl.routes({ protocol: 116 }))).rejects.toMatchObject({
      name: 'NetlinkRequestError',
      code: 'EINVAL',
      extAck: 'Invalid values in header for FIB dump request',
      message: 'route dump protocol 116: EINVAL (invalid argument): Invalid values in header for FIB dump request',
    });
  });

  it('runs a dump alone: requests queued before it are answered first, requests after it wait', async () => {
    const order: string[] = [];
    const fake = new FakeNetlinkSocket({
      handler: (req) => {
        order.push(req.dump ? 'dump' : `req${metricOf(req)}`);
        return req.dump ? fakeDump([route(1)]) : fakeDelay(3, fakeAck());
      },
    });
    await withClient(fake, async (rtnl) => {
      const a = rtnl.addRoute({ dst: '192.0.2.0/24', metric: 1 });
      const d = rtnl.routes();
      const b = rtnl.addRoute({ dst: '192.0.2.0/24', metric: 2 });
      await Promise.all([a, d, b]);
    });
    expect(order).toEqual(['req1', 'dump', 'req2']);
    expect(fake.sends).toHaveLength(3);
  });

  it('gets one link by index with RTM_GETLINK, and [] when it does not exist', async () => {
    const fake = new FakeNetlinkSocket({
      handler: (req) => {
        if (req.message.kind !== 'link') return undefined;
        if (req.message.body.ifindex === 7) return [fakeReply({ kind: 'link', body: { ifindex: 7, ifname: 'tk0', mtu: 1420, flags: 1, linkInfo: { kind: 'tun' } } }), fakeAck()];
        return fakeError('ENODEV', 'Device not found');
      },
    });
    await withClient(fake, async (rtnl) => {
      const [link] = await rtnl.links({ ifindex: 7 });
      expect(link).toMatchObject({ ifindex: 7, ifname: 'tk0', mtu: 1420, linkInfo: { kind: 'tun' } });
      expect(await rtnl.links({ ifindex: 7, kind: 'veth' })).toEqual([]);
      expect(await rtnl.links({ ifindex: 8 })).toEqual([]);
      expect(await rtnl.link({ ifindex: 8 })).toBeUndefined();
    });
    expect(fake.requests.every((r) => !r.dump)).toBe(true);
  });
});
