// Ending a server-streaming or bidi gRPC call with an error status. grpc-js sends a stream's status from
// its Writable `_final`, which runs on end() — and its 'error' listener sets that status and calls end().
// `call.destroy(err)` looks like the same thing but is not: a destroyed Writable never runs `_final`, so no
// status leaves and the client waits for its deadline (a RangeStream with an empty key hung 5 s). Every
// stream handler ends with an error through here.
import type * as grpc from '@grpc/grpc-js';

/** What of a grpc-js server stream (Writable or Duplex) ending it takes. */
interface ServerStream {
  emit(event: 'error', err: grpc.ServiceError): boolean;
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
}

export function endWithStatus(call: ServerStream, err: grpc.ServiceError): void {
  if (call.destroyed || call.writableEnded) return;
  call.emit('error', err);
}
