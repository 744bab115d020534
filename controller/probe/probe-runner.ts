/**
 * ProbeRunner: the probes of the devices of one network namespace against the real kernel. It
 * keeps its sockets for its whole life (one rtnetlink socket, one ping socket per device and
 * family), not one per attempt: a rollout probes every few hundred milliseconds for up to
 * probeTimeoutSeconds, on every node.
 *
 *   const runner = new ProbeRunner({ netns, policy });
 *   const results = await runner.run(device, ifindex, signal);   // retried until pass or deadline
 *   const now = await runner.once(device);                       // one attempt each (plan)
 *   runner.close();
 */
import { NetlinkRequestError, Rtnl } from '../../netlink/index.js';
import { isIcmpEchoTimeoutError, PingSocket } from '../../tun-native/index.js';
import type { DesiredDevice, DesiredProbe, Policy } from '../model/desired.js';
import { judgeEcho } from './ping-verdict.js';
import { answerIfindexes, judgeRouteAnswer, judgeRouteError } from './route-verdict.js';
import { probeOnce, runProbes, type ProbeClock, type ProbeIntervals, type ProbeResult } from './run-probes.js';
import type { ProbeVerdict } from './verdict.js';

export interface ProbeRunnerOptions {
  /** The managed namespace (name or path); absent: the agent's own. */
  netns?: string;
  policy: Pick<Policy, 'routeProtocol'>;
  /** An open client to use (not closed by the runner); default: the runner opens its own in netns. */
  rtnl?: Rtnl;
  clock?: ProbeClock;
  wallClock?: () => Date;
  intervals?: ProbeIntervals;
}

export class ProbeRunner {
  readonly #opts: ProbeRunnerOptions;
  #rtnl: Promise<Rtnl> | undefined;
  readonly #ownsRtnl: boolean;
  /** Ping sockets by `family ifname`, with the ifindex they were bound to. */
  readonly #sockets = new Map<string, Promise<PingSocket>>();
  #closed = false;
  /** Aborts every run in progress when the runner is closed. */
  readonly #closing = new AbortController();

  constructor(opts: ProbeRunnerOptions) {
    this.#opts = opts;
    this.#ownsRtnl = opts.rtnl === undefined;
    if (opts.rtnl !== undefined) this.#rtnl = Promise.resolve(opts.rtnl);
  }

  /**
   * Runs the device's probes until each passes or device.rollout.probeTimeoutSeconds passes
   * (retrying failures). `ifindex` is the device's index when the caller knows it (from apply);
   * otherwise it is looked up by name at each attempt. Rejects with the signal's reason when
   * aborted; otherwise resolves with one result per probe.
   */
  run(device: DesiredDevice, ifindex?: number, signal?: AbortSignal): Promise<ProbeResult[]> {
    signal = this.#signal(signal);
    return runProbes(device, {
      attempt: (p, o) => this.#attempt(device, ifindex, p, o.timeoutMs, o.signal),
      ...(this.#opts.clock !== undefined ? { clock: this.#opts.clock } : {}),
      ...(this.#opts.wallClock !== undefined ? { wallClock: this.#opts.wallClock } : {}),
      ...(this.#opts.intervals !== undefined ? { intervals: this.#opts.intervals } : {}),
      signal,
    });
  }

  /** One attempt of each probe, no retry. */
  once(device: DesiredDevice, ifindex?: number, signal?: AbortSignal): Promise<ProbeResult[]> {
    signal = this.#signal(signal);
    return probeOnce(device, {
      attempt: (p, o) => this.#attempt(device, ifindex, p, o.timeoutMs, o.signal),
      ...(this.#opts.wallClock !== undefined ? { wallClock: this.#opts.wallClock } : {}),
      ...(this.#opts.intervals !== undefined ? { intervals: this.#opts.intervals } : {}),
      signal,
    });
  }

  /**
   * Closes the sockets (the rtnetlink client only if the runner opened it); runs in progress
   * reject (AbortError), and so do later ones. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort(new DOMException('the probe runner was closed', 'AbortError'));
    if (this.#ownsRtnl) void this.#rtnl?.then((r) => r.close(), () => undefined);
    for (const s of this.#sockets.values()) void s.then((sock) => sock.close(), () => undefined);
    this.#sockets.clear();
  }

  /** The caller's signal, joined with the runner's own (closed: abort). */
  #signal(signal: AbortSignal | undefined): AbortSignal {
    return signal === undefined ? this.#closing.signal : AbortSignal.any([signal, this.#closing.signal]);
  }

  #client(): Promise<Rtnl> {
    if (this.#closed) return Promise.reject(new Error('the probe runner is closed'));
    if (this.#rtnl === undefined) {
      const opening = Rtnl.open(this.#opts.netns !== undefined ? { netns: this.#opts.netns } : {});
      this.#rtnl = opening;
      // A failed open is retried at the next attempt, not remembered.
      opening.catch(() => {
        if (this.#rtnl === opening) this.#rtnl = undefined;
      });
    }
    return this.#rtnl;
  }

  /** The device's ifindex now: the caller's, else by name; undefined when it does not exist. */
  async #ifindex(rtnl: Rtnl, device: DesiredDevice, known: number | undefined): Promise<number | undefined> {
    if (known !== undefined) return known;
    return (await rtnl.link({ ifname: device.ifname }))?.ifindex;
  }

  async #attempt(device: DesiredDevice, known: number | undefined, probe: DesiredProbe, timeoutMs: number, signal: AbortSignal): Promise<ProbeVerdict> {
    const rtnl = await this.#client();
    const ifindex = await this.#ifindex(rtnl, device, known);
    return probe.kind === 'route' ? this.#route(rtnl, device, ifindex, probe) : this.#ping(device, ifindex, probe, timeoutMs, signal);
  }

  async #route(rtnl: Rtnl, device: DesiredDevice, ifindex: number | undefined, probe: DesiredProbe): Promise<ProbeVerdict> {
    let answer;
    try {
      answer = await rtnl.getRoute(probe.to, { fibMatch: true });
    } catch (e) {
      if (e instanceof NetlinkRequestError) return judgeRouteError({ to: probe.to }, { errno: e.errno, extAck: e.extAck, message: e.message });
      throw e;
    }
    const linkNames = new Map<number, string>();
    await Promise.all(
      answerIfindexes(answer).map(async (i) => {
        const name = i === ifindex ? device.ifname : (await rtnl.link({ ifindex: i }))?.ifname;
        if (name !== undefined) linkNames.set(i, name);
      }),
    );
    return judgeRouteAnswer({ to: probe.to, ifname: device.ifname, ifindex, routeProtocol: this.#opts.policy.routeProtocol, linkNames }, answer);
  }

  async #ping(device: DesiredDevice, ifindex: number | undefined, probe: DesiredProbe, timeoutMs: number, signal: AbortSignal): Promise<ProbeVerdict> {
    if (ifindex === undefined) return { passed: false, message: `echo to ${probe.to} through ${device.ifname} failed: ${device.ifname} does not exist` };
    let sock: PingSocket;
    try {
      sock = await this.#socket(probe.family, device.ifname, ifindex);
    } catch (e) {
      return judgeEcho(probe.to, device.ifname, { ok: false, error: e as Error });
    }
    try {
      const { rttMs } = await sock.echo(probe.to, { timeoutMs, signal });
      return judgeEcho(probe.to, device.ifname, { ok: true, rttMs });
    } catch (e) {
      if (signal.aborted) throw e;
      if (isIcmpEchoTimeoutError(e)) return judgeEcho(probe.to, device.ifname, { ok: false, timeoutMs });
      return judgeEcho(probe.to, device.ifname, { ok: false, error: e as Error });
    }
  }

  /**
   * The ping socket for a device and family, opened once. A device recreated under the same name
   * has a new ifindex, and a socket bound to the old one would send nowhere: it is reopened.
   */
  async #socket(family: 4 | 6, ifname: string, ifindex: number): Promise<PingSocket> {
    if (this.#closed) throw new Error('the probe runner is closed');
    const key = `${family} ${ifname}`;
    const cached = this.#sockets.get(key);
    if (cached !== undefined) {
      const sock = await cached.catch(() => undefined);
      if (sock !== undefined && sock.ifindex === ifindex && !sock.closed) return sock;
      if (this.#sockets.get(key) === cached) this.#sockets.delete(key);
      sock?.close();
      return this.#socket(family, ifname, ifindex);
    }
    const opening = PingSocket.open({ family, ifname, ...(this.#opts.netns !== undefined ? { netns: this.#opts.netns } : {}) });
    this.#sockets.set(key, opening);
    // Open failures (EACCES from ping_group_range, ENODEV) are reported and tried again next time.
    opening.catch(() => {
      if (this.#sockets.get(key) === opening) this.#sockets.delete(key);
    });
    const sock = await opening;
    if (this.#closed) {
      sock.close();
      throw new Error('the probe runner is closed');
    }
    return sock;
  }
}
