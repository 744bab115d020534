/** The Monitor on the fake socket: decoded events, resync-needed on overflow, closing on unsubscribe. */
import { describe, expect, it } from '@jest/globals';
import { firstValueFrom, take, toArray } from 'rxjs';
import { Monitor, eventJson, formatEvent, type MonitorEvent } from '../../netlink/index.js';
import { FakeNetlinkSocket } from '../../netlink/testing/index.js';
import * as K from '../../netlink/constants/index.js';

describe('Monitor on the fake socket', () => {
  it('emits decoded events with type and op, the object spread in', async () => {
    const fake = new FakeNetlinkSocket();
    const monitor = await Monitor.open({ transport: fake });
    const events = firstValueFrom(monitor.pipe(take(5), toArray()));
    fake.emit('new', { kind: 'link', body: { ifindex: 5, ifname: 'tk0', mtu: 1420, flags: K.IFF_UP, linkInfo: { kind: 'tun' } } });
    fake.emit('new', { kind: 'address', body: { family: K.AF_INET, prefixLen: 24, ifindex: 5, local: '192.0.2.1', address: '192.0.2.1' } });
    // Two notifications in one datagram.
    fake.emit(
      'del',
      { kind: 'route', body: { family: K.AF_INET, dstLen: 24, headerTable: 100, table: 100, protocol: 116, type: K.RTN_UNICAST, dst: '198.51.100.0', oif: 5 } },
      { kind: 'neighbour', body: { family: K.AF_INET, ifindex: 5, state: K.NUD_REACHABLE, type: 1, dst: '192.0.2.2', lladdr: '02:00:00:00:00:02' } },
    );
    fake.emit('new', { kind: 'rule', body: { family: K.AF_INET, action: K.FR_ACT_TO_TBL, table: 100, priority: 1000 } });
    const got = await events;
    expect(got.map((e) => [e.type, e.type === 'resync-needed' ? '' : e.op])).toEqual([
      ['link', 'new'],
      ['address', 'new'],
      ['route', 'del'],
      ['neighbour', 'del'],
      ['rule', 'new'],
    ]);
    expect(got[0]).toMatchObject({ type: 'link', op: 'new', ifindex: 5, ifname: 'tk0', mtu: 1420 });
    // The route's own rtm_type survives as routeType; `type` names the event.
    expect(got[2]).toMatchObject({ type: 'route', op: 'del', routeType: K.RTN_UNICAST, dst: '198.51.100.0', table: 100, protocol: 116 });
    expect(got[3]).toMatchObject({ type: 'neighbour', neighbourType: 1, dst: '192.0.2.2', lladdr: '02:00:00:00:00:02' });
    // take(5) unsubscribed the only subscriber: the socket is closed.
    expect(fake.closed).toBe(true);
    expect(monitor.closed).toBe(true);
  });

  it('emits resync-needed on ENOBUFS and keeps emitting events afterwards', async () => {
    const fake = new FakeNetlinkSocket();
    const monitor = await Monitor.open({ transport: fake });
    const events = firstValueFrom(monitor.pipe(take(3), toArray()));
    fake.emit('new', { kind: 'link', body: { ifindex: 1, ifname: 'lo' } });
    await fake.drained();
    fake.injectOverflow();
    await fake.drained();
    fake.emit('del', { kind: 'link', body: { ifindex: 9, ifname: 'tk9' } });
    const got = await events;
    expect(got.map((e) => e.type)).toEqual(['link', 'resync-needed', 'link']);
    expect(got[1]).toEqual({ type: 'resync-needed' });
    expect(eventJson(got[1]!)).toBe('{"type":"resync-needed"}');
  });

  it('asks for a resync when a notification cannot be decoded, instead of dying', async () => {
    const fake = new FakeNetlinkSocket();
    const monitor = await Monitor.open({ transport: fake });
    const events = firstValueFrom(monitor.pipe(take(2), toArray()));
    // A message header claiming more bytes than the datagram has.
    const bad = Buffer.alloc(20);
    bad.writeUInt32LE(64, 0);
    bad.writeUInt16LE(K.RTM_NEWLINK, 4);
    fake.emitRaw(bad);
    fake.emit('new', { kind: 'link', body: { ifindex: 3, ifname: 'tk3' } });
    const got = await events;
    expect(got.map((e) => e.type)).toEqual(['resync-needed', 'link']);
  });

  it('shares one socket between subscribers and closes it with the last one; a closed Monitor errors', async () => {
    const fake = new FakeNetlinkSocket();
    const monitor = await Monitor.open({ transport: fake });
    const a: MonitorEvent[] = [];
    const b: MonitorEvent[] = [];
    const sa = monitor.subscribe((e) => a.push(e));
    const sb = monitor.subscribe((e) => b.push(e));
    fake.emit('new', { kind: 'link', body: { ifindex: 2, ifname: 'x' } });
    await fake.drained();
    expect(a).toHaveLength(1);
    expect(b).toHaveLength(1);
    sa.unsubscribe();
    expect(fake.closed).toBe(false);
    sb.unsubscribe();
    expect(fake.closed).toBe(true);
    await expect(firstValueFrom(monitor)).rejects.toThrow(/closed/);
  });

  it('formats events as one line of text or of JSON without codec bookkeeping', () => {
    const route: MonitorEvent = {
      type: 'route',
      op: 'new',
      routeType: K.RTN_UNICAST,
      family: K.AF_INET,
      dstLen: 24,
      srcLen: 0,
      tos: 0,
      headerTable: 100,
      table: 100,
      protocol: 116,
      scope: 0,
      flags: 0,
      dst: '198.51.100.0',
      gateway: '192.0.2.254',
      oif: 5,
      metric: 10,
      attrOrder: [15, 1],
      rawAttrs: [{ type: 99, data: new Uint8Array([1, 2]) }],
    };
    expect(formatEvent(route)).toBe('new route 198.51.100.0/24 inet table 100 proto 116 type unicast via 192.0.2.254 ifindex 5 metric 10');
    const json = JSON.parse(eventJson(route)) as Record<string, unknown>;
    expect(json).toMatchObject({ type: 'route', op: 'new', dst: '198.51.100.0', table: 100, routeType: 1 });
    expect(json.attrOrder).toBeUndefined();
    expect(json.rawAttrs).toBeUndefined();
  });
});
