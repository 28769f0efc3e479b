// Maintenance.Alarm and HashKV over the project's own proto files, for tests that send what etcdctl
// cannot (ACTIVATE from a client, a chosen member id or alarm type) or need the raw response fields.
import * as grpc from '@grpc/grpc-js';
import { etcdClients } from '../../server/etcd/proto.ts';

type UnaryMethod = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

export interface AlarmClient {
  alarm(action: 'GET' | 'ACTIVATE' | 'DEACTIVATE', memberID: string, alarm: 'NONE' | 'NOSPACE' | 'CORRUPT'): Promise<Array<{ memberID: string; alarm: string }>>;
  hashKv(revision: number): Promise<{ hash: number; compact_revision: string; hash_revision: string; header: { revision: string; member_id: string } }>;
  close(): void;
}

export function alarmClient(address: string): AlarmClient {
  const client = new (etcdClients().Maintenance)(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  const call = <T>(method: string, req: object): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const fn = (client as unknown as Record<string, UnaryMethod>)[method].bind(client);
      fn(req, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  return {
    alarm: async (action, memberID, alarm) => (await call<{ alarms: Array<{ memberID: string; alarm: string }> }>('Alarm', { action, memberID, alarm })).alarms,
    hashKv: (revision) => call('HashKV', { revision }),
    close: () => client.close(),
  };
}
