// When the operator's generated certificates (spec.tls.generate) are made, renewed or re-signed: a pure
// decision over what the Secrets hold now. Members reload certificate files without a restart
// (server/tls/certificate-files.ts polls them) and kubelet swaps a Secret volume's files atomically,
// so a renewal is a Secret update, never a pod roll.
//
// Renewal: a certificate is due when a third of its lifetime is left (as cert-manager's default).
// CA renewal keeps every member trusting every certificate throughout, in two steps:
//   1. prepare: a next CA is made and added to the trust bundle (ca.crt of every Secret), while leaf
//      certificates stay signed by the current CA;
//   2. promote, once the bundle has had TRUST_PROPAGATION_MS to reach every pod (kubelet's Secret
//      volume sync is about a minute): the next CA signs, every leaf is re-issued by it.
// A CA stays in the bundle until it expires, so certificates it signed remain valid while they live.

import type { CertificateFacts } from './x509.ts';

/** How long a changed trust bundle is given to reach every pod before certificates signed by a new CA appear. */
export const TRUST_PROPAGATION_MS = 10 * 60_000;
export const CA_VALIDITY_DAYS = 3650;
export const DAY_MS = 86_400_000;

export type LeafRole = 'server' | 'peer' | 'operator';
export const LEAF_ROLES: readonly LeafRole[] = ['server', 'peer', 'operator'];

/** The moment a certificate is due for renewal: two thirds into its lifetime. */
export function renewalDueAtMs(facts: Pick<CertificateFacts, 'notBeforeMs' | 'notAfterMs'>): number {
  return facts.notBeforeMs + Math.floor(((facts.notAfterMs - facts.notBeforeMs) * 2) / 3);
}

export function renewalDue(facts: Pick<CertificateFacts, 'notBeforeMs' | 'notAfterMs'>, nowMs: number): boolean {
  return nowMs >= renewalDueAtMs(facts);
}

export interface CaState {
  /** The CA that signs leaf certificates now. */
  signer: CertificateFacts;
  /** A CA prepared to take over (already in the trust bundle), if any. */
  next: CertificateFacts | null;
  /** Every CA in the trust bundle, in order. */
  trust: readonly CertificateFacts[];
  /** When the trust bundle last changed (ms). */
  trustChangedAtMs: number;
}

export interface LeafState {
  facts: CertificateFacts;
  /** Signed by the current signer CA. */
  signedBySigner: boolean;
  /** The Secret's ca.crt is the current trust bundle. */
  bundleCurrent: boolean;
}

export interface GeneratedTlsState {
  /** null: no CA Secret (or one that does not load). */
  ca: CaState | null;
  /** null: no Secret, or one that does not load. */
  leaves: Readonly<Record<LeafRole, LeafState | null>>;
}

/** The names a leaf certificate must carry. */
export interface LeafWant {
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
}

export type CaStep =
  | { type: 'keep' }
  | { type: 'create'; reason: string }
  | { type: 'prepare-next'; reason: string }
  | { type: 'promote-next'; reason: string }
  | { type: 'prune-trust'; expiredFingerprints: string[]; reason: string };

export type LeafStep =
  | { type: 'keep' }
  | { type: 'issue'; reason: string }
  | { type: 'refresh-bundle'; reason: string };

export interface TlsDecision {
  ca: CaStep;
  leaves: Record<LeafRole, LeafStep>;
}

function sameNames(facts: CertificateFacts, want: LeafWant): boolean {
  const sorted = (list: readonly string[]): string => [...list].sort().join(',');
  // node prints IPv6 SANs expanded (0:0:0:0:0:0:0:1); the wants are compared after the same expansion.
  return sorted(facts.dnsNames) === sorted(want.dnsNames) && sorted(facts.ipAddresses) === sorted(want.ipAddresses.map(expandIpv6));
}

/** "::1" → "0:0:0:0:0:0:0:1", as node:crypto prints IPv6 subject alternative names; IPv4 unchanged. */
export function expandIpv6(address: string): string {
  if (!address.includes(':')) return address;
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  return groups.map((g) => parseInt(g, 16).toString(16).toUpperCase()).join(':');
}

/** What to do with the CA and each leaf certificate at `nowMs`. */
export function decideGeneratedTls(state: GeneratedTlsState, wants: Readonly<Record<LeafRole, LeafWant>>, nowMs: number): TlsDecision {
  const leaves = {} as Record<LeafRole, LeafStep>;
  const ca = state.ca;
  if (ca === null) {
    for (const role of LEAF_ROLES) leaves[role] = { type: 'issue', reason: 'no CA yet' };
    return { ca: { type: 'create', reason: 'no CA yet' }, leaves };
  }
  let caStep: CaStep = { type: 'keep' };
  if (ca.next !== null && nowMs - ca.trustChangedAtMs >= TRUST_PROPAGATION_MS) {
    caStep = { type: 'promote-next', reason: 'the next CA has been trusted by every member for long enough' };
  } else if (ca.next === null && (renewalDue(ca.signer, nowMs) || nowMs >= ca.signer.notAfterMs)) {
    caStep = { type: 'prepare-next', reason: `the CA expires at ${new Date(ca.signer.notAfterMs).toISOString()}` };
  } else {
    const expired = ca.trust.filter((c) => c.notAfterMs <= nowMs && c.fingerprint !== ca.signer.fingerprint && c.fingerprint !== ca.next?.fingerprint);
    if (expired.length > 0) caStep = { type: 'prune-trust', expiredFingerprints: expired.map((c) => c.fingerprint), reason: 'expired CAs leave the trust bundle' };
  }
  const bundleChanges = caStep.type === 'prepare-next' || caStep.type === 'prune-trust';
  for (const role of LEAF_ROLES) {
    const leaf = state.leaves[role];
    if (caStep.type === 'promote-next') leaves[role] = { type: 'issue', reason: 'the CA was renewed' };
    else if (leaf === null) leaves[role] = { type: 'issue', reason: 'no certificate yet' };
    else if (!leaf.signedBySigner) leaves[role] = { type: 'issue', reason: 'not signed by the current CA' };
    else if (renewalDue(leaf.facts, nowMs)) leaves[role] = { type: 'issue', reason: `a third of its lifetime is left (expires ${new Date(leaf.facts.notAfterMs).toISOString()})` };
    else if (!sameNames(leaf.facts, wants[role])) leaves[role] = { type: 'issue', reason: 'its names differ from the cluster\'s' };
    else if (bundleChanges || !leaf.bundleCurrent) leaves[role] = { type: 'refresh-bundle', reason: 'the trust bundle changed' };
    else leaves[role] = { type: 'keep' };
  }
  return { ca: caStep, leaves };
}

/** The earliest moment a decision would change without anything else happening (for a requeue). */
export function nextTlsReviewAtMs(state: GeneratedTlsState): number | null {
  if (state.ca === null) return null;
  const times: number[] = [];
  if (state.ca.next !== null) times.push(state.ca.trustChangedAtMs + TRUST_PROPAGATION_MS);
  else times.push(renewalDueAtMs(state.ca.signer));
  for (const c of state.ca.trust) times.push(c.notAfterMs);
  for (const role of LEAF_ROLES) {
    const leaf = state.leaves[role];
    if (leaf !== null) times.push(renewalDueAtMs(leaf.facts));
  }
  return Math.min(...times);
}
