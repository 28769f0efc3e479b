// The sharding rows' chart (bench/sharding-chart.ts, the README's figure): one bar per setup and workload,
// scaled per workload, the 16-shard ratios beside them, a gap where a setup has no figure.
import { describe, expect, it } from 'vitest';
import { renderShardingChart } from '../bench/sharding-chart.ts';

describe('sharding chart', () => {
  it('draws each setup\'s median throughput per workload with the 16-shard ratios', () => {
    const svg = renderShardingChart({
      header: 'Measured <today>',
      rows: [
        { setup: 'etcd', workload: 'put c=64', runs: [{ opsPerSecond: 2000 }, { opsPerSecond: 4000 }, { opsPerSecond: 3000 }] },
        { setup: 'synod 1 shard', workload: 'put c=64', runs: [{ opsPerSecond: 6000 }] },
        { setup: 'synod 16 shards', workload: 'put c=64', runs: [{ opsPerSecond: 1500 }] },
        { setup: 'etcd', workload: 'range c=16', runs: [{ opsPerSecond: 100 }] },
        { setup: 'synod 16 shards', workload: 'range c=16', runs: [{ opsPerSecond: 50 }] },
      ],
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('Measured &lt;today&gt;');
    // Medians: 3,000 / 6,000 / 1,500; the longest bar of a workload fills the panel (360 px).
    expect(svg).toContain('>3,000<');
    expect(svg).toContain('>6,000<');
    expect(svg).toContain('>1,500<');
    const widths = [...svg.matchAll(/<rect x="230" y="\d+" width="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(widths).toEqual([180, 360, 90, 360, 180]);
    expect(svg).toContain('0.50×, 0.25×');
    // No one-shard figure for the second workload: a dash, and no ratio.
    expect(svg).toContain('fill="#999">—</text>');
    expect(svg.match(/×, /g)?.length).toBe(1);
  });
});
