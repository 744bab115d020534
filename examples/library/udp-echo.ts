/**
 * A user-space UDP echo service on a TUN device, using the library surface `tunkeeper/tun`.
 *
 *   node dist/examples/library/udp-echo.js --netns NAME [--name tk-echo0] [--count N]
 *
 * Opens a TUN device inside the given network namespace, gives it 192.0.2.129/25 (with `ip -n`),
 * and answers every UDP datagram sent to 192.0.2.130 by swapping source and destination. A client
 * inside the namespace sends N datagrams and prints the echoes: packets cross the kernel into
 * JavaScript and back. Run it through `npm run demo`, which makes and removes the namespace.
 */
import { execFileSync, spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Tun } from '../../tun-native/index.js';

const { values } = parseArgs({
  options: {
    netns: { type: 'string' },
    name: { type: 'string', default: 'tk-echo0' },
    count: { type: 'string', default: '3' },
  },
});
if (!values.netns) {
  console.error('usage: udp-echo --netns NAME [--name IFNAME] [--count N]');
  process.exit(1);
}
const netns = values.netns;

/** Internet checksum over a buffer region (RFC 1071). */
function checksum(buf: Buffer, start: number, end: number, initial = 0): number {
  let sum = initial;
  for (let i = start; i + 1 < end; i += 2) sum += buf.readUInt16BE(i);
  if ((end - start) % 2 === 1) sum += buf[end - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Turns an IPv4/UDP request into its reply in place; returns false for anything else. */
function echo(packet: Buffer): boolean {
  if (packet.length < 28 || packet[0]! >> 4 !== 4 || packet[9] !== 17) return false;
  const ihl = (packet[0]! & 0x0f) * 4;
  const src = packet.subarray(12, 16).toString('hex');
  packet.subarray(16, 20).copy(packet, 12);
  Buffer.from(src, 'hex').copy(packet, 16);
  const sport = packet.readUInt16BE(ihl);
  packet.writeUInt16BE(packet.readUInt16BE(ihl + 2), ihl);
  packet.writeUInt16BE(sport, ihl + 2);
  packet.writeUInt16BE(0, ihl + 6); // UDP checksum is optional over IPv4: leave it out
  packet.writeUInt16BE(0, 10);
  packet.writeUInt16BE(checksum(packet, 0, ihl), 10);
  return true;
}

const tun = await Tun.open({ name: values.name, mode: 'tun', mtu: 1400, netns });
console.log(`opened ${tun.name} (ifindex ${tun.ifindex}) in network namespace ${netns}`);
execFileSync('ip', ['-n', netns, 'address', 'add', '192.0.2.129/25', 'dev', tun.name]);
execFileSync('ip', ['-n', netns, 'link', 'set', tun.name, 'up']);

const stop = tun.onPackets((batch) => {
  for (const packet of batch) {
    const copy = Buffer.from(packet);
    if (echo(copy)) tun.writeSync(copy);
  }
});

// The client runs inside the namespace: a plain Node UDP socket, nothing of tunkeeper.
const count = Number(values.count);
const client = `
const s = require('node:dgram').createSocket('udp4');
let got = 0;
s.on('message', (m) => { console.log('  echo: ' + m.toString()); if (++got === ${count}) s.close(); });
s.bind(0, '192.0.2.129', () => { for (let i = 1; i <= ${count}; i++) s.send('hello ' + i, 7, '192.0.2.130'); });
setTimeout(() => { console.error('no echo within 5 s'); process.exit(1); }, 5000).unref();
`;
const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', client], { stdio: 'inherit' });
const code: number = await new Promise((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
stop();
const stats = tun.stats();
console.log(`${tun.name}: read ${stats.packetsRead} packets, wrote ${stats.packetsWritten}, dropped ${stats.dropped}`);
await tun.close();
process.exit(code);
