// Per-process readings from /proc (Linux): resident memory from /proc/<pid>/status and CPU time
// from /proc/<pid>/stat, for the server members the benchmark started.
import fs from 'node:fs';

export interface MemoryReading {
  /** VmRSS: all resident pages, including file-backed ones (etcd's bbolt mmap counts here). */
  rssBytes: number;
  /** RssAnon: heap and other anonymous memory. */
  rssAnonBytes: number;
  /** RssFile: resident file-backed pages (mapped files, shared libraries). */
  rssFileBytes: number;
}

export function readMemory(pid: number): MemoryReading {
  let text = '';
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // the process has exited: zeros, and the run reports the dead member
  }
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rssBytes: kb('VmRSS'), rssAnonBytes: kb('RssAnon'), rssFileBytes: kb('RssFile') };
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
const USER_HZ = 100;

/** User + system CPU time the process has used so far, in ms. */
export function readCpuMs(pid: number): number {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // After the command name: state is field 3, utime field 14, stime field 15 (1-based in proc(5)).
    const utime = Number(fields[14 - 3]);
    const stime = Number(fields[15 - 3]);
    return ((utime + stime) * 1000) / USER_HZ;
  } catch {
    return 0;
  }
}

/** This process's own CPU time (every thread, so worker threads included), in ms. */
export function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Machine-wide busy CPU time so far (all cores, from /proc/stat), in ms: to spot other load on the machine. */
export function machineBusyCpuMs(): number {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...: busy is everything but idle and iowait.
    const busy = f.reduce((a, b) => a + b, 0) - (f[3] ?? 0) - (f[4] ?? 0);
    return (busy * 1000) / USER_HZ;
  } catch {
    return 0;
  }
}
