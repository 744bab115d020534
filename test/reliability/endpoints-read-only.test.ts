/**
 * Least privilege, the agent's network surface (issue #6 item 11): what anyone who can reach the
 * metrics port can do. The endpoints are /metrics, /healthz and /readyz, GET and HEAD only; every
 * other method and path, odd and hostile ones included, is refused, nothing in the kernel changes,
 * and the agent keeps reconciling. (The container's capabilities and the RBAC verbs are checked
 * in test/chart/ against the rendered chart and a real API server.)
 */
import { expect, it } from '@jest/globals';
import { request } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withNetns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { Agent, eventually, sample, tunDeviceYaml } from './helpers/agent.js';

const DEVICE = { name: 'ro0', ifname: 'tk-ro0', mtu: 1400, addresses: ['192.0.2.1/24'], routes: ['198.51.100.0/24'] };

function send(url: string, method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({ host: u.hostname, port: u.port, method, path, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const METHODS = ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND'];
const PATHS = ['/metrics', '/healthz', '/readyz', '/', '/debug/pprof', '/apply', '/reconcile', '/../../etc/shadow', '/metrics?name[]=x', `/${'a'.repeat(8000)}`];

describeKernel('least privilege: the metrics and health endpoints change nothing', () => {
  it('refuses every method but GET/HEAD on every path, answers only the three paths, and the kernel state stays as it was', async () => {
    await withNetns(async (ns) => {
      const dir = await mkdtemp(join(tmpdir(), 'tk-ro-'));
      await writeFile(join(dir, 'devices.yaml'), tunDeviceYaml(DEVICE));
      const agent = new Agent(['-f', dir, '--netns', ns.name]);
      try {
        const snapshot = async () => JSON.stringify([await ns.ipJson('-d', 'link', 'show', 'tk-ro0'), await ns.ipJson('route', 'show', 'proto', '116')]);
        // The pass that made the device has ended (it reports the device ready), not only reached its
        // route: the snapshot below must not catch the device halfway.
        await eventually(agent.p, 'the declared device, reported ready', async () =>
          (await ns.ip('route', 'show', 'proto', '116')).includes('198.51.100.0/24') && sample(await agent.metrics(), 'tunkeeper_managed_devices', 'status="ready"') === 1 ? true : undefined,
        );
        const url = await agent.url();
        const before = await snapshot();
        let tried = 0;
        for (const path of PATHS) {
          for (const method of METHODS) {
            const r = await send(url, method, path, method === 'POST' || method === 'PUT' ? '{"spec":{"mtu":68}}' : undefined);
            tried++;
            expect({ method, path: path.slice(0, 40), status: r.status }).toEqual({ method, path: path.slice(0, 40), status: 405 });
          }
          const get = await send(url, 'GET', path);
          tried++;
          const known = ['/metrics', '/healthz', '/readyz'].includes(path.split('?')[0]!);
          expect({ path: path.slice(0, 40), ok: get.status === 200 }).toEqual({ path: path.slice(0, 40), ok: known });
          if (!known) expect(get.status).toBe(404);
        }
        expect(tried).toBe(PATHS.length * (METHODS.length + 1));
        // What is exposed carries no credentials or file contents.
        const metrics = (await send(url, 'GET', '/metrics')).body;
        expect(metrics).not.toMatch(/token|BEGIN [A-Z ]*KEY|password/i);
        expect(await snapshot()).toBe(before);
        // The agent still does its job afterwards.
        await ns.ip('link', 'set', 'dev', 'tk-ro0', 'mtu', '1300');
        await eventually(agent.p, 'the MTU repaired', async () => ((await ns.ip('link', 'show', 'tk-ro0')).includes('mtu 1400') ? true : undefined));
      } finally {
        agent.p.kill('SIGTERM');
        await agent.p.exited;
        await rm(dir, { recursive: true, force: true });
      }
    }, 'rel-ro');
  });
});
