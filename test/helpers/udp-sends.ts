/**
 * UDP sends from 192.0.2.1 to 192.0.2.2 through a TUN device under test, plain or as GSO sends
 * the kernel cuts into datagrams (UDP_SEGMENT), and the datagrams a receiver would see of them.
 * Payload i's byte k is (k + stride * i) & 0xff, so every datagram can be told from the others.
 */
import type { Netns } from './netns.js';
import { until } from './tun-netns.js';

/** A send: a plain datagram of `plain` bytes, or a GSO send of `gso` bytes cut into `size`-byte datagrams. */
export type Send = { plain: number } | { gso: number; size: number };

/** The ports of the flow and the payload stride: tests pick their own, to keep their traffic apart. */
export interface Flow {
  srcPort: number;
  dstPort: number;
  stride: number;
}

// Sends each payload in order from one socket (argv: sends as JSON, source port, destination port, stride).
const SENDER = `
import socket, sys, json
sends, src, dst, stride = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('192.0.2.1', src))
for i, spec in enumerate(sends):
    n = spec.get('plain', spec.get('gso'))
    s.setsockopt(socket.SOL_UDP, 103, spec.get('size', 0))  # UDP_SEGMENT (0: off)
    s.sendto(bytes((k + stride * i) & 0xff for k in range(n)), ('192.0.2.2', dst))
`;

export function payloadOf(flow: Flow, i: number, n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, k) => (k + flow.stride * i) & 0xff));
}

/** The datagrams the receiving side would see of `sends`, in order, leaving out the sends in `skip`. */
export function expectedDatagrams(flow: Flow, sends: Send[], skip: ReadonlySet<number> = new Set()): Buffer[] {
  return sends.flatMap((s, i) => {
    if (skip.has(i)) return [];
    if ('plain' in s) return [payloadOf(flow, i, s.plain)];
    const p = payloadOf(flow, i, s.gso);
    return Array.from({ length: Math.ceil(s.gso / s.size) }, (_, k) => p.subarray(k * s.size, (k + 1) * s.size));
  });
}

/** Packets the device's qdisc handed to the driver (tun counts its own tx only once a reader takes them). */
export async function qdiscPackets(ns: Netns, dev: string): Promise<number> {
  const qdiscs = JSON.parse(await ns.exec('tc', ['-s', '-j', 'qdisc', 'show', 'dev', dev])) as Array<{ packets?: number }>;
  return qdiscs.reduce((n, q) => n + (q.packets ?? 0), 0);
}

/** Sends, then waits until the device took every send into its queue (one packet each). */
export async function queueSends(ns: Netns, dev: string, flow: Flow, sends: Send[]): Promise<void> {
  const before = await qdiscPackets(ns, dev);
  await ns.exec('python3', ['-c', SENDER, JSON.stringify(sends), String(flow.srcPort), String(flow.dstPort), String(flow.stride)]);
  await until(async () => (await qdiscPackets(ns, dev)) >= before + sends.length, `${sends.length} packets queued in ${dev}`);
}
