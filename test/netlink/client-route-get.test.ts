/**
 * Rtnl.getRoute / getRoute() on the fake socket: what goes on the wire, how the one RTM_NEWROUTE
 * answer is returned, how refusals and a missing answer come back, what the builder rejects.
 * (The kernel's own answers are checked against `ip route get` in route-get-oracle.test.ts.)
 */
import { describe, expect, it } from '@jest/globals';
import { NetlinkEncodeError, Rtnl, getRoute, type RouteMessage } from '../../netlink/index.js';
import { FakeNetlinkSocket, fakeAck, fakeError, fakeReply, type FakeHandler, type FakeRequest } from '../../netlink/testing/index.js';
import * as K from '../../netlink/constants/index.js';
import { failure } from '../helpers/netlink-failure.js';

async function withClient<T>(handler: FakeHandler, fn: (rtnl: Rtnl, fake: FakeNetlinkSocket) => Promise<T>): Promise<T> {
  const fake = new FakeNetlinkSocket({ handler });
  const rtnl = await Rtnl.open({ transport: fake });
  try {
    return await fn(rtnl, fake);
  } finally {
    rtnl.close();
  }
}

/** A scripted kernel: answers each lookup with a /32 cloned result through ifindex 3. */
const resolver: FakeHandler = (req: FakeRequest) => {
  if (req.message.kind !== 'route' || req.header.type !== K.RTM_GETROUTE) return undefined;
  const q = req.message.body;
  return [
    fakeReply({
      kind: 'route',
      body: { family: q.family, dstLen: q.dstLen, headerTable: K.RT_TABLE_MAIN, type: K.RTN_UNICAST, flags: K.RTM_F_CLONED, table: K.RT_TABLE_MAIN, dst: q.dst!, oif: q.oif ?? 3 },
    }),
    fakeAck(),
  ];
};


describe('Rtnl.getRoute on the wire', () => {
  it('sends one RTM_GETROUTE (not a dump) asking an ack, with the lookup ip would send', async () => {
    await withClient(resolver, async (rtnl, fake) => {
      await rtnl.getRoute('198.51.100.7', { oif: 3, fibMatch: true, src: '192.0.2.9', iif: 2, mark: 16, uid: 1000 });
      const [req] = fake.requests;
      expect(req!.dump).toBe(false);
      expect(req!.ack).toBe(true);
      expect(req!.header).toMatchObject({ type: K.RTM_GETROUTE, flags: K.NLM_F_REQUEST | K.NLM_F_ACK });
      expect(req!.message.kind === 'route' && req!.message.body).toMatchObject({
        family: K.AF_INET,
        dstLen: 32,
        srcLen: 32,
        headerTable: 0,
        protocol: 0,
        scope: 0,
        type: 0,
        flags: K.RTM_F_LOOKUP_TABLE | K.RTM_F_FIB_MATCH,
        dst: '198.51.100.7',
        src: '192.0.2.9',
        iif: 2,
        oif: 3,
        mark: 16,
        uid: 1000,
      });
      // The same bytes as the golden `ip route get ... fibmatch` request, bar NLM_F_ACK and seq.
      const golden = Buffer.from(
        '4c0000001a000100287e166b0000000002202000000000000030000008000100c633640708000200c000020908001900e8030000080003000200000008000400030000000800100010000000',
        'hex',
      );
      golden.writeUInt16LE(K.NLM_F_REQUEST | K.NLM_F_ACK, 6);
      golden.writeUInt32LE(req!.header.seq, 8);
      expect(req!.bytes.toString('hex')).toBe(golden.toString('hex'));
    });
  });

  it('IPv6: no RTM_F_LOOKUP_TABLE (the kernel refuses it there), dst_len 128; a dst given as bytes', async () => {
    await withClient(resolver, async (rtnl, fake) => {
      await rtnl.getRoute('2001:DB8:1:0::7');
      await rtnl.getRoute(Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]), { fibMatch: true });
      await rtnl.getRoute(Uint8Array.from([198, 51, 100, 7]));
      const bodies = fake.requests.map((r) => (r.message.kind === 'route' ? r.message.body : undefined));
      expect(bodies.map((b) => [b?.family, b?.dstLen, b?.flags, b?.dst])).toEqual([
        [K.AF_INET6, 128, 0, '2001:db8:1::7'],
        [K.AF_INET6, 128, K.RTM_F_FIB_MATCH, '2001:db8:1::7'],
        [K.AF_INET, 32, K.RTM_F_LOOKUP_TABLE, '198.51.100.7'],
      ]);
    });
  });

  it('returns the decoded answer', async () => {
    await withClient(resolver, async (rtnl) => {
      const r: RouteMessage = await rtnl.getRoute('198.51.100.7', { oif: 5 });
      expect(r).toMatchObject({ family: K.AF_INET, dstLen: 32, dst: '198.51.100.7', oif: 5, table: K.RT_TABLE_MAIN, flags: K.RTM_F_CLONED });
    });
  });

  it('concurrent lookups go pipelined, each answered with its own route', async () => {
    await withClient(resolver, async (rtnl, fake) => {
      const dsts = Array.from({ length: 50 }, (_, i) => `198.51.100.${i + 1}`);
      const routes = await Promise.all(dsts.map((d, i) => rtnl.getRoute(d, { oif: 10 + i })));
      expect(routes.map((r) => [r.dst, r.oif])).toEqual(dsts.map((d, i) => [d, 10 + i]));
      expect(fake.sends.length).toBeLessThan(dsts.length);
      // And as plain requests in one batch.
      const results = await rtnl.batch(dsts.map((dst) => getRoute({ dst, fibMatch: true })));
      expect(results.map((r) => r.ok && (r.replies?.[0] as RouteMessage).dst)).toEqual(dsts);
    });
  });

  it('a refusal rejects with the kernel errno, its ext-ack text and the lookup as ip would type it', async () => {
    const handler: FakeHandler = (req) => {
      const b = req.message.kind === 'route' ? req.message.body : undefined;
      if (b?.oif === 99) return fakeError('ENODEV');
      if (b?.dst === '203.0.113.200') return fakeError('ENETUNREACH');
      return fakeError('EINVAL', 'ipv4: Unsupported attribute in route get request');
    };
    await withClient(handler, async (rtnl) => {
      const unreachable = await failure(rtnl.getRoute('203.0.113.200'));
      expect([unreachable.code, unreachable.operation, unreachable.target, unreachable.extAck]).toEqual(['ENETUNREACH', 'route get', '203.0.113.200', undefined]);
      const noDev = await failure(rtnl.getRoute('198.51.100.7', { oif: 99, fibMatch: true }));
      expect([noDev.code, noDev.request]).toEqual(['ENODEV', 'route get 198.51.100.7 oif 99 fibmatch']);
      const bad = await failure(rtnl.getRoute('198.51.100.7', { src: '192.0.2.9', uid: 7, iif: 2, mark: 3 }));
      expect(bad.code).toBe('EINVAL');
      expect(bad.extAck).toBe('ipv4: Unsupported attribute in route get request');
      expect(bad.message).toBe('route get 198.51.100.7 from 192.0.2.9 uid 7 iif 2 mark 3: EINVAL (invalid argument): ipv4: Unsupported attribute in route get request');
    });
  });

  it('an ack without an answer is EPROTO, never an empty route', async () => {
    await withClient(() => fakeAck(), async (rtnl) => {
      const e = await failure(rtnl.getRoute('198.51.100.7'));
      expect(e.code).toBe('EPROTO');
      expect(e.message).toContain('without a route');
    });
  });

  it('rejects what is not one lookup before anything is sent', async () => {
    await withClient(resolver, async (rtnl, fake) => {
      const cases: Array<[unknown, Record<string, unknown>, string]> = [
        ['198.51.100.0/24', {}, 'route get.dst'],
        ['default', {}, 'route get.dst'],
        [Uint8Array.from([1, 2, 3]), {}, 'route get.dst'],
        ['198.51.100.7', { src: '2001:db8::1' }, 'route get.src'],
        ['198.51.100.7', { oif: 0 }, 'route get.oif'],
        ['198.51.100.7', { iif: -1 }, 'route get.iif'],
        ['198.51.100.7', { mark: 2 ** 32 }, 'route get.mark'],
        ['198.51.100.7', { uid: 1.5 }, 'route get.uid'],
        ['198.51.100.7', { fibMatch: 'yes' }, 'route get.fibMatch'],
        ['198.51.100.7', { table: 100 }, 'route get.table'],
      ];
      for (const [dst, opts, field] of cases) {
        const e = await rtnl.getRoute(dst as string, opts).then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(e).toBeInstanceOf(NetlinkEncodeError);
        expect((e as NetlinkEncodeError).field).toBe(field);
      }
      expect(fake.requests).toEqual([]);
    });
  });
});
