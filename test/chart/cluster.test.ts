/**
 * The chart against a real API server: every rendered object passes a server-side dry-run apply
 * (the ServiceMonitor against a minimal CRD of its own), the agent's ServiceAccount can do exactly
 * what the API contract says and nothing more (`kubectl auth can-i --as`), and the admin's path:
 * `helm install` into a cluster without the CRDs, apply the examples, `kubectl get tundevices`.
 * No kubelet runs, so no agent pod ever starts; the agent's half of the path is test/kube's.
 */
import { kubectlHeader, kubectlTable } from '../helpers/kubectl-table.js';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CLUSTER_START_MS, describeKube, kubeToolPaths, startKubeCluster, type KubeCluster } from '../helpers/kube-cluster.js';
import { CHART_DIR, HelmRunner, PACKAGE_VERSION, ROOT } from './chart-render.js';
import { pollUntil } from '../helpers/poll.js';

const EXAMPLES = readdirSync(join(ROOT, 'examples'))
  .filter((f) => f.endsWith('.yaml'))
  .sort();

/**
 * Just enough of prometheus-operator's ServiceMonitor to check the fields the chart renders:
 * the API server's strict field validation refuses any field this schema does not name.
 */
const SERVICE_MONITOR_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'servicemonitors.monitoring.coreos.com' },
  spec: {
    group: 'monitoring.coreos.com',
    scope: 'Namespaced',
    names: { kind: 'ServiceMonitor', listKind: 'ServiceMonitorList', plural: 'servicemonitors', singular: 'servicemonitor' },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            required: ['spec'],
            properties: {
              apiVersion: { type: 'string' },
              kind: { type: 'string' },
              metadata: { type: 'object' },
              spec: {
                type: 'object',
                required: ['selector', 'endpoints'],
                properties: {
                  namespaceSelector: {
                    type: 'object',
                    properties: { any: { type: 'boolean' }, matchNames: { type: 'array', items: { type: 'string' } } },
                  },
                  selector: {
                    type: 'object',
                    properties: { matchLabels: { type: 'object', additionalProperties: { type: 'string' } } },
                  },
                  endpoints: {
                    type: 'array',
                    minItems: 1,
                    items: {
                      type: 'object',
                      required: ['port'],
                      properties: {
                        port: { type: 'string' },
                        path: { type: 'string', pattern: '^/' },
                        interval: { type: 'string', pattern: '^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$' },
                        scrapeTimeout: { type: 'string', pattern: '^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$' },
                        relabelings: {
                          type: 'array',
                          items: {
                            type: 'object',
                            properties: {
                              sourceLabels: { type: 'array', items: { type: 'string', pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$' } },
                              targetLabel: { type: 'string' },
                              action: { type: 'string' },
                              regex: { type: 'string' },
                              replacement: { type: 'string' },
                            },
                          },
                        },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    ],
  },
};

/** The identity the agent's pods get from their ServiceAccount token. */
function serviceAccountIdentity(namespace: string, name: string): string[] {
  return [`--as=system:serviceaccount:${namespace}:${name}`, '--as-group=system:serviceaccounts', `--as-group=system:serviceaccounts:${namespace}`, '--as-group=system:authenticated'];
}

/** `kubectl auth can-i --list` as a set of "resource [names] verb" and "url verb" entries. */
function permissionSet(table: string): Set<string> {
  const lines = table.split('\n').filter((l) => l.trim() !== '');
  const header = lines.shift() ?? '';
  const cols = ['Resources', 'Non-Resource URLs', 'Resource Names', 'Verbs'].map((h) => header.indexOf(h));
  if (cols.some((c) => c < 0)) throw new Error(`unexpected kubectl auth can-i --list header: ${header}`);
  const field = (line: string, i: number) => line.slice(cols[i], i + 1 < cols.length ? cols[i + 1] : undefined).trim();
  const list = (text: string) => text.replace(/^\[|\]$/g, '').split(/\s+/).filter((x) => x !== '');
  const out = new Set<string>();
  for (const line of lines) {
    const [resource, urls, names, verbs] = [0, 1, 2, 3].map((i) => field(line, i));
    for (const verb of list(verbs!)) {
      if (resource !== '') out.add(`${resource} ${names} ${verb}`);
      for (const url of list(urls!)) out.add(`url ${url} ${verb}`);
    }
  }
  return out;
}

describeKube('the Helm chart against a real API server', () => {
  let cluster: KubeCluster;
  let helm: HelmRunner;

  const kubectlOk = async (args: string[], input?: string) => {
    const r = await cluster.kubectl(args, input !== undefined ? { input } : undefined);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };

  beforeAll(async () => {
    cluster = await startKubeCluster();
    helm = new HelmRunner(kubeToolPaths()?.helm ?? 'helm');
    for (const ns of ['tunkeeper', 'tk-rbac']) await kubectlOk(['create', 'namespace', ns]);
  }, CLUSTER_START_MS);
  afterAll(async () => {
    helm?.close();
    await cluster?.close();
  });

  it.each([
    ['default values', {}],
    ['every knob changed', { values: { fullnameOverride: 'edge', agent: { allowedPrefixes: ['vpn-'], resyncInterval: '30s' }, metrics: { port: 9500, service: { enabled: true } }, updateStrategy: { maxUnavailable: '10%' }, priorityClassName: 'system-cluster-critical', resources: { limits: { cpu: '500m', memory: '1Gi' } }, tolerations: [{ key: 'edge', operator: 'Equal', value: 'yes', effect: 'NoExecute', tolerationSeconds: 60 }], podLabels: { team: 'net' }, imagePullSecrets: [{ name: 'pull' }] } }],
    ['standalone', { values: { mode: 'standalone', standalone: { declarations: { 'a.yaml': 'apiVersion: tunkeeper.io/v1alpha1\nkind: TunDevice\nmetadata: {name: tk-a}\n' } } } }],
  ])('%s: every rendered object passes a server-side dry-run apply', async (_label, opts) => {
    const rendered = await helm.template({ ...opts, namespace: 'tunkeeper' });
    const r = await cluster.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: rendered.yaml });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const applied = r.stdout.split('\n').filter((l) => l.endsWith('serverside-applied (server dry run)'));
    expect(applied.map((l) => l.split(' ')[0]!.split('/')[1]).sort()).toEqual(rendered.objects.map((o) => o.metadata.name).sort());
  });

  it('the ServiceMonitor passes a server-side dry-run apply against a ServiceMonitor CRD', async () => {
    await kubectlOk(['apply', '--server-side', '-f', '-'], stringify(SERVICE_MONITOR_CRD));
    await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/servicemonitors.monitoring.coreos.com']);
    const rendered = await helm.template({ namespace: 'tunkeeper', values: { metrics: { serviceMonitor: { enabled: true, labels: { release: 'prometheus' } } } } });
    expect(rendered.kinds()).toContain('ServiceMonitor');
    const r = await cluster.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: rendered.yaml });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toContain('servicemonitor.monitoring.coreos.com/tunkeeper serverside-applied (server dry run)');

    // The CRD does check: a misspelt field is refused, so the pass above means something.
    const broken = rendered.yaml.replace('scrapeTimeout:', 'scrapeTimout:');
    const refused = await cluster.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: broken });
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({ code: 1, stderr: expect.stringContaining('scrapeTimout') });
  });

  describe('least privilege: the agent ServiceAccount, bound for real', () => {
    const NS = 'tk-rbac';
    const SA = 'rbac-tunkeeper';
    const agent = serviceAccountIdentity(NS, SA);
    const nobody = serviceAccountIdentity(NS, 'nobody');

    beforeAll(async () => {
      const rendered = await helm.template({ release: 'rbac', namespace: NS });
      expect(rendered.one('ServiceAccount').metadata.name).toBe(SA);
      await kubectlOk(['apply', '--server-side', '-f', '-'], rendered.yaml);
      // The API server's authorizer reads RBAC objects from its own informers, a moment behind the
      // write: wait until both bindings (the cluster-wide one and the Lease's Role) are in force.
      await pollUntil('the chart\'s RBAC to be in force', async () => (await canI('list', 'nodes')).endsWith(': yes') && (await canI('create', 'leases.coordination.k8s.io', { namespace: NS })).endsWith(': yes'), 60_000);
    });

    const canI = async (verb: string, resource: string, opts: { namespace?: string; subresource?: string } = {}) => {
      const args = ['auth', 'can-i', verb, resource, ...agent, '--namespace', opts.namespace ?? 'default'];
      if (opts.subresource) args.push('--subresource', opts.subresource);
      const r = await cluster.kubectl(args);
      const answer = r.stdout.trim().split(/\s/)[0];
      if (answer !== 'yes' && answer !== 'no') throw new Error(`kubectl ${args.join(' ')}: ${r.stdout} ${r.stderr}`);
      return `${verb} ${resource}${opts.subresource ? `/${opts.subresource}` : ''}${opts.namespace ? ` -n ${opts.namespace}` : ''}: ${answer}`;
    };

    it('may do everything in the API contract', async () => {
      const allowed: Array<[string, string, { namespace?: string; subresource?: string }?]> = [
        ['get', 'nodes'],
        ['list', 'nodes'],
        ['watch', 'nodes'],
        ['list', 'tundevices.tunkeeper.io'],
        ['watch', 'tundevices.tunkeeper.io'],
        ['get', 'tunnodestates.tunkeeper.io'],
        ['create', 'tunnodestates.tunkeeper.io'],
        ['patch', 'tunnodestates.tunkeeper.io'],
        ['patch', 'tunnodestates.tunkeeper.io', { subresource: 'status' }],
        ['create', 'events.events.k8s.io', { namespace: 'default' }],
        ['patch', 'events.events.k8s.io', { namespace: 'default' }],
        // The status Lease holder: every report, and TunDevice status (not its spec).
        ['list', 'tunnodestates.tunkeeper.io'],
        ['watch', 'tunnodestates.tunkeeper.io'],
        ['patch', 'tundevices.tunkeeper.io', { subresource: 'status' }],
        // The Lease, in the release namespace only.
        ['create', 'leases.coordination.k8s.io', { namespace: NS }],
        ['get', 'leases.coordination.k8s.io/tunkeeper-status-leader', { namespace: NS }],
        ['update', 'leases.coordination.k8s.io/tunkeeper-status-leader', { namespace: NS }],
      ];
      const answers = await Promise.all(allowed.map(([verb, resource, opts]) => canI(verb, resource, opts)));
      expect(answers).toEqual(answers.map((a) => a.replace(/: \w+$/, ': yes')));
    });

    it('may do nothing the agent must not do', async () => {
      const denied: Array<[string, string, { namespace?: string; subresource?: string }?]> = [
        // TunDevices are the admin's: read by informer only, never written; status by server-side apply only.
        ...['get', 'create', 'update', 'patch', 'delete', 'deletecollection'].map((v): [string, string] => [v, 'tundevices.tunkeeper.io']),
        ['update', 'tundevices.tunkeeper.io', { subresource: 'status' }],
        // TunNodeStates: server-side apply only, never deleted or replaced.
        ...['update', 'delete', 'deletecollection'].map((v): [string, string] => [v, 'tunnodestates.tunkeeper.io']),
        // Leases: only its own, only in the release namespace, never deleted, never listed or watched.
        ['get', 'leases.coordination.k8s.io/kube-controller-manager', { namespace: NS }],
        ['update', 'leases.coordination.k8s.io/another-lease', { namespace: NS }],
        ...['list', 'watch', 'delete', 'patch'].map((v): [string, string, { namespace: string }] => [v, 'leases.coordination.k8s.io', { namespace: NS }]),
        ...['create', 'get', 'update'].map((v): [string, string, { namespace: string }] => [v, 'leases.coordination.k8s.io', { namespace: 'kube-system' }]),
        ['update', 'leases.coordination.k8s.io/tunkeeper-status-leader', { namespace: 'kube-node-lease' }],
        ['update', 'tunnodestates.tunkeeper.io', { subresource: 'status' }],
        // Nodes: read only.
        ...['create', 'update', 'patch', 'delete'].map((v): [string, string] => [v, 'nodes']),
        ['patch', 'nodes', { subresource: 'status' }],
        ['get', 'nodes', { subresource: 'proxy' }],
        // Events: write new ones in `default` only; not read, not deleted, not elsewhere, not the core API's.
        ...['get', 'list', 'watch', 'update', 'delete'].map((v): [string, string, { namespace: string }] => [v, 'events.events.k8s.io', { namespace: 'default' }]),
        ['create', 'events.events.k8s.io', { namespace: 'kube-system' }],
        ['create', 'events.events.k8s.io', { namespace: NS }],
        ['create', 'events', { namespace: 'default' }],
        // Nothing else at all.
        ...['default', NS, 'kube-system'].flatMap((ns): Array<[string, string, { namespace: string }]> => [
          ['get', 'secrets', { namespace: ns }],
          ['list', 'secrets', { namespace: ns }],
          ['get', 'configmaps', { namespace: ns }],
        ]),
        ['create', 'pods', { namespace: NS }],
        ['create', 'pods', { namespace: NS, subresource: 'exec' }],
        ['list', 'pods', { namespace: NS }],
        ['create', 'serviceaccounts', { namespace: NS, subresource: 'token' }],
        ['update', 'daemonsets.apps', { namespace: NS }],
        ['get', 'customresourcedefinitions.apiextensions.k8s.io'],
        ['update', 'customresourcedefinitions.apiextensions.k8s.io'],
        ['create', 'clusterroles.rbac.authorization.k8s.io'],
        ['create', 'rolebindings.rbac.authorization.k8s.io', { namespace: 'default' }],
        ['impersonate', 'users'],
        ['impersonate', 'serviceaccounts', { namespace: NS }],
        ['*', '*'],
      ];
      const answers = await Promise.all(denied.map(([verb, resource, opts]) => canI(verb, resource, opts)));
      expect(answers).toEqual(answers.map((a) => a.replace(/: \w+$/, ': no')));
    });

    it('`kubectl auth can-i --list` shows nothing beyond the contract and what every account has', async () => {
      const contract = [
        'nodes [] get',
        'nodes [] list',
        'nodes [] watch',
        'tundevices.tunkeeper.io [] list',
        'tundevices.tunkeeper.io [] watch',
        'tunnodestates.tunkeeper.io [] get',
        'tunnodestates.tunkeeper.io [] list',
        'tunnodestates.tunkeeper.io [] watch',
        'tunnodestates.tunkeeper.io [] create',
        'tunnodestates.tunkeeper.io [] patch',
        'tunnodestates.tunkeeper.io/status [] patch',
        'tundevices.tunkeeper.io/status [] patch',
      ];
      const lease = ['leases.coordination.k8s.io [] create', 'leases.coordination.k8s.io [tunkeeper-status-leader] get', 'leases.coordination.k8s.io [tunkeeper-status-leader] update'];
      for (const [namespace, expected] of [
        ['default', [...contract, 'events.events.k8s.io [] create', 'events.events.k8s.io [] patch']],
        [NS, [...contract, ...lease]],
        ['kube-system', contract],
      ] as const) {
        const mine = permissionSet(await kubectlOk(['auth', 'can-i', '--list', '--namespace', namespace, ...agent]));
        const baseline = permissionSet(await kubectlOk(['auth', 'can-i', '--list', '--namespace', namespace, ...nobody]));
        // The baseline (self-reviews, discovery URLs) comes from the cluster's own roles for every
        // authenticated account; the chart adds exactly the contract on top.
        expect(baseline.size).toBeGreaterThan(0);
        expect({ namespace, lost: [...baseline].filter((p) => !mine.has(p)) }).toEqual({ namespace, lost: [] });
        expect({ namespace, added: [...mine].filter((p) => !baseline.has(p)).sort() }).toEqual({ namespace, added: [...expected].sort() });
      }
    });
  });

  it('NOTES.txt tells the admin what to do next, per mode', async () => {
    const notes = async (release: string, set: string[]) => {
      const r = await cluster.helm(['install', release, CHART_DIR, '--namespace', 'tunkeeper', '--dry-run=server', ...set.flatMap((s) => ['--set', s])]);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
      expect(r.stdout).toContain('NOTES:');
      return r.stdout.slice(r.stdout.indexOf('NOTES:'));
    };
    const kube = await notes('notes-kube', []);
    expect(kube).toContain('kind: TunDevice');
    expect(kube).toContain('kubectl get tundevices');
    expect(kube).toContain('kubectl wait --for=condition=Ready tundevice/tk-hello');
    expect(kube).toContain('tunkeeper/tunkeeper-status-leader');
    expect(kube).toContain('health/argocd-tundevice.lua');
    expect(kube).toContain('kubectl get tunnodestate <node-name> -o yaml');
    expect(kube).toContain('tk-, tun-, tap-');
    const standalone = await notes('notes-files', ['mode=standalone', 'standalone.existingConfigMap=site-tunnels']);
    expect(standalone).toContain('tunkeeper/site-tunnels');
    expect(standalone).not.toContain('kubectl get tundevices');
  });
});

describeKube("the admin's path: a cluster without the CRDs, as an admin's is", () => {
  // A cluster of its own, started without crds/: helm must install them. (Deleting the shared
  // cluster's CRDs first would test CRD deletion too, and it left a `kubectl delete --wait` waiting
  // with no bound of its own.)
  let cluster: KubeCluster;
  // Each step is bounded well inside the test's own timeout, so a step that hangs fails with its
  // command, what it printed and the API server's last lines, not with a bare jest timeout.
  const STEP_MS = 45_000;
  /** The whole test: two helm calls and several kubectl steps, each bounded, add up past jest's default 120 s. */
  const ADMIN_TEST_MS = 300_000;
  const kubectlOk = async (args: string[]) => {
    const r = await cluster.kubectl(args, { timeoutMs: STEP_MS });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  // helm install waits up to 60 s of its own for the CRDs it created to be Established.
  const helm = (args: string[]) => cluster.helm(args, { timeoutMs: 90_000 });

  beforeAll(async () => {
    cluster = await startKubeCluster({ crds: false });
  }, CLUSTER_START_MS);
  afterAll(async () => {
    await cluster?.close();
  });

  it('helm install (CRDs included), apply the examples, kubectl get tundevices, uninstall keeps CRDs and objects', async () => {
    const before = await kubectlOk(['get', 'crd', '-o', 'name']);
    expect(before).not.toContain('tunkeeper.io');

    const install = await helm([
      'install',
      'tunkeeper',
      CHART_DIR,
      '--namespace',
      'tunkeeper-system',
      '--create-namespace',
      // What helm did, step by step, in stderr: a failure below quotes it.
      '--debug',
      // No kubelet runs here, so no pod ever pulls it.
      '--set',
      'image.repository=registry.invalid/tunkeeper',
    ]);
    expect({ code: install.code, stderr: install.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(install.stdout).toContain('STATUS: deployed');
    expect(install.stdout).toContain('kubectl get tundevices');

    const established = await kubectlOk(['get', 'crd', 'tundevices.tunkeeper.io', 'tunnodestates.tunkeeper.io', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status}{"\\n"}{end}']);
    expect(established.trim().split('\n').sort()).toEqual(['tundevices.tunkeeper.io=True', 'tunnodestates.tunkeeper.io=True']);

    const daemonSet = JSON.parse(await kubectlOk(['get', 'daemonset', 'tunkeeper', '--namespace', 'tunkeeper-system', '-o', 'json'])) as {
      metadata: { labels: Record<string, string> };
      spec: { template: { spec: { containers: Array<{ image: string }> } } };
    };
    expect(daemonSet.spec.template.spec.containers[0]!.image).toBe(`registry.invalid/tunkeeper:${PACKAGE_VERSION}`);
    expect(daemonSet.metadata.labels['app.kubernetes.io/managed-by']).toBe('Helm');

    const releases = JSON.parse((await helm(['list', '--namespace', 'tunkeeper-system', '-o', 'json'])).stdout) as Array<{ name: string; status: string; app_version: string }>;
    expect(releases.map((r) => [r.name, r.status, r.app_version])).toEqual([['tunkeeper', 'deployed', PACKAGE_VERSION]]);

    expect(EXAMPLES.length).toBeGreaterThan(0);
    for (const example of EXAMPLES) {
      const applied = await kubectlOk(['apply', '-f', join(ROOT, 'examples', example)]);
      expect(applied).toMatch(/^tundevice\.tunkeeper\.io\/\S+ created/m);
    }
    const listing = await kubectlOk(['get', 'tundevices']);
    expect(kubectlHeader(listing)).toEqual(['NAME', 'READY', 'STATUS', 'IFNAME', 'MODE', 'MTU', 'AGE']);
    // No agent runs here (no kubelet), so no status has been written: READY and STATUS are empty.
    const table = kubectlTable(listing);
    expect(table).toContainEqual(expect.objectContaining({ NAME: 'tk-p2p', READY: '', STATUS: '', IFNAME: 'tk-p2p0', MODE: 'tun', MTU: '1420' }));
    expect(table.length).toBe(EXAMPLES.length);
    const wide = await kubectlOk(['get', 'tund', 'tk-p2p', '-o', 'wide']);
    expect(kubectlHeader(wide)).toEqual(['NAME', 'READY', 'STATUS', 'IFNAME', 'MODE', 'MTU', 'UP', 'ADDRESSES', 'AGE']);
    expect(kubectlTable(wide)[0]!.ADDRESSES).toContain('192.0.2.1/30');

    // Helm never deletes CRDs, so uninstalling the agents leaves every TunDevice in place.
    const uninstall = await helm(['uninstall', 'tunkeeper', '--namespace', 'tunkeeper-system']);
    expect(uninstall.code).toBe(0);
    expect((await cluster.kubectl(['get', 'daemonset', 'tunkeeper', '--namespace', 'tunkeeper-system'], { timeoutMs: STEP_MS })).code).toBe(1);
    expect((await cluster.kubectl(['get', 'tundevice', 'tk-p2p'], { timeoutMs: STEP_MS })).code).toBe(0);
  }, ADMIN_TEST_MS);
});
