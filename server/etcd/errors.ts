// etcd's gRPC errors (api/v3rpc/rpctypes/error.go): exact status codes and message texts.
// Clients depend on the exact text: Go clientv3 maps an error back to its typed error by the
// full message (errStringToError), the npm `etcd3` client by substring, falling back to the code.
// Never reword these strings, never append context to them on the wire.

import * as grpc from '@grpc/grpc-js';

/** One etcd error: the gRPC status code and the exact message text sent as the status details. */
export interface EtcdErrorSpec {
  readonly code: grpc.status;
  readonly message: string;
}

function spec(code: grpc.status, message: string): EtcdErrorSpec {
  return Object.freeze({ code, message });
}

/**
 * Every error of etcd's rpctypes (ErrGRPC*), keyed by a readable name
 * (ErrGRPCEmptyKey -> EMPTY_KEY, ErrGRPCLeaseTTLTooLarge -> LEASE_TTL_TOO_LARGE, ...).
 */
export const ETCD_ERRORS = Object.freeze({
  /** ErrGRPCEmptyKey */
  EMPTY_KEY: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided'),
  /** ErrGRPCKeyNotFound */
  KEY_NOT_FOUND: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: key not found'),
  /** ErrGRPCValueProvided */
  VALUE_PROVIDED: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: value is provided'),
  /** ErrGRPCLeaseProvided */
  LEASE_PROVIDED: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: lease is provided'),
  /** ErrGRPCTooManyOps */
  TOO_MANY_OPS: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'),
  /** ErrGRPCDuplicateKey */
  DUPLICATE_KEY: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'),
  /** ErrGRPCInvalidClientAPIVersion */
  INVALID_CLIENT_API_VERSION: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: invalid client api version'),
  /** ErrGRPCInvalidSortOption */
  INVALID_SORT_OPTION: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: invalid sort option'),
  /** ErrGRPCCompacted */
  COMPACTED: spec(grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'),
  /** ErrGRPCFutureRev */
  FUTURE_REV: spec(grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'),
  /** ErrGRPCNoSpace */
  NO_SPACE: spec(grpc.status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded'),
  /** ErrGRPCLeaseNotFound */
  LEASE_NOT_FOUND: spec(grpc.status.NOT_FOUND, 'etcdserver: requested lease not found'),
  /** ErrGRPCLeaseExist */
  LEASE_EXIST: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: lease already exists'),
  /** ErrGRPCLeaseTTLTooLarge */
  LEASE_TTL_TOO_LARGE: spec(grpc.status.OUT_OF_RANGE, 'etcdserver: too large lease TTL'),
  /** ErrGRPCWatchCanceled */
  WATCH_CANCELED: spec(grpc.status.CANCELLED, 'etcdserver: watch canceled'),
  /** ErrGRPCMemberExist */
  MEMBER_EXIST: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: member ID already exist'),
  /** ErrGRPCPeerURLExist */
  PEER_URL_EXIST: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: Peer URLs already exists'),
  /** ErrGRPCMemberNotEnoughStarted */
  MEMBER_NOT_ENOUGH_STARTED: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: re-configuration failed due to not enough started members'),
  /** ErrGRPCMemberBadURLs */
  MEMBER_BAD_URLS: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: given member URLs are invalid'),
  /** ErrGRPCMemberNotFound */
  MEMBER_NOT_FOUND: spec(grpc.status.NOT_FOUND, 'etcdserver: member not found'),
  /** ErrGRPCMemberNotLearner */
  MEMBER_NOT_LEARNER: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member'),
  /** ErrGRPCLearnerNotReady */
  LEARNER_NOT_READY: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member which is in sync with leader'),
  /** ErrGRPCTooManyLearners */
  TOO_MANY_LEARNERS: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: too many learner members in cluster'),
  /** ErrGRPCClusterIDMismatch */
  CLUSTER_ID_MISMATCH: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: cluster ID mismatch'),
  /** ErrGRPCRequestTooLarge */
  REQUEST_TOO_LARGE: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: request is too large'),
  /** ErrGRPCRequestTooManyRequests */
  REQUEST_TOO_MANY_REQUESTS: spec(grpc.status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'),
  /** ErrGRPCRootUserNotExist */
  ROOT_USER_NOT_EXIST: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: root user does not exist'),
  /** ErrGRPCRootRoleNotExist */
  ROOT_ROLE_NOT_EXIST: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: root user does not have root role'),
  /** ErrGRPCUserAlreadyExist */
  USER_ALREADY_EXIST: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: user name already exists'),
  /** ErrGRPCUserEmpty */
  USER_EMPTY: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: user name is empty'),
  /** ErrGRPCUserNotFound */
  USER_NOT_FOUND: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: user name not found'),
  /** ErrGRPCRoleAlreadyExist */
  ROLE_ALREADY_EXIST: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: role name already exists'),
  /** ErrGRPCRoleNotFound */
  ROLE_NOT_FOUND: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: role name not found'),
  /** ErrGRPCRoleEmpty */
  ROLE_EMPTY: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: role name is empty'),
  /** ErrGRPCAuthFailed */
  AUTH_FAILED: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password'),
  /** ErrGRPCPermissionNotGiven */
  PERMISSION_NOT_GIVEN: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: permission not given'),
  /** ErrGRPCPermissionDenied */
  PERMISSION_DENIED: spec(grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied'),
  /** ErrGRPCRoleNotGranted */
  ROLE_NOT_GRANTED: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: role is not granted to the user'),
  /** ErrGRPCPermissionNotGranted */
  PERMISSION_NOT_GRANTED: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: permission is not granted to the role'),
  /** ErrGRPCAuthNotEnabled */
  AUTH_NOT_ENABLED: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled'),
  /** ErrGRPCInvalidAuthToken */
  INVALID_AUTH_TOKEN: spec(grpc.status.UNAUTHENTICATED, 'etcdserver: invalid auth token'),
  /** ErrGRPCInvalidAuthMgmt */
  INVALID_AUTH_MGMT: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: invalid auth management'),
  /** ErrGRPCAuthOldRevision */
  AUTH_OLD_REVISION: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: revision of auth store is old'),
  /** ErrGRPCNoLeader */
  NO_LEADER: spec(grpc.status.UNAVAILABLE, 'etcdserver: no leader'),
  /** ErrGRPCNotLeader */
  NOT_LEADER: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: not leader'),
  /** ErrGRPCLeaderChanged */
  LEADER_CHANGED: spec(grpc.status.UNAVAILABLE, 'etcdserver: leader changed'),
  /** ErrGRPCNotCapable */
  NOT_CAPABLE: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: not capable'),
  /** ErrGRPCStopped */
  STOPPED: spec(grpc.status.UNAVAILABLE, 'etcdserver: server stopped'),
  /** ErrGRPCTimeout */
  TIMEOUT: spec(grpc.status.UNAVAILABLE, 'etcdserver: request timed out'),
  /** ErrGRPCTimeoutDueToLeaderFail */
  TIMEOUT_DUE_TO_LEADER_FAIL: spec(grpc.status.UNAVAILABLE, 'etcdserver: request timed out, possibly due to previous leader failure'),
  /** ErrGRPCTimeoutDueToConnectionLost */
  TIMEOUT_DUE_TO_CONNECTION_LOST: spec(grpc.status.UNAVAILABLE, 'etcdserver: request timed out, possibly due to connection lost'),
  /** ErrGRPCTimeoutWaitAppliedIndex */
  TIMEOUT_WAIT_APPLIED_INDEX: spec(grpc.status.UNAVAILABLE, 'etcdserver: request timed out, waiting for the applied index took too long'),
  /** ErrGRPCUnhealthy */
  UNHEALTHY: spec(grpc.status.UNAVAILABLE, 'etcdserver: unhealthy cluster'),
  /** ErrGRPCCorrupt */
  CORRUPT: spec(grpc.status.DATA_LOSS, 'etcdserver: corrupt cluster'),
  /** ErrGRPCNotSupportedForLearner */
  NOT_SUPPORTED_FOR_LEARNER: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: rpc not supported for learner'),
  /** ErrGRPCBadLeaderTransferee */
  BAD_LEADER_TRANSFEREE: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: bad leader transferee'),
  /** ErrGRPCWrongDowngradeVersionFormat */
  WRONG_DOWNGRADE_VERSION_FORMAT: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: wrong downgrade target version format'),
  /** ErrGRPCInvalidDowngradeTargetVersion */
  INVALID_DOWNGRADE_TARGET_VERSION: spec(grpc.status.INVALID_ARGUMENT, 'etcdserver: invalid downgrade target version'),
  /** ErrGRPCClusterVersionUnavailable */
  CLUSTER_VERSION_UNAVAILABLE: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: cluster version not found during downgrade'),
  /** ErrGRPCDowngradeInProcess */
  DOWNGRADE_IN_PROCESS: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: cluster has a downgrade job in progress'),
  /** ErrGRPCNoInflightDowngrade */
  NO_INFLIGHT_DOWNGRADE: spec(grpc.status.FAILED_PRECONDITION, 'etcdserver: no inflight downgrade job'),
  /** ErrGRPCCanceled */
  CANCELED: spec(grpc.status.CANCELLED, 'etcdserver: request canceled'),
  /** ErrGRPCDeadlineExceeded */
  DEADLINE_EXCEEDED: spec(grpc.status.DEADLINE_EXCEEDED, 'etcdserver: context deadline exceeded'),
});

/** Short alias of ETCD_ERRORS. */
export const ERRORS = ETCD_ERRORS;

export type EtcdErrorName = keyof typeof ETCD_ERRORS;

/** The Go identifier in etcd's rpctypes package of each entry of ETCD_ERRORS. */
export const RPCTYPES_GO_NAMES: Readonly<Record<EtcdErrorName, string>> = Object.freeze({
  EMPTY_KEY: 'ErrGRPCEmptyKey',
  KEY_NOT_FOUND: 'ErrGRPCKeyNotFound',
  VALUE_PROVIDED: 'ErrGRPCValueProvided',
  LEASE_PROVIDED: 'ErrGRPCLeaseProvided',
  TOO_MANY_OPS: 'ErrGRPCTooManyOps',
  DUPLICATE_KEY: 'ErrGRPCDuplicateKey',
  INVALID_CLIENT_API_VERSION: 'ErrGRPCInvalidClientAPIVersion',
  INVALID_SORT_OPTION: 'ErrGRPCInvalidSortOption',
  COMPACTED: 'ErrGRPCCompacted',
  FUTURE_REV: 'ErrGRPCFutureRev',
  NO_SPACE: 'ErrGRPCNoSpace',
  LEASE_NOT_FOUND: 'ErrGRPCLeaseNotFound',
  LEASE_EXIST: 'ErrGRPCLeaseExist',
  LEASE_TTL_TOO_LARGE: 'ErrGRPCLeaseTTLTooLarge',
  WATCH_CANCELED: 'ErrGRPCWatchCanceled',
  MEMBER_EXIST: 'ErrGRPCMemberExist',
  PEER_URL_EXIST: 'ErrGRPCPeerURLExist',
  MEMBER_NOT_ENOUGH_STARTED: 'ErrGRPCMemberNotEnoughStarted',
  MEMBER_BAD_URLS: 'ErrGRPCMemberBadURLs',
  MEMBER_NOT_FOUND: 'ErrGRPCMemberNotFound',
  MEMBER_NOT_LEARNER: 'ErrGRPCMemberNotLearner',
  LEARNER_NOT_READY: 'ErrGRPCLearnerNotReady',
  TOO_MANY_LEARNERS: 'ErrGRPCTooManyLearners',
  CLUSTER_ID_MISMATCH: 'ErrGRPCClusterIDMismatch',
  REQUEST_TOO_LARGE: 'ErrGRPCRequestTooLarge',
  REQUEST_TOO_MANY_REQUESTS: 'ErrGRPCRequestTooManyRequests',
  ROOT_USER_NOT_EXIST: 'ErrGRPCRootUserNotExist',
  ROOT_ROLE_NOT_EXIST: 'ErrGRPCRootRoleNotExist',
  USER_ALREADY_EXIST: 'ErrGRPCUserAlreadyExist',
  USER_EMPTY: 'ErrGRPCUserEmpty',
  USER_NOT_FOUND: 'ErrGRPCUserNotFound',
  ROLE_ALREADY_EXIST: 'ErrGRPCRoleAlreadyExist',
  ROLE_NOT_FOUND: 'ErrGRPCRoleNotFound',
  ROLE_EMPTY: 'ErrGRPCRoleEmpty',
  AUTH_FAILED: 'ErrGRPCAuthFailed',
  PERMISSION_NOT_GIVEN: 'ErrGRPCPermissionNotGiven',
  PERMISSION_DENIED: 'ErrGRPCPermissionDenied',
  ROLE_NOT_GRANTED: 'ErrGRPCRoleNotGranted',
  PERMISSION_NOT_GRANTED: 'ErrGRPCPermissionNotGranted',
  AUTH_NOT_ENABLED: 'ErrGRPCAuthNotEnabled',
  INVALID_AUTH_TOKEN: 'ErrGRPCInvalidAuthToken',
  INVALID_AUTH_MGMT: 'ErrGRPCInvalidAuthMgmt',
  AUTH_OLD_REVISION: 'ErrGRPCAuthOldRevision',
  NO_LEADER: 'ErrGRPCNoLeader',
  NOT_LEADER: 'ErrGRPCNotLeader',
  LEADER_CHANGED: 'ErrGRPCLeaderChanged',
  NOT_CAPABLE: 'ErrGRPCNotCapable',
  STOPPED: 'ErrGRPCStopped',
  TIMEOUT: 'ErrGRPCTimeout',
  TIMEOUT_DUE_TO_LEADER_FAIL: 'ErrGRPCTimeoutDueToLeaderFail',
  TIMEOUT_DUE_TO_CONNECTION_LOST: 'ErrGRPCTimeoutDueToConnectionLost',
  TIMEOUT_WAIT_APPLIED_INDEX: 'ErrGRPCTimeoutWaitAppliedIndex',
  UNHEALTHY: 'ErrGRPCUnhealthy',
  CORRUPT: 'ErrGRPCCorrupt',
  NOT_SUPPORTED_FOR_LEARNER: 'ErrGRPCNotSupportedForLearner',
  BAD_LEADER_TRANSFEREE: 'ErrGRPCBadLeaderTransferee',
  WRONG_DOWNGRADE_VERSION_FORMAT: 'ErrGRPCWrongDowngradeVersionFormat',
  INVALID_DOWNGRADE_TARGET_VERSION: 'ErrGRPCInvalidDowngradeTargetVersion',
  CLUSTER_VERSION_UNAVAILABLE: 'ErrGRPCClusterVersionUnavailable',
  DOWNGRADE_IN_PROCESS: 'ErrGRPCDowngradeInProcess',
  NO_INFLIGHT_DOWNGRADE: 'ErrGRPCNoInflightDowngrade',
  CANCELED: 'ErrGRPCCanceled',
  DEADLINE_EXCEEDED: 'ErrGRPCDeadlineExceeded',
});

/**
 * Other error texts etcd clients see that are not rpctypes errors. The etcd server returns
 * them as plain Go errors, which gRPC turns into status UNKNOWN with the text as details.
 */
export const OTHER_ERRORS = Object.freeze({
  /** v3election ErrMissingLeaderKey (Proclaim/Resign without a leader key). */
  MISSING_LEADER_KEY: spec(grpc.status.UNKNOWN, '"leader" field must be provided'),
  /** client/v3/concurrency ErrElectionNoLeader (Election.Leader / Observe when nobody leads). */
  ELECTION_NO_LEADER: spec(grpc.status.UNKNOWN, 'election: no leader'),
  /** client/v3/concurrency ErrElectionNotLeader (Proclaim when the leader key is gone). */
  ELECTION_NOT_LEADER: spec(grpc.status.UNKNOWN, 'election: not leader'),
});

/**
 * Build the error object a grpc-js handler passes to `callback(err)` / `call.destroy(err)` /
 * `call.emit('error', err)`: an Error whose `message` and `details` are the etcd text and whose
 * `code` is the etcd status code, with empty trailing metadata.
 *
 * `details` overrides the text sent on the wire; omit it (the normal case) so clients can match
 * the error. Use it only for texts that are genuinely dynamic in etcd too.
 */
export function grpcError(e: EtcdErrorSpec, details?: string): grpc.ServiceError {
  const text = details ?? e.message;
  const err = new Error(text) as grpc.ServiceError;
  err.code = e.code;
  err.details = text;
  err.metadata = new grpc.Metadata();
  return err;
}

/** True if `err` (e.g. a ServiceError received by a client) is the given etcd error. */
export function isEtcdError(err: unknown, e: EtcdErrorSpec): boolean {
  if (err === null || typeof err !== 'object') return false;
  const o = err as { code?: unknown; details?: unknown; message?: unknown };
  if (o.code !== e.code) return false;
  return o.details === e.message || o.message === e.message || (typeof o.message === 'string' && o.message.endsWith(': ' + e.message));
}

const BY_MESSAGE: ReadonlyMap<string, EtcdErrorSpec> = new Map(
  [...Object.values(ETCD_ERRORS), ...Object.values(OTHER_ERRORS)].map((e) => [e.message, e] as const),
);

/** Look an etcd error up by its exact message text (like clientv3's errStringToError). */
export function etcdErrorByMessage(message: string): EtcdErrorSpec | undefined {
  return BY_MESSAGE.get(message);
}
