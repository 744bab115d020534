/**
 * `tunkeeper run [-f PATH...] [--kube] [--netns NAME] [--metrics-address ADDR] [--config FILE] ...`:
 * the agent. Watches the declarations (files, TunDevice objects, or both) and the kernel,
 * reconciles, serves /metrics, /healthz and /readyz, logs JSON lines on stdout, until SIGTERM or
 * SIGINT (exit 0; the devices stay).
 *
 * With --kube: the node is NODE_NAME (the DaemonSet's downward API) or --node-name; credentials
 * are the Pod's service account when KUBERNETES_SERVICE_HOST is set, else --kubeconfig,
 * $KUBECONFIG or ~/.kube/config.
 */
import { Command, Option } from 'commander';
import type { CommandContext } from '../context.js';
import { startAgent, type AgentOptions, type ReconcilerFactory } from '../../agent/agent.js';
import { createLogger } from '../../telemetry/logger.js';
import { createAgentReconciler } from '../../agent/reconciler.js';
import { LOG_LEVELS, loadSettings, type SettingsFlags } from '../../agent/settings.js';

interface RunOptions extends Omit<SettingsFlags, 'allowedPrefixes'> {
  file?: string[];
  allowedPrefix?: string[];
  kube?: boolean;
  nodeName?: string;
  kubeconfig?: string;
  namespace?: string;
  netns?: string;
  config?: string;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** The reconciler is injectable so in-process tests can drive the command with a fake one. */
export function registerRunWith(createReconciler: ReconcilerFactory) {
  return (program: Command, ctx: CommandContext): void => {
    program
      .command('run')
      .description('the agent: keep the declared devices as declared until SIGTERM/SIGINT (exit 0; devices stay)')
      .option('-f, --file <path>', 'declaration file or directory of *.yaml/*.yml (repeatable)', collect)
      .option('--kube', 'read the TunDevice objects selected for this node from the API server; report in its TunNodeState and Events')
      .option('--node-name <name>', 'this node (default: $NODE_NAME)')
      .option('--kubeconfig <file>', 'API server credentials outside a Pod (default: $KUBECONFIG, ~/.kube/config)')
      .option('--state-dir <dir>', 'where the last complete cluster state (--kube) and the last version of each device that passed its probes are kept (default /var/lib/tunkeeper)')
      .option('--netns <name>', 'network namespace: NAME (/run/netns/NAME) or a path')
      .option('--config <file>', 'agent settings (YAML); flags override it')
      .option('--metrics-address <addr>', 'HOST:PORT, :PORT or off for /metrics, /healthz, /readyz (default 127.0.0.1:9464)')
      .option('--route-protocol <n>', "rtm_protocol of tunkeeper's routes (default 116)")
      .option('--allowed-prefix <prefix>', 'interface name prefix declarations may use (repeatable; default tk-, tun-, tap-)', collect)
      .option('--allow-default-route', 'let declarations own the default route')
      .option('--resync-interval <duration>', 'full resync at least this often, e.g. 30s, 5m (0: off; default 5m)')
      .addOption(new Option('--log-level <level>', 'log level (default info)').choices([...LOG_LEVELS]))
      .option('--namespace <name>', 'with --kube: the namespace of the status Lease (default: $POD_NAMESPACE, else tunkeeper-system)')
      .option('--leader-elect-lease-duration <duration>', 'with --kube: the status Lease duration (default 15s)')
      .option('--leader-elect-renew-deadline <duration>', 'with --kube: the Lease holder stands down if it cannot renew for this long (default 10s)')
      .option('--leader-elect-retry-period <duration>', 'with --kube: the Lease holder renews this often (default 2s)')
      .option('--rollout-slot-grace <duration>', 'with --kube, while leading: a rollout slot unanswered for the probe timeout plus this long is reclaimed (default 60s)')
      .option('--monitor-rcvbuf <bytes>', 'netlink receive buffer of the Monitor (default 4 MiB)')
      .action(async (opts: RunOptions) => {
        const paths = opts.file ?? [];
        if (!opts.kube && paths.length === 0) throw new Error('nothing to watch: give -f PATH (a file or directory of declarations), --kube, or both');
        const nodeName = opts.nodeName ?? process.env.NODE_NAME;
        if (opts.kube && (nodeName === undefined || nodeName === '')) {
          throw new Error('--kube needs the node name: set NODE_NAME (the DaemonSet passes spec.nodeName) or give --node-name');
        }
        if (!opts.kube && (opts.nodeName !== undefined || opts.kubeconfig !== undefined || opts.namespace !== undefined)) throw new Error('--node-name, --kubeconfig and --namespace go with --kube');
        const settings = await loadSettings({
          ...(opts.config !== undefined ? { configFile: opts.config } : {}),
          flags: {
            ...(opts.routeProtocol !== undefined ? { routeProtocol: opts.routeProtocol } : {}),
            ...(opts.allowedPrefix !== undefined ? { allowedPrefixes: opts.allowedPrefix } : {}),
            ...(opts.allowDefaultRoute ? { allowDefaultRoute: true } : {}),
            ...(opts.resyncInterval !== undefined ? { resyncInterval: opts.resyncInterval } : {}),
            ...(opts.logLevel !== undefined ? { logLevel: opts.logLevel } : {}),
            ...(opts.metricsAddress !== undefined ? { metricsAddress: opts.metricsAddress } : {}),
            ...(opts.monitorRcvbuf !== undefined ? { monitorRcvbuf: opts.monitorRcvbuf } : {}),
            ...(opts.stateDir !== undefined ? { stateDir: opts.stateDir } : {}),
            ...(opts.leaderElectLeaseDuration !== undefined ? { leaderElectLeaseDuration: opts.leaderElectLeaseDuration } : {}),
            ...(opts.leaderElectRenewDeadline !== undefined ? { leaderElectRenewDeadline: opts.leaderElectRenewDeadline } : {}),
            ...(opts.leaderElectRetryPeriod !== undefined ? { leaderElectRetryPeriod: opts.leaderElectRetryPeriod } : {}),
            ...(opts.rolloutSlotGrace !== undefined ? { rolloutSlotGrace: opts.rolloutSlotGrace } : {}),
          },
        });
        const logger = createLogger(settings.logLevel, ctx.stdout);
        let kube: AgentOptions['kube'];
        if (opts.kube) {
          // Imported here, not at the top: a file-only agent never loads the Kubernetes client (controller/agent/agent.ts).
          const { loadKubeConfig, releaseNamespace } = await import('../../kube/kubeconfig.js');
          const { kubeConfig, from } = loadKubeConfig(opts.kubeconfig !== undefined ? { file: opts.kubeconfig } : {});
          logger.info({ node: nodeName, credentials: from, server: kubeConfig.getCurrentCluster()?.server }, 'cluster source: watching TunDevices for this node');
          const { namespace, from: namespaceFrom } = releaseNamespace(opts.namespace);
          logger.info({ namespace, from: namespaceFrom }, 'the status Lease is in this namespace');
          kube = { kubeConfig, nodeName: nodeName!, stateDir: settings.stateDir, namespace, leaderElection: settings.leaderElection, fleetStatus: { slotGraceMs: settings.rolloutSlotGraceMs } };
        }
        const agent = await startAgent({
          paths,
          ...(kube ? { kube } : {}),
          ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
          settings,
          logger,
          createReconciler,
        });
        await new Promise<void>((resolve) => {
          const stop = (signal: NodeJS.Signals): void => {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            logger.info({ signal }, `${signal}: stopping`);
            agent.stop().then(resolve, (e: unknown) => {
              logger.error({ err: e }, 'error while stopping');
              ctx.exitCode = 1;
              resolve();
            });
          };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
        });
      });
  };
}

export const registerRun = registerRunWith(createAgentReconciler);
