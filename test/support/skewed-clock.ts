// A member process whose wall clock runs ahead or behind the machine's: Debian's libfaketime (package
// faketime, which `make test` installs) preloaded with a FAKETIME offset shifts CLOCK_REALTIME (Date.now)
// and leaves the monotonic clock (timers, performance.now) alone, as a host whose clock is off would.
import fs from 'node:fs';

/** libfaketime for this machine's architecture. */
export const FAKETIME_LIB = `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/faketime/libfaketime.so.1`;

/** The environment for a member whose clock is `offset` off (libfaketime's form: '+60s', '-600s'; '' for none). */
export function skewedClockEnv(offset: string): Record<string, string> {
  if (offset === '') return {};
  if (!fs.existsSync(FAKETIME_LIB)) throw new Error(`${FAKETIME_LIB} is missing: make test installs Debian's faketime`);
  return { LD_PRELOAD: FAKETIME_LIB, FAKETIME: offset, DONT_FAKE_MONOTONIC: '1' };
}
