/** Agent settings: the YAML file, flags over the file, and errors that name file:line:col. */
import { describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_POLICY } from '../../../controller/model/desired.js';
import { DEFAULT_SETTINGS, SettingsError, duration, listenAddress, loadSettings, parseSettingsText } from '../../../controller/agent/settings.js';

async function withFile<T>(text: string, fn: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'tk-settings-'));
  try {
    const file = join(dir, 'agent.yaml');
    await writeFile(file, text);
    return await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const problemsOf = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (e) {
    if (e instanceof SettingsError) return e.problems;
    throw e;
  }
  throw new Error('expected a SettingsError');
};

describe('settings file', () => {
  it('has the documented defaults', async () => {
    const s = await loadSettings();
    expect(s).toEqual(DEFAULT_SETTINGS);
    expect(s.policy).toEqual(DEFAULT_POLICY);
    expect(s).toMatchObject({ resyncIntervalMs: 300_000, logLevel: 'info', metricsAddress: { host: '127.0.0.1', port: 9464 }, monitorRcvbuf: 4 << 20 });
  });

  it('reads every setting', () => {
    const s = parseSettingsText(
      [
        'routeProtocol: 200',
        'allowedPrefixes: [tk-, vpn-]',
        'allowDefaultRoute: true',
        'resyncInterval: 1m30s',
        'logLevel: debug',
        'metricsAddress: "[::1]:9100"',
        'monitorRcvbuf: 8388608',
        'stateDir: /srv/tunkeeper',
        'leaderElectLeaseDuration: 30s',
        'leaderElectRenewDeadline: 20s',
        'leaderElectRetryPeriod: 4s',
        'rolloutSlotGrace: 2m',
      ].join('\n'),
      'agent.yaml',
    );
    expect(s).toEqual({
      policy: { routeProtocol: 200, allowedPrefixes: ['tk-', 'vpn-'], allowDefaultRoute: true },
      resyncIntervalMs: 90_000,
      logLevel: 'debug',
      metricsAddress: { host: '::1', port: 9100 },
      monitorRcvbuf: 8 << 20,
      stateDir: '/srv/tunkeeper',
      leaderElection: { leaseDurationMs: 30_000, renewDeadlineMs: 20_000, retryPeriodMs: 4_000 },
      rolloutSlotGraceMs: 120_000,
    });
    expect(() => parseSettingsText('stateDir: state\n', 'agent.yaml')).toThrow('agent.yaml:1:11: stateDir must be an absolute path');
    expect(() => parseSettingsText('rolloutSlotGrace: 10ms\n', 'agent.yaml')).toThrow('agent.yaml:1:19: rolloutSlotGrace must be at least 1s');
  });

  it('refuses Lease timings that cannot work, as client-go does', async () => {
    await expect(loadSettings({ flags: { leaderElectRenewDeadline: '15s' } })).rejects.toThrow('leaderElectLeaseDuration (15000 ms) must be longer than leaderElectRenewDeadline (15000 ms)');
    await expect(loadSettings({ flags: { leaderElectRetryPeriod: '9s' } })).rejects.toThrow('leaderElectRenewDeadline (10000 ms) must be longer than 1.2 × leaderElectRetryPeriod (9000 ms)');
    await expect(loadSettings({ flags: { leaderElectRetryPeriod: '10ms' } })).rejects.toThrow('--leader-elect-retry-period must be at least 100ms');
    expect((await loadSettings({ flags: { leaderElectLeaseDuration: '3s', leaderElectRenewDeadline: '2s', leaderElectRetryPeriod: '500ms' } })).leaderElection).toEqual({ leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 });
  });

  it('accepts an empty file', () => {
    expect(parseSettingsText('# nothing set\n', 'agent.yaml')).toEqual(DEFAULT_SETTINGS);
  });

  it('names the file, line and column of an unknown setting', () => {
    const problems = problemsOf(() => parseSettingsText('logLevel: info\n\nalowedPrefixes: [tk-]\n', '/etc/tunkeeper/agent.yaml'));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^\/etc\/tunkeeper\/agent\.yaml:3:1: unknown setting "alowedPrefixes" \(known: routeProtocol, allowedPrefixes,/);
  });

  it('reports every bad value with its position, not just the first', () => {
    const problems = problemsOf(() =>
      parseSettingsText('routeProtocol: 3\nlogLevel: loud\nresyncInterval: soon\nallowedPrefixes: [e]\nmetricsAddress: 9464x\nallowDefaultRoute: "yes"\n', 'a.yaml'),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^a\.yaml:1:16: routeProtocol must be 5\.\.255/),
      expect.stringMatching(/^a\.yaml:2:11: logLevel must be one of fatal, error, warn, info, debug, trace, silent, got "loud"/),
      expect.stringMatching(/^a\.yaml:3:17: resyncInterval must be a duration/),
      expect.stringMatching(/^a\.yaml:4:18: allowedPrefixes "e" would let declarations take over host interfaces such as eth0/),
      expect.stringMatching(/^a\.yaml:5:17: metricsAddress must be HOST:PORT/),
      expect.stringMatching(/^a\.yaml:6:20: allowDefaultRoute must be true or false/),
    ]);
  });

  it('refuses YAML that is not a mapping, and duplicate keys', () => {
    expect(problemsOf(() => parseSettingsText('- routeProtocol\n', 'x.yaml'))[0]).toMatch(/^x\.yaml:1:1: the settings file must be a mapping/);
    expect(problemsOf(() => parseSettingsText('logLevel: info\nlogLevel: debug\n', 'x.yaml'))[0]).toMatch(/^x\.yaml:2:1: .*unique/i);
    expect(problemsOf(() => parseSettingsText('logLevel: [unclosed\n', 'x.yaml'))[0]).toMatch(/^x\.yaml:\d+:\d+: /);
  });

  it('lets flags override the file, and names the flag in errors', async () => {
    await withFile('routeProtocol: 200\nlogLevel: debug\nallowedPrefixes: [vpn-]\n', async (file) => {
      const s = await loadSettings({ configFile: file, flags: { logLevel: 'warn', allowedPrefixes: ['tk-,tun-', 'tap-'], metricsAddress: 'off' } });
      expect(s.policy).toEqual({ routeProtocol: 200, allowedPrefixes: ['tk-', 'tun-', 'tap-'], allowDefaultRoute: false });
      expect(s.logLevel).toBe('warn');
      expect(s.metricsAddress).toBeNull();
      await expect(loadSettings({ configFile: file, flags: { routeProtocol: '999', resyncInterval: 'x' } })).rejects.toThrow(
        /--route-protocol must be 5\.\.255[\s\S]*--resync-interval must be a duration/,
      );
    });
  });

  it('says which settings file cannot be read', async () => {
    await expect(loadSettings({ configFile: '/nonexistent/agent.yaml' })).rejects.toThrow(/^\/nonexistent\/agent\.yaml: cannot read the settings file/);
  });

  it('parses durations and listen addresses', () => {
    expect([duration('500ms'), duration('30s'), duration('5m'), duration('1h'), duration('2'), duration(0), duration('1m30s')]).toEqual([
      500, 30_000, 300_000, 3_600_000, 2000, 0, 90_000,
    ]);
    expect(() => duration('-1s')).toThrow(/duration/);
    expect(listenAddress(':9464')).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(listenAddress('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(listenAddress('[2001:db8::1]:80')).toEqual({ host: '2001:db8::1', port: 80 });
    expect(listenAddress('off')).toBeNull();
    expect(() => listenAddress('127.0.0.1:70000')).toThrow(/HOST:PORT/);
  });
});
