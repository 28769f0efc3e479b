// The client a piece of server work is being done for. The auth guard runs each request handler
// inside runAsCaller(); ApiContext.proposeWrite reads currentCaller() and stamps the caller on the
// Raft entry, so every write a request causes (including the lock and election services' own txns and
// session leases) is checked at apply time with that client's permissions. Work the server does for
// itself (lease expiry, checkpoints, publish) runs outside any caller and is not checked.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Caller } from './auth-wire.ts';

const storage = new AsyncLocalStorage<Caller>();

export function runAsCaller<T>(caller: Caller, fn: () => T): T {
  return storage.run(caller, fn);
}

export function currentCaller(): Caller | undefined {
  return storage.getStore();
}
