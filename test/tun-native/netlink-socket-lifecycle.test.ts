import { execFileSync, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { expect, it } from '@jest/globals';
import { NativeError, NetlinkSocket, isNativeError } from '../../tun-native/index.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { RTM_NEWLINK, RTNLGRP_LINK, Recorder, linkName } from '../helpers/nlmsg-raw.js';
import { describeKernel } from '../helpers/tiers.js';

const facadeUrl = new URL('../../tun-native/index.js', import.meta.url).href;

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

function caught(fn: () => void): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Lets the event loop turn a few times (poll phase included), so pending deliveries happen. */
async function loopTurns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs an ES module script in a fresh node process (argv[2] is the facade's URL, argv[3] the
 * namespace). `onLine` sees each stdout line as it comes, so the test can act on "ready".
 */
function runChild(script: string, ns: Netns, opts: { nodeArgs?: string[]; onLine?: (line: string) => void } = {}): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--input-type=module', '-e', script, facadeUrl, ns.name], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) opts.onLine?.(line);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describeKernel('NetlinkSocket lifecycle', () => {
  it('leaks no file descriptor over many open/start/close cycles', async () => {
    await withNetns(async (ns) => {
      // Warm up once: the first open loads lazily created process-wide resources.
      (await NetlinkSocket.open({ netns: ns.path })).close();
      const before = openFds();
      for (let i = 0; i < 200; i++) {
        const s = await NetlinkSocket.open({ netns: i % 2 ? ns.path : ns.name, groups: [RTNLGRP_LINK, 37] });
        if (i % 3 !== 0) s.start({ data() {}, overflow() {}, error() {} });
        s.close();
      }
      // Failed opens must not leak either.
      for (let i = 0; i < 20; i++) {
        await expect(NetlinkSocket.open({ netns: ns.name, groups: [100000] })).rejects.toThrow(NativeError);
      }
      expect(openFds()).toBe(before);
    });
  });

  it('close() is idempotent and a closed socket refuses work with EBADF', async () => {
    await withNetns(async (ns) => {
      const s = await NetlinkSocket.open({ netns: ns.name });
      expect(s.closed).toBe(false);
      s.start({ data() {}, overflow() {}, error() {} });
      s.close();
      s.close();
      expect(s.closed).toBe(true);
      for (const op of [
        () => s.send(Buffer.alloc(16)),
        () => s.start({ data() {}, overflow() {}, error() {} }),
        () => s.addMembership(RTNLGRP_LINK),
        () => s.dropMembership(RTNLGRP_LINK),
        () => s.memberships(),
      ]) {
        const err = caught(op);
        expect(isNativeError(err, 'EBADF')).toBe(true);
      }
      // Harmless on a closed socket.
      s.stop();
      s.ref();
      s.unref();
    });
  });

  it('delivers nothing after close(), even when closed from inside a handler mid-burst', async () => {
    await withNetns(async (ns) => {
      const closing = await NetlinkSocket.open({ netns: ns.name, groups: [RTNLGRP_LINK] });
      const witness = await NetlinkSocket.open({ netns: ns.name, groups: [RTNLGRP_LINK] });
      try {
        let calls = 0;
        let afterClose = 0;
        closing.start({
          data: () => {
            calls++;
            if (closing.closed) afterClose++;
            closing.close();
          },
          overflow: () => afterClose++,
          error: () => afterClose++,
        });
        const w = new Recorder(witness);
        const sawLink = (name: string) => () => w.messages.some((m) => m.type === RTM_NEWLINK && linkName(m) === name);

        // Many events queued while the JS thread is blocked: one wake-up finds them all.
        const batch = Array.from({ length: 20 }, (_, i) => `link add tkt-a${i} type veth peer name tkt-b${i}`).join('\n') + '\n';
        execFileSync('ip', ['-n', ns.name, '-batch', '-'], { input: batch });
        await w.until(sawLink('tkt-a19'));
        await loopTurns();
        expect(calls).toBe(1);

        await ns.ip('link', 'add', 'tkt-late', 'type', 'veth', 'peer', 'name', 'tkt-late1');
        await w.until(sawLink('tkt-late'));
        await loopTurns();
        expect(calls).toBe(1);
        expect(afterClose).toBe(0);
      } finally {
        closing.close();
        witness.close();
      }
    });
  });

  it('stop() pauses delivery without losing what the kernel queued meanwhile', async () => {
    await withNetns(async (ns) => {
      const s = await NetlinkSocket.open({ netns: ns.name, groups: [RTNLGRP_LINK] });
      try {
        const first = new Recorder(s);
        s.stop();
        await ns.ip('link', 'add', 'tkt-p0', 'type', 'veth', 'peer', 'name', 'tkt-p1');
        await loopTurns();
        expect(first.messages).toHaveLength(0);
        const resumed = new Recorder(s);
        await resumed.until(() => resumed.messages.some((m) => m.type === RTM_NEWLINK && linkName(m) === 'tkt-p0'));
        expect(first.messages).toHaveLength(0);
      } finally {
        s.close();
      }
    });
  });

  it('closes sockets nobody references when they are garbage-collected', async () => {
    await withNetns(async (ns) => {
      const script = `
        const { NetlinkSocket } = await import(process.argv[1]);
        const count = async () => (await import('node:fs')).readdirSync('/proc/self/fd').length;
        (await NetlinkSocket.open({ netns: process.argv[2] })).close();
        const before = await count();
        // Held until counted: a GC during the loop (the machine busy, V8's own timing) would
        // otherwise close some before they are counted as opened. In a function of its own, so
        // no stack slot keeps the last one reachable once the array is dropped.
        const openAll = async () => {
          const held = [];
          for (let i = 0; i < 30; i++) {
            const s = await NetlinkSocket.open({ netns: process.argv[2] });
            if (i % 2) { s.start({ data() {}, overflow() {}, error() {} }); s.stop(); }
            held.push(s);
          }
          return held;
        };
        let held = await openAll();
        await new Promise((r) => setImmediate(r));
        // Printed at the end: the first write to stdout may itself open descriptors.
        const opened = (await count()) - before;
        held = undefined;
        let after = await count();
        for (let i = 0; i < 100 && after !== before; i++) {
          globalThis.gc();
          await new Promise((r) => setImmediate(r));
          after = await count();
        }
        console.log('opened ' + opened + ', leaked ' + (after - before));
      `;
      const res = await runChild(script, ns, { nodeArgs: ['--expose-gc'] });
      expect(res.stderr).toBe('');
      expect(res.stdout).toBe('opened 30, leaked 0\n');
      expect(res.code).toBe(0);
    });
  });

  it('lets a process with a started socket exit through process.exit()', async () => {
    await withNetns(async (ns) => {
      const script = `
        const { NetlinkSocket } = await import(process.argv[1]);
        const s = await NetlinkSocket.open({ netns: process.argv[2], groups: [1] });
        s.start({ data() {}, overflow() {}, error() {} });
        console.log('started');
        setImmediate(() => process.exit(0));
      `;
      const res = await runChild(script, ns);
      expect(res).toEqual({ code: 0, signal: null, stdout: 'started\n', stderr: '' });
    });
  });

  it('keeps the process alive while started and ref()ed, and lets it end once unref()ed', async () => {
    await withNetns(async (ns) => {
      // The child can only end through its handler: if the started socket did not hold the event
      // loop open, the child would end before the event and never print "event".
      const script = `
        const { NetlinkSocket } = await import(process.argv[1]);
        const s = await NetlinkSocket.open({ netns: process.argv[2], groups: [1] });
        let done = false;
        s.start({
          data() { if (!done) { done = true; console.log('event'); s.unref(); } },
          overflow() {},
          error(e) { console.error(e); },
        });
        console.log('ready');
      `;
      let triggered: Promise<string> | undefined;
      const res = await runChild(script, ns, {
        onLine: (line) => {
          if (line === 'ready') triggered = ns.ip('link', 'add', 'tkt-e0', 'type', 'veth', 'peer', 'name', 'tkt-e1');
        },
      });
      await triggered;
      expect(res).toEqual({ code: 0, signal: null, stdout: 'ready\nevent\n', stderr: '' });
    });
  });

  it('closes the sockets of a worker thread when the worker ends', async () => {
    await withNetns(async (ns) => {
      // A worker's event loop cannot be closed while any handle is open (node aborts): the
      // environment cleanup hook must close started and idle sockets alike.
      const script = `
        const { Worker } = await import('node:worker_threads');
        const { readdirSync } = await import('node:fs');
        const count = () => readdirSync('/proc/self/fd').length;
        const workerCode = \`
          import('node:worker_threads').then(async ({ parentPort, workerData }) => {
            const { NetlinkSocket } = await import(workerData.url);
            const started = await NetlinkSocket.open({ netns: workerData.ns, groups: [1] });
            started.start({ data() {}, overflow() {}, error() {} });
            globalThis.idle = await NetlinkSocket.open({ netns: workerData.ns });
            parentPort.postMessage('ready');
          });
        \`;
        const cycle = async () => {
          const w = new Worker(workerCode, { eval: true, workerData: { url: process.argv[1], ns: process.argv[2] } });
          await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
          await w.terminate();
        };
        await cycle(); // the first worker sets up process-wide resources that stay
        const before = count();
        for (let i = 0; i < 3; i++) await cycle();
        console.log('leaked ' + (count() - before));
      `;
      const res = await runChild(script, ns);
      expect(res.stderr).toBe('');
      expect(res.stdout).toBe('leaked 0\n');
      expect(res.code).toBe(0);
    });
  });
});
