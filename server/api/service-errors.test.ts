// toServiceError (context.ts): what a client hears for each way a request can end without an answer.
// Every failure the member, shard and oracle layers raise under faults maps to etcd's status and text;
// only a failure nothing covers becomes INTERNAL (and is logged: the fault suites count those as bugs).
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { toServiceError, type ApiContext } from './context.ts';
import { SessionExpiredError, asUnknownStatus } from './concurrency.ts';
import { DeadlineError, GroupRemovedError, LeaderUnreachableError, MemberStoppedError, NoLeaderError, TooManyRequestsError } from '../member/member.ts';
import { ShardDeadlineError, ShardNotReadyError } from '../shard/shard-write-path.ts';
import { proposalLostError } from '../shard/proposal-fence.ts';

const silent = pino({ level: 'silent' });

function heard(err: unknown): { code: number; details: string } {
  const e = toServiceError(err, silent);
  return { code: e.code, details: e.details };
}

describe('toServiceError', () => {
  it.each([
    ['no leader', new NoLeaderError(), grpc.status.UNAVAILABLE, 'etcdserver: no leader'],
    ['a leader out of reach', new LeaderUnreachableError(), grpc.status.UNAVAILABLE, 'etcdserver: no leader'],
    ['a shard with no ready leader', new ShardNotReadyError('not the ready leader of this shard'), grpc.status.UNAVAILABLE, 'etcdserver: no leader'],
    ['a member stopping under the request', new MemberStoppedError('stopping'), grpc.status.UNAVAILABLE, 'etcdserver: server stopped'],
    ['a shard replica removed under the request', new GroupRemovedError(3, 1), grpc.status.UNAVAILABLE, 'etcdserver: server stopped'],
    ['a deadline', new DeadlineError('proposal'), grpc.status.UNAVAILABLE, 'etcdserver: request timed out'],
    ['a shard deadline', new ShardDeadlineError('write deadline passed'), grpc.status.UNAVAILABLE, 'etcdserver: request timed out'],
    ['back-pressure', new TooManyRequestsError(), grpc.status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'],
    ['a proposal lost with its leadership', proposalLostError(), grpc.status.UNAVAILABLE, 'etcdserver: leader changed'],
  ])('%s: etcd status and text', (_name, err, code, details) => {
    expect(heard(err)).toEqual({ code, details });
  });

  it('anything else is INTERNAL with its message', () => {
    expect(heard(new Error('something unforeseen'))).toEqual({ code: grpc.status.INTERNAL, details: 'something unforeseen' });
  });
});

describe('asUnknownStatus (Lock and Election, whose errors etcd returns as UNKNOWN)', () => {
  it('a contender whose lease ended hears etcd\'s "session expired", and nothing is logged as unexpected', () => {
    const error = vi.fn();
    const ctx = { logger: { error } } as unknown as ApiContext;
    const e = asUnknownStatus(new SessionExpiredError(), ctx);
    expect({ code: e.code, details: e.details }).toEqual({ code: grpc.status.UNKNOWN, details: 'session expired' });
    expect(error).not.toHaveBeenCalled();
  });

  it('keeps etcd\'s text for the rest, with status UNKNOWN', () => {
    const ctx = { logger: silent } as unknown as ApiContext;
    const e = asUnknownStatus(new NoLeaderError(), ctx);
    expect({ code: e.code, details: e.details }).toEqual({ code: grpc.status.UNKNOWN, details: 'etcdserver: no leader' });
  });
});
