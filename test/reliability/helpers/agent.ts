/**
 * `tunkeeper run` as a child process in a test namespace, with its /metrics read the way a
 * Prometheus scrape would: the reliability tests judge the agent by what it exposes.
 */
import { CliProcess, eventually } from '../../helpers/cli.js';
import { httpGet } from '../../helpers/http.js';

export { eventually, httpGet };

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A Prometheus sample: `name` or `name{labels}`; sums every series of the name when no labels are given. */
export function sample(metrics: string, name: string, labels?: string): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (labels !== undefined && m[2] !== `{${labels}}`) continue;
    sum += Number(m[3]);
  }
  return sum;
}

export class Agent {
  readonly p: CliProcess;
  #url: string | undefined;

  constructor(args: string[]) {
    this.p = new CliProcess(['run', '--metrics-address', '127.0.0.1:0', ...args]);
  }

  async url(): Promise<string> {
    this.#url ??= await eventually(this.p, 'the metrics URL', async () => {
      for (const line of this.p.lines()) {
        try {
          const url = (JSON.parse(line) as { url?: unknown }).url;
          if (typeof url === 'string') return url;
        } catch {
          // not a log line
        }
      }
      return undefined;
    });
    return this.#url;
  }

  async metrics(): Promise<string> {
    return httpGet(`${await this.url()}/metrics`);
  }

  /** Log lines (JSON) whose msg matches. */
  logs(match: RegExp): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this.p.lines()) {
      try {
        const o = JSON.parse(line) as Record<string, unknown>;
        if (typeof o.msg === 'string' && match.test(o.msg)) out.push(o);
      } catch {
        // not a log line
      }
    }
    return out;
  }

  /** SIGTERM, and the exit; SIGKILL if it does not stop. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.p.child.exitCode === null && this.p.child.signalCode === null) this.p.kill('SIGTERM');
    const t = setTimeout(() => this.p.kill('SIGKILL'), 20_000);
    try {
      const r = await this.p.exited;
      return { code: r.code, signal: r.signal };
    } finally {
      clearTimeout(t);
    }
  }
}

/** TunDevice YAML, one document per device. */
export function tunDeviceYaml(d: { name: string; ifname: string; mtu?: number; addresses?: string[]; routes?: string[] }): string {
  return [
    'apiVersion: tunkeeper.io/v1alpha1',
    'kind: TunDevice',
    'metadata:',
    `  name: ${d.name}`,
    'spec:',
    `  ifname: ${d.ifname}`,
    '  mode: tun',
    `  mtu: ${d.mtu ?? 1500}`,
    ...(d.addresses?.length ? ['  addresses:', ...d.addresses.map((a) => `    - ${a}`)] : []),
    ...(d.routes?.length ? ['  routes:', ...d.routes.map((r) => `    - to: ${r}`)] : []),
    '',
  ].join('\n');
}
