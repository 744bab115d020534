/**
 * Helpers for the tun tests: UDP peers inside a test namespace (small node child processes run
 * with `ip netns exec`), node child processes that load the compiled library, and waiting for a
 * matching packet with a hang guard (a guard, not a timing assertion).
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import type { Netns } from './netns.js';

/** The compiled library, for child processes: dist/tun-native/index.js. */
export const tunModuleUrl = new URL('../../tun-native/index.js', import.meta.url).href;

export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs an ES module script in a fresh node process (optionally inside a namespace, and with extra
 * node flags). A hang guard kills it (by its pid) after `guardMs`; the result then shows SIGKILL.
 */
export function runNode(
  script: string,
  // With -e, the script sees its arguments from process.argv[1] on.
  opts: { args?: string[]; nodeFlags?: string[]; netns?: string; guardMs?: number; wrapper?: string[] } = {},
): Promise<ChildResult> {
  const nodeArgs = [...(opts.nodeFlags ?? []), '--input-type=module', '-e', script, '--', ...(opts.args ?? [])];
  let cmd = process.execPath;
  let args = nodeArgs;
  if (opts.wrapper) {
    args = [...opts.wrapper.slice(1), cmd, ...args];
    cmd = opts.wrapper[0] as string;
  }
  if (opts.netns) {
    args = ['netns', 'exec', opts.netns, cmd, ...args];
    cmd = 'ip';
  }
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const guard = setTimeout(() => child.kill('SIGKILL'), opts.guardMs ?? 60000);
    child.on('error', (e) => {
      clearTimeout(guard);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const LISTENER = `
import dgram from 'node:dgram';
const [family, address, port, count, guardMs] = process.argv.slice(1);
const sock = dgram.createSocket(family === '6' ? 'udp6' : 'udp4');
let left = Number(count);
const guard = setTimeout(() => process.exit(3), Number(guardMs));
sock.on('message', (msg, rinfo) => {
  process.stdout.write(JSON.stringify({ from: rinfo.address, port: rinfo.port, hex: msg.toString('hex') }) + '\\n');
  if (--left === 0) { clearTimeout(guard); sock.close(); }
});
sock.bind(Number(port), address, () => process.stdout.write('ready\\n'));
`;

export interface Datagram {
  from: string;
  port: number;
  payload: Buffer;
}

export interface UdpListener {
  /** Resolves once the socket is bound. */
  ready: Promise<void>;
  /** Resolves with the datagrams once `count` arrived; rejects if the guard fired first. */
  received: Promise<Datagram[]>;
}

/** A UDP socket bound to address:port inside the namespace, collecting `count` datagrams. */
export function udpListen(ns: Netns, address: string, port: number, count = 1, guardMs = 30000): UdpListener {
  const family = address.includes(':') ? '6' : '4';
  const child = spawn(
    'ip',
    ['netns', 'exec', ns.name, process.execPath, '--input-type=module', '-e', LISTENER, '--', family, address, String(port), String(count), String(guardMs)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('ready\n')) markReady();
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const received = new Promise<Datagram[]>((resolve, reject) => {
    child.on('close', (code) => {
      const lines = out.split('\n').filter((l) => l.startsWith('{'));
      const datagrams = lines.map((l) => {
        const j = JSON.parse(l) as { from: string; port: number; hex: string };
        return { from: j.from, port: j.port, payload: Buffer.from(j.hex, 'hex') };
      });
      if (code === 0) resolve(datagrams);
      else reject(new Error(`UDP listener on ${address}:${port} in ${ns.name} ended with ${code} after ${datagrams.length} datagram(s): ${err.trim()}`));
      markReady();
    });
  });
  return { ready, received };
}

const SENDER = `
import dgram from 'node:dgram';
const [family, to, port, bindAddr, bindPorts, hexPayloads, repeat] = process.argv.slice(1);
const payloads = hexPayloads.split(',').map((h) => Buffer.from(h, 'hex'));
const socks = [];
for (const bindPort of bindPorts.split(',').map(Number)) {
  const sock = dgram.createSocket(family === '6' ? 'udp6' : 'udp4');
  await new Promise((r) => (bindAddr ? sock.bind(bindPort, bindAddr, r) : sock.bind(bindPort, r)));
  socks.push(sock);
}
let inFlight = 0;
for (let i = 0; i < Number(repeat); i++) {
  for (const sock of socks) {
    for (const p of payloads) {
      inFlight++;
      sock.send(p, Number(port), to, () => inFlight--);
      // Keep the sockets' queues short so a flood does not fail with ENOBUFS.
      if (inFlight > 256) await new Promise((r) => setImmediate(r));
    }
  }
}
while (inFlight > 0) await new Promise((r) => setImmediate(r));
for (const sock of socks) sock.close();
`;

/**
 * Sends UDP datagrams from inside the namespace: each payload `repeat` times, to to:port, from
 * bind address and port(s) if given (one socket per source port).
 */
export async function udpSend(
  ns: Netns,
  to: string,
  port: number,
  payloads: Buffer[],
  opts: { bindAddress?: string; bindPort?: number | number[]; repeat?: number } = {},
): Promise<void> {
  const family = to.includes(':') ? '6' : '4';
  const ports = Array.isArray(opts.bindPort) ? opts.bindPort : [opts.bindPort ?? 0];
  const args = [family, to, String(port), opts.bindAddress ?? '', ports.join(','), payloads.map((p) => p.toString('hex')).join(','), String(opts.repeat ?? 1)];
  const r = await runNode(SENDER, { netns: ns.name, args });
  if (r.code !== 0) throw new Error(`UDP sender in ${ns.name} failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
}

/** Resolves with the first item of the iterator that matches, or rejects when the guard fires. */
export async function firstMatching<T>(it: AsyncIterator<T>, match: (v: T) => boolean, guardMs = 30000, what = 'a matching packet'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), guardMs);
  });
  try {
    for (;;) {
      const r = await Promise.race([it.next(), guard]);
      if (r.done) throw new Error(`the packet iterator ended before ${what} arrived`);
      if (match(r.value)) return r.value;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until check() is true, polling; the guard only prevents hangs. */
export async function until(check: () => boolean | Promise<boolean>, what: string, guardMs = 30000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > guardMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface LinkJson {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

/** `ip -d link show dev NAME` in the namespace, parsed; undefined if the device does not exist. */
export async function linkDetails(ns: Netns, name: string): Promise<LinkJson | undefined> {
  const links = await ns.ipJson<LinkJson[]>('-d', 'link', 'show');
  return links.find((l) => l.ifname === name);
}

/** Puts an address on the device and brings it up (IPv6 without DAD, so it is usable at once). */
export async function addressUp(ns: Netns, name: string, ...cidrs: string[]): Promise<void> {
  for (const cidr of cidrs) {
    await ns.ip('addr', 'add', cidr, 'dev', name, ...(cidr.includes(':') ? ['nodad'] : []));
  }
  await ns.ip('link', 'set', name, 'up');
}
