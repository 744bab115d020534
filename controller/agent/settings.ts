/**
 * The agent's settings: one optional YAML file (`--config FILE`) and flags; a flag overrides the
 * same setting in the file. Every setting is checked when the agent starts, and a mistake stops it
 * with `file:line:col: message` (or the flag's name): an agent that silently ignored a misspelt
 * `alowedPrefixes` would run with a policy nobody chose.
 *
 *   # /etc/tunkeeper/agent.yaml
 *   routeProtocol: 116            # rtm_protocol marking tunkeeper's routes (5..255)
 *   allowedPrefixes: [tk-, tun-]  # ifname prefixes declarations may use
 *   allowDefaultRoute: false      # may declarations own 0.0.0.0/0 or ::/0
 *   resyncInterval: 5m            # full re-list at least this often (ms, s, m, h; 0 = off)
 *   logLevel: info                # fatal error warn info debug trace silent
 *   metricsAddress: 127.0.0.1:9464  # HOST:PORT, :PORT (all addresses), or "off"
 *   monitorRcvbuf: 4194304        # bytes of netlink receive buffer for the Monitor
 *   stateDir: /var/lib/tunkeeper  # with --kube: where the last complete cluster state is kept
 *   leaderElectLeaseDuration: 15s # with --kube: the status Lease (client-go's standard timings)
 *   leaderElectRenewDeadline: 10s #   the holder stands down if it cannot renew for this long
 *   leaderElectRetryPeriod: 2s    #   the holder renews this often
 *   rolloutSlotGrace: 60s         # with --kube: a rollout slot unanswered for the probe timeout plus this is reclaimed
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, isMap, isScalar, parseDocument, type Node } from 'yaml';
import { DEFAULT_POLICY, type Policy } from '../model/desired.js';

import { LOG_LEVELS, type LogLevel } from '../telemetry/logger.js';
import type { ListenAddress } from '../telemetry/http.js';

export { LOG_LEVELS, type LogLevel, type ListenAddress };

export interface Settings {
  policy: Policy;
  resyncIntervalMs: number;
  logLevel: LogLevel;
  /** null: no metrics/health endpoint. */
  metricsAddress: ListenAddress | null;
  monitorRcvbuf: number;
  /** With the cluster source: the directory holding the last complete desired state (fail static across restarts). */
  stateDir: string;
  /** With the cluster source: the Lease that chooses the one agent writing TunDevice status. */
  leaderElection: LeaderElectionTimings;
  /**
   * With the cluster source, while leading: a rollout slot whose node has not answered within the
   * device's probe timeout plus this long is reclaimed (its agent died or stopped reporting).
   */
  rolloutSlotGraceMs: number;
}

export interface LeaderElectionTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export const DEFAULT_SETTINGS: Settings = {
  policy: DEFAULT_POLICY,
  resyncIntervalMs: 5 * 60_000,
  logLevel: 'info',
  metricsAddress: { host: '127.0.0.1', port: 9464 },
  monitorRcvbuf: 4 << 20,
  stateDir: '/var/lib/tunkeeper',
  leaderElection: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
  rolloutSlotGraceMs: 60_000,
};

/** Flags as the command line gives them (strings, or booleans for switches). */
export interface SettingsFlags {
  routeProtocol?: string;
  leaderElectLeaseDuration?: string;
  leaderElectRenewDeadline?: string;
  leaderElectRetryPeriod?: string;
  rolloutSlotGrace?: string;
  allowedPrefixes?: string[];
  allowDefaultRoute?: boolean;
  resyncInterval?: string;
  logLevel?: string;
  metricsAddress?: string;
  monitorRcvbuf?: string;
  stateDir?: string;
}

export class SettingsError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0] : `invalid settings:\n  ${problems.join('\n  ')}`);
    this.name = 'SettingsError';
  }
}

/** One setting: its file key, flag, and how a value becomes part of Settings. */
interface SettingSpec {
  flag: string;
  apply(value: unknown, s: Settings): void;
}

/** Hosts' own interfaces a prefix must not be able to name (promise 4: no taking over the host). */
const HOST_INTERFACES = ['lo', 'eth0', 'ens3', 'enp0s3', 'eno1', 'wlan0', 'docker0', 'cni0', 'veth0', 'br0', 'bond0'];

const SETTINGS: Record<string, SettingSpec> = {
  routeProtocol: {
    flag: '--route-protocol',
    apply(v, s) {
      const n = integer(v, 'a protocol number');
      // 0..4 are unspec/redirect/kernel/boot/static: owning those would mean owning other people's routes.
      if (n < 5 || n > 255) throw new Error(`must be 5..255 (0..4 are the kernel's, boot's and static routes), got ${n}`);
      s.policy = { ...s.policy, routeProtocol: n };
    },
  },
  allowedPrefixes: {
    flag: '--allowed-prefix',
    apply(v, s) {
      const list = typeof v === 'string' ? v.split(',').map((p) => p.trim()) : v;
      if (!Array.isArray(list) || list.length === 0) throw new Error('must be a non-empty list of interface name prefixes');
      const prefixes = list.map((p): string => {
        if (typeof p !== 'string' || p === '') throw new Error(`every prefix must be a non-empty string, got ${JSON.stringify(p)}`);
        if (p.length > 14 || /[\s/:]/.test(p)) throw new Error(`${JSON.stringify(p)} cannot begin an interface name (at most 14 characters, no blank, '/' or ':')`);
        const host = HOST_INTERFACES.find((i) => i.startsWith(p));
        if (host) throw new Error(`${JSON.stringify(p)} would let declarations take over host interfaces such as ${host}`);
        return p;
      });
      s.policy = { ...s.policy, allowedPrefixes: [...new Set(prefixes)] };
    },
  },
  allowDefaultRoute: {
    flag: '--allow-default-route',
    apply(v, s) {
      if (typeof v !== 'boolean') throw new Error(`must be true or false, got ${JSON.stringify(v)}`);
      s.policy = { ...s.policy, allowDefaultRoute: v };
    },
  },
  resyncInterval: {
    flag: '--resync-interval',
    apply(v, s) {
      s.resyncIntervalMs = duration(v);
    },
  },
  logLevel: {
    flag: '--log-level',
    apply(v, s) {
      if (typeof v !== 'string' || !(LOG_LEVELS as readonly string[]).includes(v)) throw new Error(`must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(v)}`);
      s.logLevel = v as LogLevel;
    },
  },
  metricsAddress: {
    flag: '--metrics-address',
    apply(v, s) {
      s.metricsAddress = listenAddress(v);
    },
  },
  monitorRcvbuf: {
    flag: '--monitor-rcvbuf',
    apply(v, s) {
      const n = integer(v, 'a number of bytes');
      if (n < 4096 || n > 0x7fffffff) throw new Error(`must be 4096..2147483647 bytes, got ${n}`);
      s.monitorRcvbuf = n;
    },
  },
  stateDir: {
    flag: '--state-dir',
    apply(v, s) {
      if (typeof v !== 'string' || v.trim() === '') throw new Error(`must be a directory path, got ${JSON.stringify(v)}`);
      if (!v.startsWith('/')) throw new Error(`must be an absolute path (the agent's working directory is not a place to keep state), got ${JSON.stringify(v)}`);
      s.stateDir = v;
    },
  },
  leaderElectLeaseDuration: leaderTiming('--leader-elect-lease-duration', 'leaseDurationMs'),
  leaderElectRenewDeadline: leaderTiming('--leader-elect-renew-deadline', 'renewDeadlineMs'),
  leaderElectRetryPeriod: leaderTiming('--leader-elect-retry-period', 'retryPeriodMs'),
  rolloutSlotGrace: {
    flag: '--rollout-slot-grace',
    apply(v, s) {
      const ms = duration(v);
      if (ms < 1000) throw new Error(`must be at least 1s (time for a node to see its grant, apply and report), got ${JSON.stringify(v)}`);
      s.rolloutSlotGraceMs = ms;
    },
  },
};

function leaderTiming(flag: string, key: keyof LeaderElectionTimings): SettingSpec {
  return {
    flag,
    apply(v, s) {
      const ms = duration(v);
      if (ms < 100) throw new Error(`must be at least 100ms, got ${JSON.stringify(v)}`);
      s.leaderElection = { ...s.leaderElection, [key]: ms };
    },
  };
}

/** client-go's own checks: the holder must renew well within the lease, and retry within the deadline. */
function leaderElectionProblem(t: LeaderElectionTimings): string | undefined {
  if (t.leaseDurationMs <= t.renewDeadlineMs) return `leaderElectLeaseDuration (${t.leaseDurationMs} ms) must be longer than leaderElectRenewDeadline (${t.renewDeadlineMs} ms)`;
  if (t.renewDeadlineMs <= 1.2 * t.retryPeriodMs) return `leaderElectRenewDeadline (${t.renewDeadlineMs} ms) must be longer than 1.2 × leaderElectRetryPeriod (${t.retryPeriodMs} ms)`;
  return undefined;
}

function integer(v: unknown, what: string): number {
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new Error(`must be ${what} (an integer), got ${JSON.stringify(v)}`);
  return n;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `300ms`, `30s`, `5m`, `1h`, `1m30s`, or a bare number of seconds; 0 turns the timer off. */
export function duration(v: unknown): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.round(v * 1000);
  if (typeof v === 'string') {
    const t = v.trim();
    if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
    if (/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(t)) {
      let ms = 0;
      for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
      return Math.round(ms);
    }
  }
  throw new Error(`must be a duration such as 30s, 5m or 1h (0 turns it off), got ${JSON.stringify(v)}`);
}

/** `HOST:PORT`, `:PORT` (every address), `[IPv6]:PORT`, or `off`. */
export function listenAddress(v: unknown): ListenAddress | null {
  if (v === false || v === 'off' || v === 'none') return null;
  const text = typeof v === 'number' ? `:${v}` : v;
  if (typeof text === 'string') {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text.trim());
    if (m) {
      const port = Number(m[3]);
      if (port <= 65535) return { host: m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!), port };
    }
  }
  throw new Error(`must be HOST:PORT, :PORT, [IPv6]:PORT or off, got ${JSON.stringify(v)}`);
}

/** Checks a settings file's text; `file` names it in messages. */
export function parseSettingsText(text: string, file: string, into: Settings = cloneDefaults()): Settings {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number | undefined): string => {
    const p = lineCounter.linePos(offset ?? 0);
    return `${file}:${p.line}:${p.col}`;
  };
  const problems: string[] = [];
  for (const e of doc.errors) problems.push(`${at(e.pos[0])}: ${e.message.split('\n')[0]}`);
  if (problems.length > 0) throw new SettingsError(problems);
  const root = doc.contents as Node | null;
  if (root === null || (isScalar(root) && (root.value === null || root.value === undefined))) return into;
  if (!isMap(root)) throw new SettingsError([`${at(root.range?.[0])}: the settings file must be a mapping of setting: value`]);
  for (const item of root.items) {
    const keyNode = item.key as Node | null;
    const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
    const where = at(keyNode?.range?.[0]);
    const spec = Object.hasOwn(SETTINGS, key) ? SETTINGS[key] : undefined;
    if (!spec) {
      problems.push(`${where}: unknown setting ${JSON.stringify(key)} (known: ${Object.keys(SETTINGS).join(', ')})`);
      continue;
    }
    const valueNode = item.value as Node | null;
    const value: unknown = valueNode === null ? null : valueNode.toJSON();
    try {
      spec.apply(value, into);
    } catch (e) {
      problems.push(`${at(valueNode?.range?.[0] ?? keyNode?.range?.[0])}: ${key} ${(e as Error).message}`);
    }
  }
  if (problems.length > 0) throw new SettingsError(problems);
  return into;
}

function cloneDefaults(): Settings {
  return { ...DEFAULT_SETTINGS, policy: { ...DEFAULT_SETTINGS.policy, allowedPrefixes: [...DEFAULT_SETTINGS.policy.allowedPrefixes] }, leaderElection: { ...DEFAULT_SETTINGS.leaderElection } };
}

const FLAG_KEYS: Array<[keyof SettingsFlags, string]> = [
  ['routeProtocol', 'routeProtocol'],
  ['allowedPrefixes', 'allowedPrefixes'],
  ['allowDefaultRoute', 'allowDefaultRoute'],
  ['resyncInterval', 'resyncInterval'],
  ['logLevel', 'logLevel'],
  ['metricsAddress', 'metricsAddress'],
  ['monitorRcvbuf', 'monitorRcvbuf'],
  ['stateDir', 'stateDir'],
  ['leaderElectLeaseDuration', 'leaderElectLeaseDuration'],
  ['leaderElectRenewDeadline', 'leaderElectRenewDeadline'],
  ['leaderElectRetryPeriod', 'leaderElectRetryPeriod'],
  ['rolloutSlotGrace', 'rolloutSlotGrace'],
];

/** Defaults, then the file (if any), then the flags. */
export async function loadSettings(opts: { configFile?: string; flags?: SettingsFlags } = {}): Promise<Settings> {
  let settings = cloneDefaults();
  if (opts.configFile !== undefined) {
    let text: string;
    try {
      text = await readFile(opts.configFile, 'utf8');
    } catch (e) {
      throw new SettingsError([`${opts.configFile}: cannot read the settings file: ${(e as Error).message}`]);
    }
    settings = parseSettingsText(text, opts.configFile, settings);
  }
  const problems: string[] = [];
  for (const [flagKey, key] of FLAG_KEYS) {
    const v = opts.flags?.[flagKey];
    if (v === undefined) continue;
    const spec = SETTINGS[key]!;
    try {
      // A repeated --allowed-prefix collects a list; each may also be comma-separated.
      spec.apply(Array.isArray(v) ? v.flatMap((p) => p.split(',').map((x) => x.trim())) : v, settings);
    } catch (e) {
      problems.push(`${spec.flag} ${(e as Error).message}`);
    }
  }
  const timing = leaderElectionProblem(settings.leaderElection);
  if (timing) problems.push(timing);
  if (problems.length > 0) throw new SettingsError(problems);
  return settings;
}
