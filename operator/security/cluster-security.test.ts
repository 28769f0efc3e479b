// Which Secrets a spec needs and the admin connection's security made from them, for certificates
// from named Secrets (the generated case is covered by security-step.test.ts and the real-server test).

import type { V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { withDefaults } from '../api/spec-defaults.ts';
import { adminSecurityFrom, secretsNeeded } from './cluster-security.ts';

const BASE = { replicas: 3, version: '0.1.0', storage: { size: '1Gi' } };

function secret(data: Record<string, string>): V1Secret {
  return { data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) };
}

describe('admin security from named Secrets', () => {
  it('trusts the client Secret\'s ca.crt and presents the operator\'s certificate when client certificates are required', () => {
    const spec = withDefaults({ ...BASE, tls: { client: { secretName: 'client', clientCertAuth: true }, peer: { secretName: 'peer' }, operatorClientSecretName: 'op' }, auth: { rootSecret: { name: 'root', passwordKey: 'pw' } } });
    expect(secretsNeeded(spec).map((n) => `${n.name}:${n.keys.join('+')}`)).toEqual(['client:tls.crt+tls.key+ca.crt', 'peer:tls.crt+tls.key+ca.crt', 'op:tls.crt+tls.key', 'root:pw']);
    const secrets = new Map<string, V1Secret | null>([
      ['client', secret({ 'tls.crt': 'SERVER', 'tls.key': 'SERVER-KEY', 'ca.crt': 'CLIENT-CA' })],
      ['peer', secret({ 'tls.crt': 'PEER', 'tls.key': 'PEER-KEY', 'ca.crt': 'PEER-CA' })],
      ['op', secret({ 'tls.crt': 'OP', 'tls.key': 'OP-KEY' })],
      ['root', secret({ pw: 'hunter2' })],
    ]);
    expect(adminSecurityFrom('demo', 'prod', spec, secrets)).toEqual({
      ok: true,
      security: { tls: { caPem: 'CLIENT-CA', certPem: 'OP', keyPem: 'OP-KEY' }, auth: { username: 'root', password: 'hunter2' } },
    });
  });

  it('dials in plaintext when only the peer port uses TLS, and has no security at all without auth', () => {
    const spec = withDefaults({ ...BASE, tls: { peer: { secretName: 'peer' } } });
    const secrets = new Map([['peer', secret({ 'tls.crt': 'P', 'tls.key': 'K', 'ca.crt': 'C' })]]);
    expect(adminSecurityFrom('demo', 'prod', spec, secrets)).toEqual({ ok: true, security: null });
    const withAuth = withDefaults({ ...BASE, tls: { peer: { secretName: 'peer' } }, auth: { rootSecret: { name: 'root' } } });
    secrets.set('root', secret({ password: 'pw' }));
    expect(adminSecurityFrom('demo', 'prod', withAuth, secrets)).toEqual({ ok: true, security: { tls: null, auth: { username: 'root', password: 'pw' } } });
  });

  it('lists every missing Secret and key, with the spec field that names it', () => {
    const spec = withDefaults({ ...BASE, tls: { client: { secretName: 'client', clientCertAuth: true }, operatorClientSecretName: 'op' } });
    const result = adminSecurityFrom('demo', 'prod', spec, new Map([['client', secret({ 'tls.crt': 'x', 'tls.key': 'y' })]]));
    expect(result).toEqual({
      ok: false,
      missing: ['Secret prod/client (spec.tls.client.secretName) has no ca.crt', 'Secret prod/op (spec.tls.operatorClientSecretName) not found'],
    });
  });
});
