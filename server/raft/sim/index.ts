// Barrel for the raft cluster simulator so other test suites can reuse it.
export { SimCluster, encodeCtx, decodeCtx } from './cluster.ts';
export type { SimClusterOptions, CrashPoint, ConfChangeResult } from './cluster.ts';
export { SimNetwork, NO_FAULTS } from './network.ts';
export type { NetworkFaults } from './network.ts';
export { SimStorage } from './storage.ts';
export type { SimSnapshot } from './storage.ts';
export { SafetyChecker, SafetyViolation } from './checker.ts';
export type { StoredLog } from './checker.ts';
export { runChaos, HEAVY_FAULTS } from './chaos.ts';
export type { ChaosOptions, ChaosResult } from './chaos.ts';
