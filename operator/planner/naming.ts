// Names and addresses derived from a cluster's name: children, pods, PVCs, stable peer DNS names.
// Shared by the planner, the renderer, the observer and the server pods' entrypoint.

import { CLIENT_PORT, PEER_PORT } from '../api/types.ts';

/** volumeClaimTemplates name of the data volume; PVCs are `${DATA_VOLUME}-${pod}`. */
export const DATA_VOLUME = 'data';

export function peerServiceName(cluster: string): string {
  return `${cluster}-peer`;
}

export function clientServiceName(cluster: string): string {
  return `${cluster}-client`;
}

export function podName(cluster: string, ordinal: number): string {
  return `${cluster}-${ordinal}`;
}

export function pvcName(cluster: string, ordinal: number): string {
  return `${DATA_VOLUME}-${podName(cluster, ordinal)}`;
}

/** Stable DNS name of a server pod through the headless peer Service. */
export function podHost(cluster: string, namespace: string, ordinal: number): string {
  return `${podName(cluster, ordinal)}.${peerServiceName(cluster)}.${namespace}.svc`;
}

/** https when the peer port serves TLS (spec.tls): members advertise, and are added with, that URL. */
export function peerUrl(cluster: string, namespace: string, ordinal: number, tls = false): string {
  return `${tls ? 'https' : 'http'}://${podHost(cluster, namespace, ordinal)}:${PEER_PORT}`;
}

export function clientUrl(cluster: string, namespace: string, ordinal: number, tls = false): string {
  return `${tls ? 'https' : 'http'}://${podHost(cluster, namespace, ordinal)}:${CLIENT_PORT}`;
}

/** The ordinal at the end of `${cluster}-${n}` (or `data-${cluster}-${n}`), or null. */
export function ordinalOf(prefix: string, name: string): number | null {
  if (!name.startsWith(`${prefix}-`)) return null;
  const rest = name.slice(prefix.length + 1);
  return /^(0|[1-9][0-9]*)$/.test(rest) ? Number(rest) : null;
}

/** The ordinal whose stable peer URL this is, or null for a URL that is not one of this cluster's. */
export function ordinalOfPeerUrl(cluster: string, namespace: string, url: string): number | null {
  const match = /^https?:\/\/([^:/]+)(?::\d+)?\/?$/.exec(url);
  if (match === null) return null;
  const suffix = `.${peerServiceName(cluster)}.${namespace}.svc`;
  let host = match[1];
  if (host.endsWith('.cluster.local')) host = host.slice(0, -'.cluster.local'.length);
  if (!host.endsWith(suffix)) return null;
  return ordinalOf(cluster, host.slice(0, -suffix.length));
}
