/**
 * A real Kubernetes API server for the tests: etcd and kube-apiserver (built from Go modules,
 * test/helpers/kube-tools.ts) on loopback, with a certificate authority, serving and client
 * certificates and a service-account signing key made on the fly, RBAC authorization on, and the
 * repository's CRDs loaded and Established. No controller-manager or kubelet runs: tests create
 * Nodes, namespaces and ServiceAccounts themselves, and nothing is garbage-collected.
 *
 * Between clients and the API server sits a TCP proxy of the harness's own, so an outage test can
 * black-hole the API server (connections accepted, nothing answered, open ones frozen) or refuse
 * it, without touching any firewall or the host's network.
 *
 * Every process is started by us and ended by its pid: on close(), at the worker's exit, and by
 * the global teardown for anything a crashed worker left (pids are recorded in the cluster's
 * folder, which carries the run's prefix).
 *
 * No jest in here: bench/ (fleet-converge) starts the same cluster. kube-cluster.ts adds the
 * tier's `describeKube` for the tests.
 */
import { runProcess, TOOL_TIMEOUT_MS, type RunOptions, type RunResult } from './run-process.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { kubeRunPrefix } from './kube-leftovers.js';
import { kubeToolPaths, missingKubeTools, type KubeToolPaths } from './kube-tools.js';

export { kubeToolPaths };

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export type ProxyMode = 'pass' | 'blackhole' | 'refuse';

export type { RunResult };
export type ToolRunOptions = Pick<RunOptions, 'input' | 'timeoutMs'>;

/** kubectl's and helm's bound (run-process.ts says why); a timeout also carries the API server's last lines. */
export { TOOL_TIMEOUT_MS };

/**
 * The jest timeout of a beforeAll that calls startKubeCluster: etcd and the API server each get up
 * to 90 s to answer, then the CRDs must be Established; jest's default 120 s is less than that.
 */
export const CLUSTER_START_MS = 240_000;

export interface KubeCluster {
  /** https://127.0.0.1:PORT of the API server itself. */
  readonly server: string;
  /** Admin kubeconfig (client certificate in system:masters) pointing at `server`. */
  readonly kubeconfigPath: string;
  /** The same admin, through the outage proxy: give this one to an agent under test. */
  readonly proxyKubeconfigPath: string;
  readonly dir: string;
  readonly tools: KubeToolPaths;
  setProxyMode(mode: ProxyMode): void;
  kubeConfig(): KubeConfig;
  /** The running kube-apiserver's pid (a new one after startApiServer): its CPU and memory in /proc. */
  apiServerPid(): number | undefined;
  stopApiServer(): Promise<void>;
  startApiServer(): Promise<void>;
  /** kubectl as the admin; past `timeoutMs` (default TOOL_TIMEOUT_MS) it is killed and rejects with its output and the API server's last log lines. */
  kubectl(args: string[], opts?: ToolRunOptions): Promise<RunResult>;
  /** helm as the admin, its cache and config inside the cluster's folder; `timeoutMs` as for kubectl. */
  helm(args: string[], opts?: ToolRunOptions): Promise<RunResult>;
  createNode(name: string, labels?: Record<string, string>): Promise<void>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
}

/** CA, API server serving certificate (127.0.0.1/localhost), admin client certificate, SA key pair. */
function makePki(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=tunkeeper-test-ca']);
  const sign = (name: string, subj: string, ext: string) => {
    openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj]);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
  };
  sign('apiserver', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n');
  sign('admin', '/O=system:masters/CN=tunkeeper-test-admin', 'extendedKeyUsage=clientAuth\n');
  openssl(dir, ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key']);
  openssl(dir, ['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
}

function kubeconfigYaml(dir: string, server: string): string {
  const b64 = (f: string) => readFileSync(join(dir, f)).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64('ca.crt')}`,
    'users:',
    '- name: admin',
    '  user:',
    `    client-certificate-data: ${b64('admin.crt')}`,
    `    client-key-data: ${b64('admin.key')}`,
    'contexts:',
    '- name: test',
    '  context: {cluster: test, user: admin}',
    'current-context: test',
    '',
  ].join('\n');
}

/** Children of this worker, killed synchronously if the worker exits without close(). */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) if (c.exitCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
});

function startProcess(dir: string, name: string, bin: string, args: string[]): ChildProcess {
  const log = createWriteStream(join(dir, `${name}.log`), { flags: 'a' });
  const child = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (child.pid !== undefined) appendFileSync(join(dir, 'pids'), `${child.pid}\n`);
  return child;
}

async function stopProcess(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

function lastLines(file: string, n = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

async function waitUntil(what: string, child: ChildProcess, log: string, probe: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) while starting:\n${lastLines(log)}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs / 1000} s:\n${lastLines(log)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function httpsOk(url: string, dir: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      url,
      { ca: readFileSync(join(dir, 'ca.crt')), cert: readFileSync(join(dir, 'admin.crt')), key: readFileSync(join(dir, 'admin.key')), timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** The outage proxy: a TCP relay whose mode the test flips. */
class OutageProxy {
  readonly #server: Server;
  readonly #pairs = new Set<{ client: Socket; upstream?: Socket }>();
  #mode: ProxyMode = 'pass';
  port = 0;

  constructor(private readonly upstreamPort: number) {
    this.#server = createServer((client) => this.#accept(client));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as { port: number }).port;
  }

  #accept(client: Socket): void {
    if (this.#mode === 'refuse') {
      client.destroy();
      return;
    }
    const pair: { client: Socket; upstream?: Socket } = { client };
    this.#pairs.add(pair);
    const drop = () => {
      client.destroy();
      pair.upstream?.destroy();
      this.#pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    if (this.#mode === 'blackhole') {
      // Accepted and then silence: what a dropped route or firewall looks like to a client that
      // already resolved the address. The connection joins the others when the mode returns to pass.
      client.pause();
      return;
    }
    this.#connect(pair, drop);
  }

  #connect(pair: { client: Socket; upstream?: Socket }, drop: () => void): void {
    const upstream = connect(this.upstreamPort, '127.0.0.1');
    pair.upstream = upstream;
    upstream.on('error', drop).on('close', drop);
    pair.client.pipe(upstream);
    upstream.pipe(pair.client);
    pair.client.resume();
  }

  setMode(mode: ProxyMode): void {
    this.#mode = mode;
    for (const pair of [...this.#pairs]) {
      if (mode === 'refuse') {
        pair.client.destroy();
        pair.upstream?.destroy();
      } else if (mode === 'blackhole') {
        // Freeze both directions: bytes stay in the kernel's buffers, as on a lossy path. Unpipe
        // first: a pipe resumes its source on every 'drain', so pause() alone does not hold.
        pair.client.unpipe();
        pair.upstream?.unpipe();
        pair.client.pause();
        pair.upstream?.pause();
      } else if (pair.upstream) {
        if (pair.client.readableFlowing === false) {
          pair.client.pipe(pair.upstream);
          pair.upstream.pipe(pair.client);
        }
        pair.client.resume();
        pair.upstream.resume();
      } else {
        this.#connect(pair, () => {
          pair.client.destroy();
          pair.upstream?.destroy();
          this.#pairs.delete(pair);
        });
      }
    }
  }

  async close(): Promise<void> {
    for (const p of this.#pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}


export interface StartKubeClusterOptions {
  /** Load crds/ and wait until they are Established (default true). */
  crds?: boolean;
  /** Extra kube-apiserver flags, after the harness's own (e.g. `--feature-gates=WatchList=false`). */
  apiServerArgs?: string[];
}

export async function startKubeCluster(opts: StartKubeClusterOptions = {}): Promise<KubeCluster> {
  const tools = kubeToolPaths();
  if (!tools) throw new Error(`Kubernetes test tools missing (${missingKubeTools().join(', ')}): run \`node scripts/kube-tools.mjs\``);
  const dir = mkdtempSync(kubeRunPrefix());
  let etcd: ChildProcess | undefined;
  let apiserver: ChildProcess | undefined;
  let proxy: OutageProxy | undefined;
  try {
    makePki(dir);
    const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
    etcd = startProcess(dir, 'etcd', tools.etcd, [
      '--name=test',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=test=http://127.0.0.1:${etcdPeer}`,
      // A throwaway store: durability is not what these tests are about, and fsync dominates on a loaded disk.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    const etcdProc = etcd;
    await waitUntil('etcd', etcdProc, join(dir, 'etcd.log'), () => httpOk(`http://127.0.0.1:${etcdClient}/health`));

    const server = `https://127.0.0.1:${apiPort}`;
    const apiArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
      `--client-ca-file=${join(dir, 'ca.crt')}`,
      `--service-account-issuer=https://kubernetes.default.svc`,
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--authorization-mode=RBAC',
      // Only an allocator setting (no network is configured from it); a benchmarking range anyway.
      '--service-cluster-ip-range=198.18.0.0/24',
      '--profiling=false',
      '--v=1',
      ...(opts.apiServerArgs ?? []),
    ];
    const startApi = async () => {
      apiserver = startProcess(dir, 'kube-apiserver', tools.apiserver, apiArgs);
      await waitUntil('kube-apiserver', apiserver, join(dir, 'kube-apiserver.log'), () => httpsOk(`${server}/readyz`, dir));
    };
    await startApi();

    proxy = new OutageProxy(apiPort);
    await proxy.listen();
    const kubeconfigPath = join(dir, 'admin.kubeconfig');
    const proxyKubeconfigPath = join(dir, 'admin-proxy.kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfigYaml(dir, server));
    writeFileSync(proxyKubeconfigPath, kubeconfigYaml(dir, `https://127.0.0.1:${proxy.port}`));

    // helm keeps a cache, config and registry login per user: all inside the cluster's folder.
    const toolEnv: NodeJS.ProcessEnv = {
      ...process.env,
      KUBECONFIG: kubeconfigPath,
      HOME: dir,
      HELM_CACHE_HOME: join(dir, 'helm', 'cache'),
      HELM_CONFIG_HOME: join(dir, 'helm', 'config'),
      HELM_DATA_HOME: join(dir, 'helm', 'data'),
    };
    // A tool that hangs is killed at its bound; the error then says what the API server was doing.
    const run = (bin: string) => (args: string[], o: ToolRunOptions = {}) =>
      runProcess(bin, args, { env: toolEnv, timeoutMs: TOOL_TIMEOUT_MS, ...o }).catch((e: Error) => {
        throw new Error(`${e.message}\nkube-apiserver's last lines:\n${lastLines(join(dir, 'kube-apiserver.log'), 20)}`);
      });
    const kubectl = run(tools.kubectl);
    const helm = run(tools.helm);

    if (opts.crds ?? true) {
      const crdDir = join(ROOT, 'crds');
      const applied = await kubectl(['apply', '--server-side', '-f', crdDir]);
      if (applied.code !== 0) throw new Error(`loading ${crdDir} failed:\n${applied.stderr}`);
      const names = readdirSync(crdDir).filter((f) => /\.ya?ml$/.test(f));
      if (names.length === 0) throw new Error(`no CRDs in ${crdDir}`);
      const est = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
      if (est.code !== 0) throw new Error(`CRDs not Established:\n${est.stderr}`);
    }

    const outage = proxy;
    let closed: Promise<void> | undefined;
    return {
      server,
      kubeconfigPath,
      proxyKubeconfigPath,
      dir,
      tools,
      setProxyMode: (m) => outage.setMode(m),
      kubeConfig: () => {
        const kc = new KubeConfig();
        kc.loadFromFile(kubeconfigPath);
        return kc;
      },
      apiServerPid: () => (apiserver?.exitCode === null && apiserver.signalCode === null ? apiserver.pid : undefined),
      stopApiServer: () => stopProcess(apiserver, 'SIGKILL'),
      startApiServer: startApi,
      kubectl,
      helm,
      createNode: async (name, labels = {}) => {
        const node = { apiVersion: 'v1', kind: 'Node', metadata: { name, labels } };
        const r = await kubectl(['create', '-f', '-'], { input: JSON.stringify(node) });
        if (r.code !== 0) throw new Error(`creating Node ${name} failed: ${r.stderr}`);
      },
      close: () =>
        (closed ??= (async () => {
          await outage.close();
          await stopProcess(apiserver);
          await stopProcess(etcdProc);
          rmSync(dir, { recursive: true, force: true });
        })()),
    };
  } catch (e) {
    await proxy?.close();
    await stopProcess(apiserver, 'SIGKILL');
    await stopProcess(etcd, 'SIGKILL');
    // Keep the logs of a cluster that failed to start: the error quotes them, the folder has all.
    throw e;
  }
}
