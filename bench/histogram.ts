// Latency histograms for the load generator: HDR histograms (hdr-histogram-js) in microseconds,
// encoded to compressed base64 to cross worker-thread boundaries, merged in the main thread, and
// summarised into the percentiles the report prints.
import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

/** Largest latency the histograms track: 120 s, in microseconds. */
const HIGHEST_TRACKABLE_US = 120_000_000;

export function newHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_TRACKABLE_US,
    numberOfSignificantValueDigits: 3,
    bitBucketSize: 32,
    autoResize: false,
    useWebAssembly: false,
  });
}

/** Records one latency given in (fractional) milliseconds. */
export function recordMs(h: Histogram, latencyMs: number): void {
  const us = Math.round(latencyMs * 1000);
  h.recordValue(us < 1 ? 1 : us > HIGHEST_TRACKABLE_US ? HIGHEST_TRACKABLE_US : us);
}

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/** Merges encoded histograms (from several workers or rounds) into a new one. */
export function mergeEncoded(encoded: readonly string[]): Histogram {
  const total = newHistogram();
  for (const e of encoded) {
    if (e === '') continue;
    total.add(hdr.decodeFromCompressedBase64(e));
  }
  return total;
}

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

export function summarise(h: Histogram): LatencySummary {
  const ms = (us: number): number => Math.round(us) / 1000;
  if (h.totalCount === 0) return { count: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0 };
  return {
    count: h.totalCount,
    p50Ms: ms(h.getValueAtPercentile(50)),
    p90Ms: ms(h.getValueAtPercentile(90)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    maxMs: ms(h.maxValue),
    meanMs: ms(h.mean),
  };
}
