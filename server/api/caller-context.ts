// The client a piece of server work is being done for. The auth guard runs each request handler
// inside runAsCaller(); ApiContext.proposeWrite reads currentCaller() and stamps the caller on the
// Raft entry, so every write a request causes (including the lock and election services' own txns and
// session leases) is checked at apply time with that client's permissions. Work the server does for
// itself (lease expiry, checkpoints, publish) runs outside any caller and is not checked.
//
// The scope also remembers that the guard has just passed a read barrier for this request (it checks
// read permissions after one, as etcd does): the handler's own first barrier is then already satisfied
// and is skipped, so a guarded linearizable read still costs one ReadIndex round, not two.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Caller } from '../shard/auth-wire.ts';

interface RequestScope {
  caller: Caller;
  freshBarrier: boolean;
}

const storage = new AsyncLocalStorage<RequestScope>();

export function runAsCaller<T>(caller: Caller, fn: () => T, opts: { freshBarrier?: boolean } = {}): T {
  return storage.run({ caller, freshBarrier: opts.freshBarrier ?? false }, fn);
}

/** Runs `fn` as the server's own work (no caller), even inside a request: its entries are not checked. */
export function runAsServer<T>(fn: () => T): T {
  return storage.exit(fn);
}

export function currentCaller(): Caller | undefined {
  return storage.getStore()?.caller;
}

/** True once, right after the guard's read barrier for this request: the next barrier may be skipped. */
export function takeFreshBarrier(): boolean {
  const scope = storage.getStore();
  if (!scope || !scope.freshBarrier) return false;
  scope.freshBarrier = false;
  return true;
}
