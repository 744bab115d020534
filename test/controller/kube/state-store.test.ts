/** The on-disk last desired state: round trip, atomic replacement, and files it must not trust. */
import { describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DesiredDevice } from '../../../controller/model/desired.js';
import { addr, device as baseDevice, route } from '../../helpers/devices.js';
import { STATE_FILE_NAME, StateStore } from '../../../controller/kube/state-store.js';

/** A device with one address and one route, so the round trip carries both lists. */
const device = (name: string, extra: Partial<DesiredDevice> = {}): DesiredDevice =>
  baseDevice(name, { mtu: 1420, addresses: [addr('192.0.2.1/24')], routes: [route('198.51.100.0/24', { via: '192.0.2.254' })], ...extra });

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'tk-state-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('StateStore', () => {
  it('reports a missing file as absent', async () => {
    await withDir(async (dir) => {
      expect(await new StateStore(join(dir, 'never')).load('n1')).toEqual({ kind: 'absent' });
    });
  });

  it('round-trips devices and generations, creating the directory', async () => {
    await withDir(async (dir) => {
      const store = new StateStore(join(dir, 'var', 'lib', 'tunkeeper'));
      const devices = [device('a'), device('b', { mode: 'tap', macAddress: '02:00:00:00:00:01', owner: 1000 })];
      await store.save({ node: 'n1', devices, generations: { a: 3, b: 1 } });
      const loaded = await store.load('n1');
      expect(loaded.kind).toBe('loaded');
      if (loaded.kind !== 'loaded') return;
      expect(loaded.state.devices).toEqual(devices);
      expect(loaded.state.generations).toEqual({ a: 3, b: 1 });
      expect(loaded.state.version).toBe(1);
      expect(Number.isNaN(Date.parse(loaded.state.savedAt))).toBe(false);
    });
  });

  it('replaces the file whole and leaves no temporary file behind', async () => {
    await withDir(async (dir) => {
      const store = new StateStore(dir);
      await store.save({ node: 'n1', devices: [device('a')], generations: { a: 1 } });
      await store.save({ node: 'n1', devices: [device('b')], generations: { b: 2 } });
      expect(await readdir(dir)).toEqual([STATE_FILE_NAME]);
      const loaded = await store.load('n1');
      expect(loaded.kind === 'loaded' && loaded.state.devices.map((d) => d.name)).toEqual(['b']);
    });
  });

  it('ignores a corrupt file, saying why', async () => {
    await withDir(async (dir) => {
      const store = new StateStore(dir);
      await store.save({ node: 'n1', devices: [device('a')], generations: { a: 1 } });
      const text = await readFile(store.file, 'utf8');
      await writeFile(store.file, text.slice(0, text.length / 2));
      const loaded = await store.load('n1');
      expect(loaded.kind).toBe('unusable');
      expect(loaded.kind === 'unusable' && loaded.problem).toContain('not valid JSON');
    });
  });

  it('refuses another node\'s file, another format version, and damaged devices', async () => {
    await withDir(async (dir) => {
      const store = new StateStore(dir);
      await store.save({ node: 'n1', devices: [device('a')], generations: { a: 1 } });
      const other = await store.load('n2');
      expect(other.kind === 'unusable' && other.problem).toContain('saved for node "n1", not "n2"');

      const good = JSON.parse(await readFile(store.file, 'utf8')) as Record<string, unknown>;
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ ...good, version: 2 }, 'format version 2 is not 1'],
        [{ ...good, devices: 'x' }, 'has no device list'],
        [{ ...good, devices: [{ ...device('a'), mode: 'tunnel' }] }, 'devices[0].mode is neither tun nor tap'],
        [{ ...good, devices: [{ ...device('a'), mtu: '1500' }] }, 'devices[0].mtu is not an integer'],
        [{ ...good, devices: [{ ...device('a'), routes: undefined }] }, 'devices[0] has no address or route list'],
        [{ ...good, generations: { a: 'one' } }, 'has no generation map'],
        [[] as unknown as Record<string, unknown>, 'not a state object'],
      ];
      for (const [value, problem] of cases) {
        await writeFile(store.file, JSON.stringify(value));
        const r = await store.load('n1');
        expect(r.kind === 'unusable' && r.problem).toContain(problem);
      }
    });
  });
});
