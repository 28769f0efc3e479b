// freePorts across test processes: what two processes pick at the same moment never overlaps (each pick
// is claimed in a folder they share), and every pick is below the kernel's ephemeral range.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { freePorts } from './ports.ts';

const run = promisify(execFile);
const portsModule = fileURLToPath(new URL('./ports.ts', import.meta.url));

async function picksOfAnotherProcess(n: number): Promise<number[]> {
  const script = `const { freePorts } = await import(${JSON.stringify(portsModule)}); console.log(JSON.stringify(await freePorts(${n})));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
  return JSON.parse(stdout) as number[];
}

describe('freePorts', () => {
  it('hands out no port twice, within a process or across processes picking at once', async () => {
    const [a, b, own] = await Promise.all([picksOfAnotherProcess(300), picksOfAnotherProcess(300), freePorts(300)]);
    const all = [...a, ...b, ...own];
    expect(new Set(all).size).toBe(all.length);
    const ephemeralStart = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    expect(all.every((p) => p >= 20_000 && p < ephemeralStart)).toBe(true);
  });
});
