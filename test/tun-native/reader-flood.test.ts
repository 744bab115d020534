/**
 * Under a continuous flood the reader must keep waking the JS thread: a reader that never goes
 * idle (the fd never drains) wakes JS once enough batches have piled up, not only when it runs out
 * of packets. (A regression once made it wake JS only on drain: under a flood JS starved.)
 *
 * No clock: senders that only stop when told keep the device's queue deep (UDP GSO sends of 64
 * datagrams each, segmented by the kernel since the device takes no offload; a socket send buffer
 * and device queue large enough that the backlog outlasts a sender's pause of many milliseconds),
 * so the reader keeps finding packets. The test waits until its callback has counted N packets,
 * and only then stops the senders: if JS is not woken while the reader is busy, N never arrives
 * and the hang guard fails the test. (A JS thread that is not woken leaves the CPU to the senders,
 * which then outrun the reader for good: with the old bug brought back, the plain case starved
 * until the guard.) That the senders were still running when N arrived is asserted, and stats()
 * is checked against what the callback saw and against the device's own count of packets taken
 * from its queue.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { expect, it } from '@jest/globals';
import { Tun } from '../../tun-native/index.js';
import { type Netns, withNetns } from '../helpers/netns.js';
import { parseUdp } from '../helpers/packets.js';
import { describeKernel } from '../helpers/tiers.js';
import { addressUp, until } from '../helpers/tun-netns.js';

const SEGMENTS = 64; // datagrams per GSO send
const PAYLOAD = 64;
const WIRE_LENGTH = 20 + 8 + PAYLOAD;
/** Packets the callback must count while the flood runs: many times what the ring holds. */
const WANT = 100000;
/** Sender processes: together they outrun the reader whenever JS leaves them the CPU. */
const SENDERS = 2;
/** Above the flood's hang guard (100 s) plus the accounting wait, so a guard fails first, with its message. */
const FLOOD_TEST_MS = 240_000;

// Floods until killed, or for at most 150 s (SIGALRM ends it): a test stopped by jest's timeout
// never reaches its finally, and a flood left running would starve every test after it.
// SO_SNDBUFFORCE (root): the default send buffer would hold only a few hundred packets in flight,
// so the sender would wait on the reader and the queue stay shallow.
const FLOOD = `
import signal, socket, sys
signal.alarm(150)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 32, 64 << 20)  # SO_SNDBUFFORCE
s.setsockopt(socket.SOL_UDP, 103, ${PAYLOAD})  # UDP_SEGMENT
s.bind(('192.0.2.1', int(sys.argv[1])))
data = bytes(range(${PAYLOAD})) * ${SEGMENTS}
print('running', flush=True)
while True:
    try:
        s.sendto(data, ('192.0.2.2', 5030))
    except OSError:
        pass
`;

/** The device's tx counter: packets (super-packets, on an offloaded device) a reader took. */
async function txTaken(ns: Netns, dev: string): Promise<number> {
  const links = await ns.ipJson<Array<{ stats64: { tx: { packets: number } } }>>('-s', 'link', 'show', 'dev', dev);
  return links[0]!.stats64.tx.packets;
}

function startSender(ns: Netns, port: number): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', ns.name, 'python3', '-c', FLOOD, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the flood ended before it began (exit ${code})`)));
    child.stdout!.once('data', () => resolve(child));
  });
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

async function stopSender(child: ChildProcess): Promise<void> {
  if (!running(child)) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM'); // our own child, by its pid (ip netns exec execs python in place)
  await exited;
}

async function flood(ns: Netns, dev: string, segment: boolean): Promise<void> {
  await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  const tun = await Tun.open({ name: dev, netns: ns.name, ...(segment ? { vnetHdr: true, offload: 'auto' as const } : {}) });
  const senders: ChildProcess[] = [];
  try {
    // The device's queue holds the backlog (tun's ring is txqueuelen long): a super-packet is
    // 64 packets, so fewer of them make as deep a queue.
    await ns.ip('link', 'set', 'dev', dev, 'txqueuelen', segment ? '4096' : '32768');
    await addressUp(ns, dev, '192.0.2.1/24');
    if (segment) expect(tun.offload?.uso4).toBe(true);

    let seen = 0;
    let batches = 0;
    let badLength = 0;
    let statsMismatch = 0;
    let floodingAtWant: boolean | undefined;
    const firstPackets: Buffer[] = [];
    const stop = tun.onBatches(
      (b) => {
        batches++;
        for (let i = 0; i < b.count; i++) if (b.lengths[i] !== WIRE_LENGTH) badLength++;
        if (firstPackets.length === 0) for (let i = 0; i < b.count; i++) firstPackets.push(b.copy(i));
        seen += b.count;
        // The native side counts a batch before handing it over.
        if (tun.stats().packetsRead !== seen) statsMismatch++;
        if (floodingAtWant === undefined && seen >= WANT && senders.length === SENDERS) floodingAtWant = senders.every(running);
      },
      { segment },
    );
    try {
      for (let i = 0; i < SENDERS; i++) senders.push(await startSender(ns, 4030 + i));
      // A hang guard only (below jest's own): with JS starved while the reader is busy, this
      // never comes true.
      await until(() => floodingAtWant !== undefined, `${WANT} packets while the flood runs`, 100000);
      for (const child of senders) await stopSender(child);
      // Everything the device handed over is either delivered or counted dropped, once the
      // reader has caught up with what was queued when the sender stopped.
      const perRead = segment ? SEGMENTS : 1;
      await until(async () => {
        const s = tun.stats();
        return s.packetsRead + s.dropped === perRead * (await txTaken(ns, dev));
      }, 'the reader to account for every packet the device handed over');
    } finally {
      stop();
    }
    expect(floodingAtWant).toBe(true);
    expect(seen).toBeGreaterThanOrEqual(WANT);
    expect(badLength).toBe(0);
    expect(statsMismatch).toBe(0);
    const stats = tun.stats();
    expect(stats.packetsRead).toBe(seen);
    expect(stats.batches).toBe(batches);
    expect(stats.malformed).toBe(0);
    expect(stats.packetsRead + stats.dropped).toBe((segment ? SEGMENTS : 1) * (await txTaken(ns, dev)));
    // A segmenting reader splits each super-packet it keeps into all of its datagrams.
    if (segment) expect(stats.superPackets * SEGMENTS).toBe(stats.packetsRead);
    const udp = firstPackets.map((p) => parseUdp(p));
    expect(udp.length).toBeGreaterThan(0);
    for (const d of udp) expect([4030, 4031]).toContain(d?.srcPort);
    for (const d of udp) expect(d).toMatchObject({ checksumsOk: true, dstPort: 5030, payload: Buffer.from(Array.from({ length: PAYLOAD }, (_, k) => k)) });
  } finally {
    for (const child of senders) await stopSender(child);
    await tun.close();
  }
}

describeKernel('a reader under a continuous flood keeps waking JS', () => {
  it('plain reader: batches arrive while the flood runs; stats match the callback and the device', () => withNetns((ns) => flood(ns, 'tkfl0', false)), FLOOD_TEST_MS);

  it('segmenting reader: the same with GSO super-packets split on the reader thread', () => withNetns((ns) => flood(ns, 'tkfl1', true)), FLOOD_TEST_MS);
});
