/**
 * The contract between one reconcile (observe → plan → apply, controller/reconcile/reconcile.ts) and the
 * loop that decides when to run it (controller/loop/). The loop never looks inside a plan: it
 * only needs to know whether the pass converged, which devices failed (for their retry timers),
 * and whether the observation could be trusted.
 */
import type { DesiredDevice } from '../model/desired.js';
import type { ActionFailure } from '../apply/failure.js';
import type { Finding, Plan } from '../plan/actions.js';

export type { ActionFailure };

export interface ReconcileInput {
  desired: DesiredDevice[];
  /**
   * False until every desired-state source has completed its first sync, or while one is
   * unhealthy (fail static): then nothing owned that is not desired is deleted.
   */
  prune: boolean;
  /**
   * TunDevice names whose drift this pass leaves unrepaired (the loop holds a device that keeps
   * being changed behind tunkeeper's back). They stay desired — nothing of theirs is pruned — and
   * plan emits no action for them and says so (device status 'held'). Default: none.
   */
  hold?: readonly string[];
  /**
   * Trust nothing kept from earlier passes: re-list every table in full (a periodic or otherwise
   * verifying pass). Default false: a reconciler may reuse what it can prove unchanged.
   */
  verify?: boolean;
}

export interface DeviceReport {
  device: string;
  ifname: string;
  ifindex?: number;
  /** 'held': left unrepaired in this pass (ReconcileInput.hold); its state was not checked. */
  status: 'ready' | 'degraded' | 'refused' | 'conflict' | 'held';
  findings: Finding[];
  failures: ActionFailure[];
}

export interface ReconcileResult {
  /** 'converged': every action succeeded; 'failed': some failed; 'interrupted': the observation was not trustworthy (e.g. NLM_F_DUMP_INTR after retries) and nothing was applied. */
  outcome: 'converged' | 'failed' | 'interrupted';
  plan: Plan | null;
  applied: number;
  failures: ActionFailure[];
  devices: DeviceReport[];
  /** Drift repaired in this pass, by kind (e.g. 'mtu', 'address', 'route', 'device'), for metrics. */
  repairs: Record<string, number>;
}

export interface ReconcileOnce {
  (input: ReconcileInput): Promise<ReconcileResult>;
}
