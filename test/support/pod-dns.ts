// Test-only name resolution of a SynodCluster's pods to loopback addresses (see pod-dns-preload.ts).
import type dnsModule from 'node:dns';

export interface PodDns {
  /** First three octets, e.g. 127.77.0: pod i is at prefix.(10 + i). */
  prefix: string;
  cluster: string;
  namespace: string;
}

export function podIp(dns: PodDns, ordinal: number): string {
  return `${dns.prefix}.${10 + ordinal}`;
}

/** The loopback address of a pod or Service name of the cluster, or null for any other name. */
export function resolvePodName(dns: PodDns, hostname: string): string | null {
  const pod = new RegExp(`^${dns.cluster}-(\\d+)\\.${dns.cluster}-peer\\.${dns.namespace}\\.svc(\\.cluster\\.local)?\\.?$`).exec(hostname);
  if (pod !== null) return podIp(dns, Number(pod[1]));
  if (new RegExp(`^${dns.cluster}-client\\.${dns.namespace}\\.svc(\\.cluster\\.local)?\\.?$`).test(hostname)) return podIp(dns, 0);
  return null;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dnsModule.LookupAddress[], family?: number) => void;

/** Wraps dns.lookup and dns.promises.lookup of this process. */
export function installPodDns(dns: typeof dnsModule, spec: PodDns): void {
  const original = dns.lookup.bind(dns) as (...args: unknown[]) => void;
  const patched = (hostname: string, options: unknown, callback?: unknown): void => {
    const cb = (typeof options === 'function' ? options : callback) as LookupCallback;
    const opts = (typeof options === 'object' && options !== null ? options : {}) as { all?: boolean };
    const ip = resolvePodName(spec, hostname);
    if (ip === null) {
      original(hostname, ...(typeof options === 'function' ? [options] : [options, callback]));
      return;
    }
    process.nextTick(() => (opts.all === true ? cb(null, [{ address: ip, family: 4 }]) : cb(null, ip, 4)));
  };
  (dns as unknown as { lookup: unknown }).lookup = patched;
  const originalPromise = dns.promises.lookup.bind(dns.promises) as (hostname: string, options?: unknown) => Promise<unknown>;
  (dns.promises as unknown as { lookup: unknown }).lookup = async (hostname: string, options?: { all?: boolean }): Promise<unknown> => {
    const ip = resolvePodName(spec, hostname);
    if (ip === null) return originalPromise(hostname, options);
    return options?.all === true ? [{ address: ip, family: 4 }] : { address: ip, family: 4 };
  };
}
