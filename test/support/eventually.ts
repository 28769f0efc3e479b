// Polls until a probe yields a value: the probe answers null (or throws, e.g. a failed expect) while the
// condition does not hold yet; past the timeout the last error is reported with what was awaited.
export async function eventually<T>(what: string, probe: () => Promise<T | null>, timeoutMs = 30_000, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await probe();
      if (v !== null) return v;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`${what}: gave up after ${timeoutMs} ms ${last}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
