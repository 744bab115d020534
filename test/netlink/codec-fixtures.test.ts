/**
 * Golden fixtures captured from the real kernel (test/fixtures/netlink/capture.py): every
 * datagram decodes to the pinned objects and re-encodes to exactly the bytes the kernel sent.
 */
import { describe, expect, it } from '@jest/globals';
import { decodeMessages, encodeMessages, type RtnlMessage } from '../../netlink/codec/index.js';
import { NLM_F_DUMP_FILTERED, NLM_F_MULTI } from '../../netlink/constants/index.js';
import { fixtureNames, hexBuffers, loadExpected, loadFixture } from '../fixtures/netlink/fixtures.js';

const names = fixtureNames();

describe('kernel fixtures', () => {
  it('cover every scenario the codec promises', () => {
    expect(names).toEqual(
      expect.arrayContaining([
        'ack',
        'addresses',
        'addresses-filtered',
        'errors',
        'events',
        'link-get',
        'links',
        'links-kind-tun',
        'neighbours',
        'routes-filtered',
        'routes-oif',
        'routes-v4',
        'routes-v6',
        'rules',
      ]),
    );
  });

  describe.each(names)('%s', (name) => {
    const fx = loadFixture(name);
    const expected = loadExpected(name);
    const datagrams = hexBuffers(fx.datagrams);

    it('records how its state was made', () => {
      expect(fx.setup.length).toBeGreaterThan(10);
      expect(fx.setup.every((c) => c.startsWith('ip '))).toBe(true);
      expect(fx.description.length).toBeGreaterThan(0);
    });

    it('decodes to the expected objects', () => {
      expect(datagrams.map((d) => decodeMessages(d))).toEqual(expected.datagrams);
      if (fx.dumps !== undefined) expect(hexBuffers(fx.dumps).map((d) => decodeMessages(d))).toEqual(expected.dumps);
    });

    it('re-encodes every datagram byte for byte', () => {
      for (const d of [...datagrams, ...hexBuffers(fx.dumps)]) {
        expect(encodeMessages(decodeMessages(d)).toString('hex')).toBe(d.toString('hex'));
      }
    });

    it('re-encodes the hand-built requests byte for byte', () => {
      for (const r of hexBuffers(fx.requests)) expect(encodeMessages(decodeMessages(r)).toString('hex')).toBe(r.toString('hex'));
    });

    it('answers each request with its sequence number', () => {
      if (name === 'events') return; // events carry seq 0 (or the seq of the ip command's request)
      const seqs = new Set(hexBuffers(fx.requests).map((r) => r.readUInt32LE(8)));
      for (const m of datagrams.flatMap((d) => decodeMessages(d))) expect(seqs.has(m.header.seq)).toBe(true);
    });
  });
});

describe('dump replies', () => {
  const all = (name: string): RtnlMessage[] => hexBuffers(loadFixture(name).datagrams).flatMap((d) => decodeMessages(d));

  it('end with NLMSG_DONE carrying errno 0, every part flagged NLM_F_MULTI', () => {
    for (const name of ['links', 'addresses', 'routes-v4', 'routes-v6', 'neighbours', 'rules']) {
      const msgs = all(name);
      const last = msgs[msgs.length - 1]!;
      expect(last.kind).toBe('done');
      if (last.kind === 'done') expect(last.body.errno).toBe(0);
      for (const m of msgs) expect(m.header.flags & NLM_F_MULTI).toBe(NLM_F_MULTI);
    }
  });

  it('come flagged NLM_F_DUMP_FILTERED when strict checking applied the filter', () => {
    for (const name of ['routes-filtered', 'routes-oif', 'addresses-filtered', 'links-kind-tun']) {
      const data = all(name).filter((m) => m.kind !== 'done');
      expect(data.length).toBeGreaterThan(0);
      for (const m of data) expect(m.header.flags & NLM_F_DUMP_FILTERED).toBe(NLM_F_DUMP_FILTERED);
    }
  });

  it('filter as asked: table 1000 / protocol 116, table 100 / oif, one family and link, kind tun', () => {
    for (const m of all('routes-filtered')) {
      if (m.kind !== 'route') continue;
      expect([m.body.table, m.body.protocol, m.body.family]).toEqual([1000, 116, 2]);
    }
    const routesOif = all('routes-oif').filter((m) => m.kind === 'route');
    expect(routesOif.length).toBeGreaterThan(0);
    for (const m of routesOif) if (m.kind === 'route') expect([m.body.table, m.body.family]).toEqual([100, 10]);
    const addrs = all('addresses-filtered').filter((m) => m.kind === 'address');
    expect(new Set(addrs.map((m) => (m.kind === 'address' ? `${m.body.family}/${m.body.ifindex}` : ''))).size).toBe(1);
    const links = all('links-kind-tun').filter((m) => m.kind === 'link');
    expect(links.map((m) => (m.kind === 'link' ? m.body.linkInfo?.kind : undefined))).toEqual(['tun', 'tun']);
  });
});
