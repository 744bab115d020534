/**
 * What the API server says about itself: its /metrics (apiserver_request_total by verb and
 * resource, apiserver_watch_events_total) read with the admin certificate, and its process's CPU
 * time and memory from /proc (the counters in /metrics restart with the process; /proc is read
 * by pid, which the harness knows across a restart).
 *
 * Counters are compared as deltas between two scrapes of the same process. Pure parsing and
 * arithmetic apart from scrape() and procStat().
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';

/** One sample line: name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseMetrics(text: string, names: ReadonlySet<string>): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.lastIndexOf(' ');
    const name = brace >= 0 ? line.slice(0, brace) : line.slice(0, line.indexOf(' '));
    if (!names.has(name)) continue;
    const labels: Record<string, string> = {};
    if (brace >= 0) {
      const body = line.slice(brace + 1, line.lastIndexOf('}'));
      for (const m of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    }
    out.push({ name, labels, value: Number(line.slice(space + 1)) });
  }
  return out;
}

/** The counters fleet-converge reads, keyed so that two scrapes subtract. */
export interface ApiCounters {
  /** `VERB resource[/subresource]` → requests. */
  requests: Map<string, number>;
  /** resource → watch events sent to watchers. */
  watchEvents: Map<string, number>;
  /** resource → bytes of watch events sent (the histogram's sum). */
  watchEventBytes: Map<string, number>;
  /**
   * resource → streaming lists served (WATCH with sendInitialEvents, counted when the initial
   * events have all been sent): a re-sync that is no LIST in `requests`, only a WATCH.
   */
  watchLists: Map<string, number>;
}

const WANTED = new Set(['apiserver_request_total', 'apiserver_watch_events_total', 'apiserver_watch_events_sizes_sum', 'apiserver_watch_list_duration_seconds_count']);

export function countersOf(samples: readonly Sample[]): ApiCounters {
  const c: ApiCounters = { requests: new Map(), watchEvents: new Map(), watchEventBytes: new Map(), watchLists: new Map() };
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  for (const s of samples) {
    // Older servers label watch events by kind, newer ones by resource.
    const resource = s.labels.resource ?? s.labels.kind ?? '?';
    if (s.name === 'apiserver_request_total') add(c.requests, `${s.labels.verb} ${resource}${s.labels.subresource ? `/${s.labels.subresource}` : ''}`, s.value);
    else if (s.name === 'apiserver_watch_events_total') add(c.watchEvents, resource, s.value);
    else if (s.name === 'apiserver_watch_list_duration_seconds_count') add(c.watchLists, resource, s.value);
    else add(c.watchEventBytes, resource, s.value);
  }
  return c;
}

export function diffCounters(after: ApiCounters, before: ApiCounters | undefined): ApiCounters {
  const d = (a: Map<string, number>, b: Map<string, number> | undefined) => new Map([...a].map(([k, v]) => [k, v - (b?.get(k) ?? 0)] as const).filter(([, v]) => v > 0));
  return { requests: d(after.requests, before?.requests), watchEvents: d(after.watchEvents, before?.watchEvents), watchEventBytes: d(after.watchEventBytes, before?.watchEventBytes), watchLists: d(after.watchLists, before?.watchLists) };
}

/** Requests whose key matches, summed by verb. */
export function byVerb(requests: ReadonlyMap<string, number>, resource?: (r: string) => boolean): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of requests) {
    const [verb, res] = k.split(' ') as [string, string];
    if (resource && !resource(res)) continue;
    out[verb] = (out[verb] ?? 0) + v;
  }
  return out;
}

export const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE', 'DELETECOLLECTION', 'CREATE', 'UPDATE']);

export function sumOf(m: ReadonlyMap<string, number> | Record<string, number>, pick: (k: string) => boolean = () => true): number {
  let n = 0;
  for (const [k, v] of m instanceof Map ? m : Object.entries(m)) if (pick(k)) n += v;
  return n;
}

/** GET /metrics with the cluster's admin certificate. */
export function scrape(server: string, pkiDir: string): Promise<ApiCounters> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${server}/metrics`,
      { ca: readFileSync(join(pkiDir, 'ca.crt')), cert: readFileSync(join(pkiDir, 'admin.crt')), key: readFileSync(join(pkiDir, 'admin.key')), timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`GET /metrics: ${res.statusCode}`));
          else resolve(countersOf(parseMetrics(Buffer.concat(chunks).toString('utf8'), WANTED)));
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('GET /metrics: no answer in 30 s')));
    req.on('error', reject);
    req.end();
  });
}

/** CPU seconds (user + system) and resident memory of a process, from /proc. */
export function procStat(pid: number): { cpuSeconds: number; rssBytes: number; hwmBytes: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  // USER_HZ is 100 on every Linux this runs on (sysconf(_SC_CLK_TCK)).
  return { cpuSeconds: ticks / 100, rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM') };
}
