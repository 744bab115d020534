/**
 * Every benchmark, in the order they run. A new benchmark is one file in bench/benchmarks/ and one
 * line here; its name is one of the stable names in DESIGN.md ("Benchmarks: one report").
 */
import type { Benchmark } from './benchmark.js';
import { tunReadPps } from './benchmarks/tun-read-pps.js';
import { tunWritePps } from './benchmarks/tun-write-pps.js';
import { tunOffloadGbps } from './benchmarks/tun-offload-gbps.js';
import { dumpRoutes65k } from './benchmarks/dump-routes-65k.js';
import { programRoutes65k } from './benchmarks/program-routes-65k.js';
import { driftRepairP99Ms } from './benchmarks/drift-repair-p99-ms.js';
import { enobufsStormConvergeMs } from './benchmarks/enobufs-storm-converge-ms.js';
import { rss100kRoutesMb } from './benchmarks/rss-100k-routes-mb.js';
import { rolloutProbeMs } from './benchmarks/rollout-probe-ms.js';
import { rssKubeAgentMb } from './benchmarks/rss-kube-agent-mb.js';
import { fleetConverge } from './benchmarks/fleet-converge.js';

export const benchmarks: readonly Benchmark[] = [tunReadPps, tunWritePps, tunOffloadGbps, dumpRoutes65k, programRoutes65k, driftRepairP99Ms, enobufsStormConvergeMs, rss100kRoutesMb, rssKubeAgentMb, rolloutProbeMs, fleetConverge];
