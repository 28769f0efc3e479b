// The rules a membership change must pass before it is proposed, as etcd applies them (its
// ValidateConfigurationChange plus --strict-reconfig-check): pure functions over the current
// membership and the leader's view of which members are active. Each returns etcd's error or null.
import { ETCD_ERRORS, type EtcdErrorSpec } from '../etcd/errors.ts';
import type { MembershipRecord } from '../shard/kv-state-machine.ts';

/** etcd's --max-learners default. */
export const MAX_LEARNERS = 1;

export interface MembershipView {
  /** Current members (no tombstones). */
  members: MembershipRecord[];
  /** Members the leader heard from recently (itself included), by id. */
  active: Set<string>;
}

/** Peer URLs must be absolute http(s) URLs with a host and a port and nothing else. */
export function peerUrlsValid(urls: string[]): boolean {
  if (urls.length === 0) return false;
  for (const raw of urls) {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      return false;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
    if (!u.hostname || !u.port) return false;
    if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) return false;
  }
  return true;
}

function normalized(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}`;
}

function urlTaken(view: MembershipView, urls: string[], exceptId?: string): boolean {
  const wanted = new Set(urls.map(normalized));
  return view.members.some((m) => m.id !== exceptId && m.peerUrls.some((u) => wanted.has(normalized(u))));
}

const quorumOf = (voters: number): number => Math.floor(voters / 2) + 1;

export function checkAdd(view: MembershipView, peerUrls: string[], isLearner: boolean): EtcdErrorSpec | null {
  if (!peerUrlsValid(peerUrls)) return ETCD_ERRORS.MEMBER_BAD_URLS;
  if (urlTaken(view, peerUrls)) return ETCD_ERRORS.PEER_URL_EXIST;
  if (isLearner) {
    if (view.members.filter((m) => m.isLearner).length >= MAX_LEARNERS) return ETCD_ERRORS.TOO_MANY_LEARNERS;
    return null;
  }
  // A new voter counts towards quorum at once but is not running yet: the members already running
  // must be a quorum of the larger group, or the cluster would stall until the new one starts.
  const voters = view.members.filter((m) => !m.isLearner);
  const started = voters.filter((m) => view.active.has(m.id)).length;
  if (started < quorumOf(voters.length + 1)) return ETCD_ERRORS.MEMBER_NOT_ENOUGH_STARTED;
  return null;
}

export function checkRemove(view: MembershipView, id: string): EtcdErrorSpec | null {
  const target = view.members.find((m) => m.id === id);
  if (!target) return ETCD_ERRORS.MEMBER_NOT_FOUND;
  if (target.isLearner) return null;
  const remaining = view.members.filter((m) => !m.isLearner && m.id !== id);
  const started = remaining.filter((m) => view.active.has(m.id)).length;
  if (remaining.length > 0 && started < quorumOf(remaining.length)) return ETCD_ERRORS.MEMBER_NOT_ENOUGH_STARTED;
  return null;
}

export function checkPromote(view: MembershipView, id: string, learnerCaughtUp: boolean): EtcdErrorSpec | null {
  const target = view.members.find((m) => m.id === id);
  if (!target) return ETCD_ERRORS.MEMBER_NOT_FOUND;
  if (!target.isLearner) return ETCD_ERRORS.MEMBER_NOT_LEARNER;
  if (!learnerCaughtUp) return ETCD_ERRORS.LEARNER_NOT_READY;
  const voters = view.members.filter((m) => !m.isLearner);
  const started = voters.filter((m) => view.active.has(m.id)).length + (view.active.has(id) ? 1 : 0);
  if (started < quorumOf(voters.length + 1)) return ETCD_ERRORS.MEMBER_NOT_ENOUGH_STARTED;
  return null;
}

export function checkUpdate(view: MembershipView, id: string, peerUrls: string[]): EtcdErrorSpec | null {
  if (!view.members.some((m) => m.id === id)) return ETCD_ERRORS.MEMBER_NOT_FOUND;
  if (!peerUrlsValid(peerUrls)) return ETCD_ERRORS.MEMBER_BAD_URLS;
  if (urlTaken(view, peerUrls, id)) return ETCD_ERRORS.PEER_URL_EXIST;
  return null;
}
