/**
 * The API server as a node reaches it: from the node's network namespace, over a link. The test
 * cluster's kube-apiserver listens on the host's loopback; this makes a second namespace (the
 * "API" side), joins it to the node's namespace by a veth pair made inside the two namespaces,
 * and runs a relay there (api-relay-main.ts) that carries connections to the API server through a
 * Unix socket. Nothing is added to the host's namespace. close() ends the relay by its pid and
 * deletes the API namespace (the veth goes with it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNetns, type Netns } from '../helpers/netns.js';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The node's and the API side's addresses on the veth (a benchmarking range, as every test address). */
export const NODE_ADDRESS = '198.18.1.1';
export const API_ADDRESS = '198.18.1.2';
export const API_PORT = 443;

export interface ApiRelay {
  address: string;
  port: number;
  close(): Promise<void>;
}

export async function startApiRelay(node: Netns, upstream: { host: string; port: number }): Promise<ApiRelay> {
  const api = await createNetns('api');
  const dir = mkdtempSync(join(tmpdir(), 'tunkeeper-api-relay-'));
  const socketPath = join(dir, 'api.sock');
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let relay: ChildProcess | undefined;
  const close = async () => {
    if (relay && relay.exitCode === null && relay.signalCode === null && relay.pid !== undefined) {
      const gone = new Promise((r) => relay!.once('exit', r));
      relay.kill('SIGTERM');
      await gone;
    }
    for (const s of sockets) s.destroy();
    if (server) await new Promise<void>((r) => server!.close(() => r()));
    await api.delete();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const veth = `tkv${node.name.slice(-6)}`;
    await node.ip('link', 'add', `${veth}n`, 'type', 'veth', 'peer', 'name', `${veth}a`, 'netns', api.name);
    await node.ip('addr', 'add', `${NODE_ADDRESS}/30`, 'dev', `${veth}n`);
    await node.ip('link', 'set', `${veth}n`, 'up');
    await api.ip('addr', 'add', `${API_ADDRESS}/30`, 'dev', `${veth}a`);
    await api.ip('link', 'set', `${veth}a`, 'up');

    server = createServer((client) => {
      const up = connect(upstream.port, upstream.host);
      sockets.add(client).add(up);
      const drop = () => {
        client.destroy();
        up.destroy();
        sockets.delete(client);
        sockets.delete(up);
      };
      client.on('error', drop).on('close', drop);
      up.on('error', drop).on('close', drop);
      client.pipe(up);
      up.pipe(client);
    });
    await new Promise<void>((r) => server!.listen(socketPath, r));

    relay = spawn('nsenter', [`--net=${api.path}`, process.execPath, join(HERE, 'api-relay-main.js'), API_ADDRESS, String(API_PORT), socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    relay.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      relay!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('listening\n')) resolve();
      });
      relay!.once('exit', (code) => reject(new Error(`the API relay exited (${code}) before listening: ${stderr}`)));
    });
    return { address: API_ADDRESS, port: API_PORT, close };
  } catch (e) {
    await close();
    throw e;
  }
}
