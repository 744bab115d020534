import { execFileSync } from 'node:child_process';
import { expect, it } from '@jest/globals';
import { NetlinkSocket } from '../../tun-native/index.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { NLMSG_DONE, Recorder, linkDump } from '../helpers/nlmsg-raw.js';
import { describeKernel } from '../helpers/tiers.js';

// The kernel never sends datagrams this large on rtnetlink, so a second, user-space netlink
// socket (python3, in the same namespace) sends them: datagram i is one message of type 0x1000,
// seq i, filled with the byte i & 0xff.
const SENDER = `
import socket, struct, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
s.setsockopt(socket.SOL_SOCKET, 32, 64 << 20)  # SO_SNDBUFFORCE: one datagram may be this big
s.bind((0, 0))
for i, n in enumerate(int(x) for x in sys.argv[2].split(',')):
    s.sendto(struct.pack('=IHHII', n, 0x1000, 0, i, 0) + bytes([i & 0xff]) * (n - 16), (port, 0))
`;

/** Sends datagrams of the given sizes to `port`, blocking the JS thread so that they all queue up. */
function sendFromUserSpace(ns: Netns, port: number, sizes: number[]): void {
  execFileSync('ip', ['netns', 'exec', ns.name, 'python3', '-c', SENDER, String(port), sizes.join(',')]);
}

function checkDatagram(d: Buffer, i: number, size: number): void {
  expect({ i, length: d.length }).toEqual({ i, length: size });
  expect(d.readUInt16LE(4)).toBe(0x1000);
  expect(d.readUInt32LE(8)).toBe(i);
  // Every byte of the body arrived, none cut or shifted (a spilled datagram is joined back).
  expect(d.indexOf(Buffer.from([~i & 0xff]), 16)).toBe(-1);
  expect(d[16]).toBe(i & 0xff);
  expect(d[d.length - 1]).toBe(i & 0xff);
}

describeKernel('NetlinkSocket datagram delivery', () => {
  it('delivers datagrams of any size whole, and reports one too big to receive instead of truncating it', async () => {
    await withNetns(async (ns) => {
      const s = await NetlinkSocket.open({ netns: ns.name, kernelOnly: false, rcvbuf: 32 << 20 });
      try {
        const r = new Recorder(s);
        // 33 datagrams nearly fill the first 2 MiB batch, so the 200 kB one lands partly in the
        // spill area; the 5 MiB one is bigger than a whole batch; the 7 MiB one exceeds what a
        // receive offers at all (batch room + spill) and cannot be delivered whole.
        const sizes = [...Array.from({ length: 33 }, () => 60000), 200000, 5 << 20, 7 << 20, 100];
        sendFromUserSpace(ns, s.portId, sizes);
        await r.until(() => r.datagrams.length === sizes.length - 1);
        const expected = sizes.map((size, i) => ({ size, i })).filter(({ size }) => size !== 7 << 20);
        expected.forEach(({ size, i }, k) => checkDatagram(r.datagrams[k]!, i, size));
        expect(r.errors).toHaveLength(1);
        expect(r.errors[0]!.code).toBe('EMSGSIZE');
        expect(r.errors[0]!.message).toContain(`a datagram of ${7 << 20} bytes, too large to receive whole, was dropped`);
        expect(r.overflows).toBe(0);
      } finally {
        s.close();
      }
    });
  });

  it('drops datagrams that do not come from the kernel unless told otherwise', async () => {
    await withNetns(async (ns) => {
      const s = await NetlinkSocket.open({ netns: ns.name });
      try {
        const r = new Recorder(s);
        sendFromUserSpace(ns, s.portId, [64, 64]);
        // The kernel's answer is queued after the spoofed datagrams: once it is in, they were seen
        // (and dropped) if they were going to be.
        s.send(linkDump(5));
        const answers = await r.finished(5);
        expect(answers.some((m) => m.type === NLMSG_DONE)).toBe(true);
        expect(r.messages.filter((m) => m.type === 0x1000)).toHaveLength(0);
        expect(r.messages.every((m) => m.pid === s.portId)).toBe(true);
      } finally {
        s.close();
      }
    });
  });
});
