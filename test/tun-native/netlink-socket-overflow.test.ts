import { execFileSync } from 'node:child_process';
import { expect, it } from '@jest/globals';
import { NetlinkSocket } from '../../tun-native/index.js';
import { withNetns } from '../helpers/netns.js';
import { NLMSG_DONE, RTM_NEWROUTE, RTNLGRP_IPV4_ROUTE, Recorder, parseDone, routeDst, routeDump, type RawMsg } from '../helpers/nlmsg-raw.js';
import { describeKernel } from '../helpers/tiers.js';

function routeScript(verb: 'add' | 'del', count: number): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(`route ${verb} 198.18.${i >> 8}.${i & 255}/32 dev tkt-v0 proto 116`);
  return lines.join('\n') + '\n';
}

/**
 * Makes a change and waits for its notification; undoes and makes it again while none comes. After
 * an overflow the kernel drops every notification for the socket (marked congested, without a new
 * ENOBUFS) until a read finds its queue empty. The overflow is reported before the reader has
 * drained that queue, so on a busy machine the change made right after it can come too early and
 * be dropped: kernel semantics, not a lost wake-up. A socket that stopped receiving for good still
 * fails here, at the test's hang guard.
 */
async function untilNotified(r: Recorder, change: () => Promise<unknown>, undo: () => Promise<unknown>, seen: (m: RawMsg) => boolean): Promise<void> {
  for (;;) {
    const from = r.messages.length;
    await change();
    const arrived = r.until(() => r.messages.slice(from).some(seen)).then(() => true);
    if (await Promise.race([arrived, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 500).unref())])) return;
    await undo();
  }
}

describeKernel('NetlinkSocket receive overflow (ENOBUFS)', () => {
  it('reports a real overflow as overflow(), then still receives events and completes dumps', async () => {
    await withNetns(async (ns) => {
      await ns.ip('link', 'add', 'tkt-v0', 'type', 'veth', 'peer', 'name', 'tkt-v1');
      await ns.ip('link', 'set', 'tkt-v0', 'up');
      await ns.ip('link', 'set', 'tkt-v1', 'up');
      const count = 4000;
      const s = await NetlinkSocket.open({ netns: ns.name, rcvbuf: 4096, groups: [RTNLGRP_IPV4_ROUTE] });
      try {
        // Asked 4096: the kernel doubles it (and has a floor of about 4.5 KiB).
        expect(s.rcvbuf).toBeLessThanOrEqual(16384);
        const r = new Recorder(s);

        // The JS thread is blocked while ip adds the routes, so nothing reads the socket and its
        // few-KiB queue must overflow under thousands of notifications.
        execFileSync('ip', ['-n', ns.name, '-batch', '-'], { input: routeScript('add', count) });
        await r.until(() => r.overflows > 0);
        expect(r.errors).toEqual([]);

        // Still usable: a new change arrives as an event...
        await untilNotified(r, () => ns.ip('route', 'add', '203.0.113.0/24', 'dev', 'tkt-v0'), () => ns.ip('route', 'del', '203.0.113.0/24', 'dev', 'tkt-v0'), (m) => m.type === RTM_NEWROUTE && routeDst(m) === '203.0.113.0/24');

        // ...and a dump (the resync a Monitor does after an overflow) sees every route.
        const callsBefore = r.dataCalls;
        const datagramsBefore = r.datagrams.length;
        s.send(routeDump(99));
        const answers = await r.finished(99);
        expect(parseDone(answers.find((m) => m.type === NLMSG_DONE)!).error).toBe(0);
        const dsts = new Set(answers.filter((m) => m.type === RTM_NEWROUTE).map(routeDst));
        const burst = [...dsts].filter((d) => d?.startsWith('198.18.'));
        expect(burst).toHaveLength(count);
        // The dump came as big datagrams (the reader offers more than 32 KiB per recvmsg, so the
        // kernel fills 32 KiB skbs), drained in fewer wake-ups than datagrams.
        const dumpDatagrams = r.datagrams.slice(datagramsBefore);
        expect(dumpDatagrams.length).toBeGreaterThan(1);
        expect(Math.max(...dumpDatagrams.map((d) => d.length))).toBeGreaterThan(16384);
        expect(r.dataCalls - callsBefore).toBeLessThan(dumpDatagrams.length);

        // An overflow while stopped is reported when receiving resumes; the socket was not read
        // in between, so the kernel could only drop.
        s.stop();
        const overflowsBefore = r.overflows;
        await ns.exec('ip', ['-batch', '-'], { input: routeScript('del', count) });
        const r2 = new Recorder(s); // start() again, with fresh handlers
        await r2.until(() => r2.overflows > 0);
        expect(r.overflows).toBe(overflowsBefore);
        await untilNotified(r2, () => ns.ip('route', 'del', '203.0.113.0/24', 'dev', 'tkt-v0'), () => ns.ip('route', 'add', '203.0.113.0/24', 'dev', 'tkt-v0'), (m) => routeDst(m) === '203.0.113.0/24');
        expect(r2.errors).toEqual([]);
      } finally {
        s.close();
      }
    });
  });
});
