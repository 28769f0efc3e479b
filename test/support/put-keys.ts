// Sequential puts `prefix0000`, `prefix0001`, ... = `v0`, `v1`, ... through one endpoint, each recorded in
// `acked` once acknowledged (what a test later expects to read back).
import { KvClient } from './kv-client.ts';

export async function putKeys(endpoint: string, prefix: string, n: number, acked: Map<string, string>): Promise<void> {
  const kv = new KvClient(endpoint);
  try {
    for (let i = 0; i < n; i++) {
      const key = `${prefix}${String(i).padStart(4, '0')}`;
      await kv.put(key, `v${i}`, {}, 5_000);
      acked.set(key, `v${i}`);
    }
  } finally {
    kv.close();
  }
}
