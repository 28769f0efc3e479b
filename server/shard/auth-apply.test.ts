// authorizeEntry's token check at apply: an entry proposed with a token issued before the user's
// credentials changed is refused on every member at its place in the log (etcd's old auth revision),
// whatever the member that took the request believed when it checked the token.
import { describe, expect, it } from 'vitest';
import { AuthStore } from '../auth/auth-store.ts';
import { authorizeEntry } from './auth-apply.ts';
import { decodeInternalRequest, encodeInternalRequest, type InternalRequest } from './request-codec.ts';


function store(): AuthStore {
  const s = new AuthStore();
  s.userAdd('root', 'hash-root', false);
  s.userGrantRole('root', 'root');
  s.userAdd('carol', 'hash-carol', false);
  s.enable(Buffer.alloc(32, 7));
  return s;
}

const grantBy = (username: string, tokenRevision?: number): InternalRequest =>
  ({ lease_grant: { TTL: '30', ID: '0' }, caller: { username, ...(tokenRevision !== undefined ? { token_revision: String(tokenRevision) } : {}) } }) as unknown as InternalRequest;

describe('authorizeEntry and token revisions', () => {
  it('refuses a token older than the user credentials, accepts one as new, ignores entries without one', () => {
    const s = store();
    const issuedAt = s.revision;
    const none = (): Buffer[] => [];
    expect(authorizeEntry(grantBy('carol', issuedAt), s, none)).toBeNull();
    s.userChangePassword('carol', 'hash-carol-2');
    expect(authorizeEntry(grantBy('carol', issuedAt), s, none)).toBe('INVALID_AUTH_TOKEN');
    expect(authorizeEntry(grantBy('carol', s.revision), s, none)).toBeNull();
    // A client-certificate or credential-less caller carries no token revision.
    expect(authorizeEntry(grantBy('carol'), s, none)).toBeNull();
    s.userDelete('carol');
    expect(authorizeEntry(grantBy('carol', issuedAt), s, none)).toBe('INVALID_AUTH_TOKEN');
  });

  it('the token revision survives the log: a put entry with one round-trips through the codecs', () => {
    const entry = { proposer: '7', seq: '1', put: { key: Buffer.from('k'), value: Buffer.from('v') }, caller: { username: 'carol', token_revision: '12' } } as unknown as InternalRequest;
    const back = decodeInternalRequest(encodeInternalRequest(entry));
    expect(back.caller).toEqual({ username: 'carol', token_revision: '12' });
    const plain = decodeInternalRequest(encodeInternalRequest({ ...entry, caller: { username: 'carol' } } as InternalRequest));
    expect(Number(plain.caller?.token_revision ?? 0)).toBe(0);
  });
});
