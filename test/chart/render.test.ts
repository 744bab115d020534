/**
 * The chart without a cluster: `helm lint` (also --strict) for every mode, the values schema
 * refusing typos and out-of-range settings, and what `helm template` renders for default and
 * non-default values — read as objects, and the agent's settings file read by the agent's own
 * settings parser.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { main } from '../../controller/cli/main.js';
import { DEFAULT_SETTINGS, parseSettingsText } from '../../controller/agent/settings.js';
import { describeKube, kubeToolPaths } from '../helpers/kube-cluster.js';
import { agentContainer, CHART_DIR, HelmRunner, mounts, PACKAGE_VERSION, podSpec, ROOT, type K8sObject, type Rendered } from './chart-render.js';

const EXAMPLE = readFileSync(join(ROOT, 'examples', 'point-to-point.yaml'), 'utf8');
const TAP_EXAMPLE = readFileSync(join(ROOT, 'examples', 'tap-with-mac.yaml'), 'utf8');

/** Mode standalone, with the optional metrics Service and ServiceMonitor on. */
const STANDALONE_VALUES = {
  mode: 'standalone',
  standalone: { declarations: { 'p2p.yaml': EXAMPLE, 'tap.yml': TAP_EXAMPLE } },
  metrics: { serviceMonitor: { enabled: true, labels: { release: 'prometheus' } } },
};

/** Every knob away from its default. */
const CUSTOM_VALUES = {
  fullnameOverride: 'edge-agent',
  image: { repository: 'registry.example.com/net/tunkeeper', digest: `sha256:${'ab'.repeat(32)}`, pullPolicy: 'Always' },
  imagePullSecrets: [{ name: 'registry-pull' }],
  agent: { routeProtocol: 201, allowedPrefixes: ['vpn-', 'tk-'], allowDefaultRoute: true, resyncInterval: '1m30s', logLevel: 'debug' },
  metrics: { port: 9500, service: { enabled: true, annotations: { 'prometheus.io/scrape': 'true' } } },
  serviceAccount: { name: 'edge-agent-sa' },
  stateHostPath: '/var/lib/edge/tunkeeper',
  resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '1', memory: '512Mi' } },
  tolerations: [{ key: 'node-role.kubernetes.io/edge', operator: 'Exists', effect: 'NoSchedule' }],
  nodeSelector: { 'tunkeeper.io/edge': 'true' },
  priorityClassName: '',
  updateStrategy: { maxUnavailable: '20%' },
  podLabels: { team: 'network' },
  podAnnotations: { 'example.com/owner': 'network' },
};

const STANDARD_LABEL_KEYS = [
  'app.kubernetes.io/component',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/managed-by',
  'app.kubernetes.io/name',
  'app.kubernetes.io/part-of',
  'app.kubernetes.io/version',
  'helm.sh/chart',
];

function settingsOf(r: Rendered, configMapName: string) {
  const cm = r.one('ConfigMap', configMapName) as K8sObject & { data: Record<string, string> };
  return parseSettingsText(cm.data['agent.yaml']!, `ConfigMap/${configMapName}:agent.yaml`);
}

function expectStandardLabels(r: Rendered, release: string): void {
  for (const o of r.objects) {
    expect({ object: `${o.kind}/${o.metadata.name}`, labels: o.metadata.labels }).toEqual({
      object: `${o.kind}/${o.metadata.name}`,
      labels: expect.objectContaining({
        'app.kubernetes.io/name': 'tunkeeper',
        'app.kubernetes.io/instance': release,
        'app.kubernetes.io/version': PACKAGE_VERSION,
        'app.kubernetes.io/component': 'agent',
        'app.kubernetes.io/managed-by': 'Helm',
        'app.kubernetes.io/part-of': 'tunkeeper',
        'helm.sh/chart': 'tunkeeper-0.1.0',
      }),
    });
  }
}

describeKube('the Helm chart, rendered', () => {
  let helm: HelmRunner;
  beforeAll(() => {
    helm = new HelmRunner(kubeToolPaths()?.helm ?? 'helm');
  });
  afterAll(() => helm?.close());

  it('Chart.yaml: apiVersion v2, version 0.1.0, appVersion = package.json version', () => {
    const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
    expect({ apiVersion: chart.apiVersion, name: chart.name, version: chart.version, appVersion: chart.appVersion }).toEqual({
      apiVersion: 'v2',
      name: 'tunkeeper',
      version: '0.1.0',
      appVersion: PACKAGE_VERSION,
    });
  });

  it('helm lint and helm lint --strict pass for default, standalone + ServiceMonitor, and custom values', async () => {
    for (const values of [undefined, STANDALONE_VALUES, CUSTOM_VALUES]) {
      for (const strict of [[], ['--strict']]) {
        const args = ['lint', ...strict, CHART_DIR, ...(values ? ['-f', helm.valuesFile(values)] : [])];
        const r = await helm.run(args);
        expect({ args: args.slice(0, 2), values: values ? Object.keys(values) : 'default', code: r.code, out: r.stdout + r.stderr }).toEqual({
          args: args.slice(0, 2),
          values: values ? Object.keys(values) : 'default',
          code: 0,
          out: expect.stringContaining('1 chart(s) linted, 0 chart(s) failed'),
        });
      }
    }
  });

  it.each([
    ['a misspelt setting', ['agent.alowedPrefixes={tk-}'], /alowedPrefixes/],
    ['a misspelt top-level key', ['tolerattions[0].operator=Exists'], /tolerattions/],
    ['an unknown mode', ['mode=kubernetes'], /mode/],
    ['a route protocol of the kernel', ['agent.routeProtocol=3'], /routeProtocol/],
    ['a duration without a unit the agent knows', ['agent.resyncInterval=5min'], /resyncInterval/],
    ['a log level the agent does not have', ['agent.logLevel=verbose'], /logLevel/],
    ['a prefix with a slash', ['agent.allowedPrefixes={tk/}'], /allowedPrefixes/],
    ['a declaration file the agent would not read', ['mode=standalone', 'standalone.declarations.edge\\.json=x'], /edge\.json/],
    ['maxUnavailable 0 (a rollout that can never progress)', ['updateStrategy.maxUnavailable=0'], /maxUnavailable/],
    ['a device plugin resource name that is no resource name', ['tunDevice.resourceName=tun device'], /resourceName/],
  ])('the values schema rejects %s, in lint and in template', async (_what, set, message) => {
    const setArgs = set.flatMap((s) => ['--set', s]);
    const lint = await helm.run(['lint', CHART_DIR, ...setArgs]);
    expect({ code: lint.code, out: lint.stdout + lint.stderr }).toEqual({ code: 1, out: expect.stringMatching(message) });
    const template = await helm.run([...helm.templateArgs(), ...setArgs]);
    expect({ code: template.code, err: template.stderr }).toEqual({ code: 1, err: expect.stringMatching(/values don't meet the specifications of the schema/) });
    expect(template.stderr).toMatch(message);
  });

  it('standalone without any declarations is refused (an empty directory would remove every device)', async () => {
    const r = await helm.run([...helm.templateArgs(), '--set', 'mode=standalone']);
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 1, err: expect.stringContaining('mode: standalone needs declarations') });
  });

  it('default values: a DaemonSet on the host network with only NET_ADMIN, /dev/net/tun, NODE_NAME, probes, the state directory', async () => {
    const r = await helm.template({ release: 'tunkeeper', namespace: 'tunkeeper-system' });
    expect(r.kinds()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'Role', 'Role', 'RoleBinding', 'RoleBinding', 'ServiceAccount']);
    expectStandardLabels(r, 'tunkeeper');
    for (const o of r.objects) {
      if (o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding') expect(o.metadata.namespace).toBeUndefined();
      else expect([o.kind, o.metadata.name, o.metadata.namespace]).toEqual([o.kind, o.metadata.name, o.metadata.name.endsWith('-events') ? 'default' : 'tunkeeper-system']);
    }

    const ds = r.one('DaemonSet', 'tunkeeper');
    const spec = podSpec(ds);
    const agent = agentContainer(ds);
    expect(spec.hostNetwork).toBe(true);
    expect(spec.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(spec.serviceAccountName).toBe('tunkeeper');
    expect(spec.automountServiceAccountToken).toBe(true);
    expect(spec.priorityClassName).toBe('system-node-critical');
    expect(spec.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(spec.securityContext).toEqual({ seccompProfile: { type: 'RuntimeDefault' } });

    expect(agent.image).toBe(`tunkeeper:${PACKAGE_VERSION}`);
    expect(agent.args).toEqual(['run', '--kube', '--metrics-address', '0.0.0.0:9464', '--config', '/etc/tunkeeper/agent.yaml']);
    expect(agent.securityContext).toEqual({
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(agent.env).toEqual([
      { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ]);
    expect(agent.ports).toEqual([{ name: 'metrics', containerPort: 9464, protocol: 'TCP' }]);
    expect(agent.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'metrics' } });
    expect(agent.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'metrics' } });
    expect(agent.resources).toEqual({ requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '384Mi' } });

    expect(mounts(ds)).toEqual({
      'tun-device': { mountPath: '/dev/net/tun', source: { hostPath: { path: '/dev/net/tun', type: 'CharDevice' } } },
      'agent-settings': { mountPath: '/etc/tunkeeper/agent.yaml', subPath: 'agent.yaml', readOnly: true, source: { configMap: { name: 'tunkeeper' } } },
      state: { mountPath: '/var/lib/tunkeeper', source: { hostPath: { path: '/var/lib/tunkeeper', type: 'DirectoryOrCreate' } } },
    });

    const dsSpec = ds.spec as { selector: { matchLabels: Record<string, string> }; updateStrategy: unknown; template: { metadata: { labels: Record<string, string> } } };
    expect(dsSpec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
    expect(dsSpec.template.metadata.labels).toEqual(expect.objectContaining(dsSpec.selector.matchLabels));
    expect(Object.keys(dsSpec.template.metadata.labels).sort()).toEqual(STANDARD_LABEL_KEYS);

    // The chart's settings file is what the agent's own parser reads at start: the defaults, exactly.
    expect(settingsOf(r, 'tunkeeper')).toEqual(DEFAULT_SETTINGS);
  });

  it('default values: RBAC is exactly the agent API contract, the Events Role only in `default`', async () => {
    const r = await helm.template({ release: 'tk', namespace: 'net' });
    expect(r.one('ClusterRole', 'tk-tunkeeper').rules).toEqual([
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['tunkeeper.io'], resources: ['tundevices'], verbs: ['list', 'watch'] },
      { apiGroups: ['tunkeeper.io'], resources: ['tunnodestates'], verbs: ['get', 'list', 'watch', 'create', 'patch'] },
      { apiGroups: ['tunkeeper.io'], resources: ['tundevices/status'], verbs: ['patch'] },
      { apiGroups: ['tunkeeper.io'], resources: ['tunnodestates/status'], verbs: ['patch'] },
    ]);
    const leader = r.one('Role', 'tk-tunkeeper-leader');
    expect(leader.metadata.namespace).toBe('net');
    expect(leader.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['tunkeeper-status-leader'], verbs: ['get', 'update'] },
    ]);
    expect(r.one('RoleBinding', 'tk-tunkeeper-leader')).toMatchObject({ metadata: { namespace: 'net' }, roleRef: { kind: 'Role', name: 'tk-tunkeeper-leader' } });
    const role = r.one('Role', 'tk-tunkeeper-events');
    expect(role.metadata.namespace).toBe('default');
    expect(role.rules).toEqual([{ apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] }]);
    const subject = [{ kind: 'ServiceAccount', name: 'tk-tunkeeper', namespace: 'net' }];
    expect(r.one('ClusterRoleBinding', 'tk-tunkeeper')).toMatchObject({ roleRef: { kind: 'ClusterRole', name: 'tk-tunkeeper' }, subjects: subject });
    expect(r.one('RoleBinding', 'tk-tunkeeper-events')).toMatchObject({
      metadata: { namespace: 'default' },
      roleRef: { kind: 'Role', name: 'tk-tunkeeper-events' },
      subjects: subject,
    });
    expect(r.one('ServiceAccount', 'tk-tunkeeper').automountServiceAccountToken).toBeUndefined();
  });

  it('custom values: names, image digest, settings, port, Service, tolerations, strategy and labels follow the values', async () => {
    const r = await helm.template({ release: 'edge', values: CUSTOM_VALUES });
    expect(r.kinds()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'Role', 'Role', 'RoleBinding', 'RoleBinding', 'Service', 'ServiceAccount']);
    expectStandardLabels(r, 'edge');
    const ds = r.one('DaemonSet', 'edge-agent');
    const spec = podSpec(ds);
    const agent = agentContainer(ds);
    expect(agent.image).toBe(`registry.example.com/net/tunkeeper@sha256:${'ab'.repeat(32)}`);
    expect(agent.args).toEqual(['run', '--kube', '--metrics-address', '0.0.0.0:9500', '--config', '/etc/tunkeeper/agent.yaml']);
    expect(agent.ports).toEqual([{ name: 'metrics', containerPort: 9500, protocol: 'TCP' }]);
    expect(agent.resources).toEqual(CUSTOM_VALUES.resources);
    expect(spec.serviceAccountName).toBe('edge-agent-sa');
    expect(r.one('ServiceAccount').metadata.name).toBe('edge-agent-sa');
    expect(r.one('ClusterRoleBinding').subjects).toEqual([{ kind: 'ServiceAccount', name: 'edge-agent-sa', namespace: 'tunkeeper' }]);
    expect(spec.tolerations).toEqual(CUSTOM_VALUES.tolerations);
    expect(spec.priorityClassName).toBeUndefined();
    // Helm merges a map value into the default one: Linux nodes that carry the label.
    expect((spec as unknown as { nodeSelector: unknown }).nodeSelector).toEqual({ 'kubernetes.io/os': 'linux', 'tunkeeper.io/edge': 'true' });
    expect((spec as unknown as { imagePullSecrets: unknown }).imagePullSecrets).toEqual([{ name: 'registry-pull' }]);
    expect(mounts(ds).state!.source).toEqual({ hostPath: { path: '/var/lib/edge/tunkeeper', type: 'DirectoryOrCreate' } });
    const template = (ds.spec as { template: { metadata: { labels: Record<string, string>; annotations: Record<string, string> } } }).template;
    expect(template.metadata.labels.team).toBe('network');
    expect(template.metadata.annotations['example.com/owner']).toBe('network');
    expect((ds.spec as { updateStrategy: unknown }).updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '20%', maxSurge: 0 } });

    expect(settingsOf(r, 'edge-agent')).toEqual({
      ...DEFAULT_SETTINGS,
      policy: { ...DEFAULT_SETTINGS.policy, routeProtocol: 201, allowedPrefixes: ['vpn-', 'tk-'], allowDefaultRoute: true },
      resyncIntervalMs: 90_000,
      logLevel: 'debug',
    });

    const service = r.one('Service', 'edge-agent-metrics') as K8sObject & { spec: Record<string, unknown> };
    expect(service.spec).toEqual({
      clusterIP: 'None',
      selector: (ds.spec as { selector: { matchLabels: unknown } }).selector.matchLabels,
      ports: [{ name: 'metrics', port: 9500, targetPort: 'metrics', protocol: 'TCP' }],
    });
    expect(service.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true' });

    // A changed setting changes the pod template, so the agents restart with it.
    const defaults = await helm.template({ release: 'edge', set: ['fullnameOverride=edge-agent'] });
    const checksum = (o: K8sObject) => (o.spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations['checksum/agent-settings'];
    expect(checksum(ds)).toMatch(/^[0-9a-f]{64}$/);
    expect(checksum(ds)).not.toBe(checksum(defaults.one('DaemonSet')));
  });

  it('tunDevice.resourceName: /dev/net/tun from a device plugin (one more limit) instead of the hostPath, nothing else changed', async () => {
    const plain = await helm.template({ release: 'tunkeeper', namespace: 'tunkeeper-system' });
    const plugin = await helm.template({ release: 'tunkeeper', namespace: 'tunkeeper-system', set: ['tunDevice.resourceName=squat.ai/tun'] });
    const [before, after] = [plain.one('DaemonSet'), plugin.one('DaemonSet')];
    expect(agentContainer(after).resources).toEqual({ requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '384Mi', 'squat.ai/tun': 1 } });
    expect(mounts(after)['tun-device']).toBeUndefined();
    expect(podSpec(after).volumes.map((v) => v.name)).toEqual(podSpec(before).volumes.map((v) => v.name).filter((n) => n !== 'tun-device'));
    // Still one capability, no privilege: the device plugin widens only the device cgroup.
    expect(agentContainer(after).securityContext).toEqual(agentContainer(before).securityContext);
    const strip = (ds: K8sObject) => {
      const copy = JSON.parse(JSON.stringify(ds)) as K8sObject;
      const spec = podSpec(copy);
      const agent = agentContainer(copy);
      spec.volumes = spec.volumes.filter((v) => v.name !== 'tun-device');
      agent.volumeMounts = agent.volumeMounts.filter((m) => m.name !== 'tun-device');
      delete agent.resources;
      return copy;
    };
    expect(strip(after)).toEqual(strip(before));
    // Without resources of its own the limit still renders.
    const bare = await helm.template({ set: ['tunDevice.resourceName=squat.ai/tun', 'resources=null'] });
    expect(agentContainer(bare.one('DaemonSet')).resources).toEqual({ limits: { 'squat.ai/tun': 1 } });
  });

  it('standalone: declarations from a ConfigMap mounted as a directory, no RBAC, no API token', async () => {
    const r = await helm.template({ release: 'files', values: STANDALONE_VALUES });
    expect(r.kinds()).toEqual(['ConfigMap', 'ConfigMap', 'DaemonSet', 'Service', 'ServiceAccount', 'ServiceMonitor']);
    for (const kind of ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']) expect([kind, r.has(kind)]).toEqual([kind, false]);
    expectStandardLabels(r, 'files');
    expect(r.one('ServiceAccount').automountServiceAccountToken).toBe(false);

    const ds = r.one('DaemonSet', 'files-tunkeeper');
    expect(podSpec(ds).automountServiceAccountToken).toBe(false);
    expect(agentContainer(ds).args).toEqual(['run', '-f', '/etc/tunkeeper/declarations', '--metrics-address', '0.0.0.0:9464', '--config', '/etc/tunkeeper/agent.yaml']);
    const m = mounts(ds);
    expect(m.declarations).toEqual({ mountPath: '/etc/tunkeeper/declarations', readOnly: true, source: { configMap: { name: 'files-tunkeeper-declarations' } } });
    expect(m.state).toBeUndefined();
    expect(m['tun-device']!.source).toEqual({ hostPath: { path: '/dev/net/tun', type: 'CharDevice' } });

    // The files arrive byte for byte, and the agent's own validator accepts them as it will read them.
    const declarations = r.one('ConfigMap', 'files-tunkeeper-declarations') as K8sObject & { data: Record<string, string> };
    expect(declarations.data).toEqual({ 'p2p.yaml': EXAMPLE, 'tap.yml': TAP_EXAMPLE });
    const dir = mkdtempSync(join(tmpdir(), 'tunkeeper-chart-declarations-'));
    try {
      for (const [file, text] of Object.entries(declarations.data)) writeFileSync(join(dir, file), text);
      expect(readdirSync(dir).sort()).toEqual(['p2p.yaml', 'tap.yml']);
      let report = '';
      const stderr = { write: (t: string) => ((report += t), true) } as unknown as NodeJS.WritableStream;
      expect(await main(['validate', '-f', dir], { stderr })).toBe(0);
      expect(report).toContain('valid: 2 TunDevices in 2 files');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    const monitor = r.one('ServiceMonitor', 'files-tunkeeper');
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(monitor.metadata.labels?.release).toBe('prometheus');
    expect(monitor.spec).toMatchObject({
      namespaceSelector: { matchNames: ['tunkeeper'] },
      selector: { matchLabels: (ds.spec as { selector: { matchLabels: unknown } }).selector.matchLabels },
      endpoints: [{ port: 'metrics', path: '/metrics', interval: '30s', scrapeTimeout: '10s' }],
    });
    expect(r.one('Service', 'files-tunkeeper-metrics').spec).toMatchObject({ clusterIP: 'None', ports: [{ name: 'metrics', port: 9464 }] });
  });

  it('standalone with an existing ConfigMap: mounts that one, renders none of its own', async () => {
    const r = await helm.template({ release: 'files', set: ['mode=standalone', 'standalone.existingConfigMap=site-tunnels'] });
    expect(r.kinds()).toEqual(['ConfigMap', 'DaemonSet', 'ServiceAccount']);
    expect(r.one('ConfigMap').metadata.name).toBe('files-tunkeeper');
    expect(mounts(r.one('DaemonSet')).declarations!.source).toEqual({ configMap: { name: 'site-tunnels' } });
  });
});
