import { describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../../controller/cli/main.js';
import { loadDeclarations } from '../../../controller/sources/files-load.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const EXAMPLES = join(ROOT, 'examples');
const BAD = join(ROOT, 'test', 'fixtures', 'declarations', 'bad');

async function run(argv: string[]) {
  let out = '';
  let err = '';
  const stdout = { write: (s: string) => ((out += s), true) } as unknown as NodeJS.WritableStream;
  const stderr = { write: (s: string) => ((err += s), true) } as unknown as NodeJS.WritableStream;
  const code = await main(argv, { stdout, stderr });
  return { code, out, err };
}

describe('examples/', () => {
  it('are valid, use tk- names and only documentation addresses', async () => {
    const snapshot = await loadDeclarations([EXAMPLES]);
    expect(snapshot.problems).toEqual([]);
    expect(snapshot.complete).toBe(true);
    expect(snapshot.files.map((f) => f.slice(EXAMPLES.length + 1))).toEqual(['edge-probed.yaml', 'multiqueue-owned.yaml', 'point-to-point.yaml', 'tap-with-mac.yaml']);
    const byName = new Map(snapshot.devices.map((d) => [d.name, d]));
    expect(byName.get('tk-p2p')).toMatchObject({ ifname: 'tk-p2p0', mode: 'tun', mtu: 1420 });
    expect(byName.get('tk-p2p')?.addresses.map((a) => a.family).sort()).toEqual([4, 6]);
    expect(byName.get('tk-tap0')).toMatchObject({ mode: 'tap', macAddress: '00:00:5e:00:53:01' });
    expect(byName.get('tk-mq0')).toMatchObject({ multiQueue: true, owner: 1000, group: 1000 });
    const documentation = /^(192\.0\.2\.|198\.51\.100\.|203\.0\.113\.|198\.1[89]\.|2001:db8:|0\.0\.0\.0$|::$)/;
    for (const d of snapshot.devices) {
      expect(d.ifname.startsWith('tk-')).toBe(true);
      for (const a of d.addresses) expect(a.address).toMatch(documentation);
      for (const r of d.routes) {
        expect(r.dst).toMatch(documentation);
        if (r.via) expect(r.via).toMatch(documentation);
      }
    }
  });
});

describe('tunkeeper validate', () => {
  it('exits 0 and prints no problem for valid declarations', async () => {
    const r = await run(['validate', '-f', EXAMPLES]);
    expect(r).toEqual({ code: 0, out: '', err: 'valid: 4 TunDevices in 4 files\n' });
  });

  it('exits 1 with one file:line:col line per problem, over several -f', async () => {
    const r = await run(['validate', '-f', join(BAD, 'mtu-too-small.yaml'), '-f', join(EXAMPLES, 'tap-with-mac.yaml'), join(BAD, 'mode-unknown.yaml')]);
    expect(r.code).toBe(1);
    expect(r.out.split('\n')).toEqual([
      `${BAD}/mode-unknown.yaml:6:9: spec.mode: must be one of "tun", "tap", got "tan"`,
      `${BAD}/mtu-too-small.yaml:6:8: spec.mtu: must be from 68 to 65535, got 50 (the kernel accepts 68 to 65535 on a TUN/TAP device; IPv6 needs at least 1280)`,
      '',
    ]);
    expect(r.err).toBe('invalid: 2 problems in 3 files\n');
  });

  it('reports a missing PATH and a directory without declarations', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tunkeeper-validate-'));
    try {
      mkdirSync(join(dir, 'empty'));
      writeFileSync(join(dir, 'empty', 'notes.txt'), 'not a declaration');
      expect(await run(['validate', '-f', join(dir, 'nope')])).toMatchObject({ code: 1, out: `${join(dir, 'nope')}: does not exist\n` });
      expect(await run(['validate', '-f', join(dir, 'empty')])).toMatchObject({ code: 1, out: `${join(dir, 'empty')}: no *.yaml or *.yml files found\n` });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('needs -f', async () => {
    const r = await run(['validate']);
    expect(r.code).toBe(1);
    expect(r.err).toContain("required option '-f, --filename <path...>' not specified");
  });
});
