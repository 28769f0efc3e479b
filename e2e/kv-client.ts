// A minimal etcd v3 client for the e2e writer and checker (KV Put and Range, Cluster MemberList over
// @grpc/grpc-js with the repository's etcd .proto files), so the end-to-end test talks to Synod exactly
// as any etcd client does.

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'proto');

type Unary<Req, Res> = (request: Req, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: Res) => void) => void;

interface KvStub extends grpc.Client {
  Put: Unary<{ key: Buffer; value: Buffer }, { header: { revision: string } }>;
  Range: Unary<{ key: Buffer; range_end: Buffer }, { kvs: { key: Buffer; value: Buffer }[]; count: string }>;
}

interface ClusterStub extends grpc.Client {
  MemberList: Unary<{ linearizable: boolean }, { members: { name: string; isLearner: boolean }[] }>;
}

type StubConstructor<S> = new (address: string, credentials: grpc.ChannelCredentials) => S;

export class KvClient {
  readonly #stub: KvStub;
  readonly #cluster: ClusterStub;
  readonly #timeoutMs: number;

  constructor(endpoint: string, timeoutMs = 5_000) {
    const definition = protoLoader.loadSync('etcd/api/etcdserverpb/rpc.proto', { keepCase: true, longs: String, enums: String, bytes: Buffer, defaults: true, includeDirs: [PROTO_ROOT] });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { etcdserverpb: { KV: StubConstructor<KvStub>; Cluster: StubConstructor<ClusterStub> } };
    this.#stub = new loaded.etcdserverpb.KV(endpoint, grpc.credentials.createInsecure());
    this.#cluster = new loaded.etcdserverpb.Cluster(endpoint, grpc.credentials.createInsecure());
    this.#timeoutMs = timeoutMs;
  }

  put(key: string, value: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#stub.Put({ key: Buffer.from(key), value: Buffer.from(value) }, { deadline: Date.now() + this.#timeoutMs }, (error, response) => {
        if (error !== null || response === undefined) reject(error ?? new Error('empty response'));
        else resolve(Number(response.header.revision));
      });
    });
  }

  /** Every key with the prefix, as a map key → value. */
  getPrefix(prefix: string): Promise<Map<string, string>> {
    const start = Buffer.from(prefix);
    const end = Buffer.from(prefix);
    end[end.length - 1] += 1;
    return new Promise((resolve, reject) => {
      this.#stub.Range({ key: start, range_end: end }, { deadline: Date.now() + this.#timeoutMs }, (error, response) => {
        if (error !== null || response === undefined) reject(error ?? new Error('empty response'));
        else resolve(new Map(response.kvs.map((kv) => [kv.key.toString(), kv.value.toString()])));
      });
    });
  }

  /** The members as the answering member sees them (name '' for a learner not started yet). */
  memberList(): Promise<{ name: string; isLearner: boolean }[]> {
    return new Promise((resolve, reject) => {
      this.#cluster.MemberList({ linearizable: true }, { deadline: Date.now() + this.#timeoutMs }, (error, response) => {
        if (error !== null || response === undefined) reject(error ?? new Error('empty response'));
        else resolve(response.members.map((m) => ({ name: m.name, isLearner: m.isLearner })));
      });
    });
  }

  close(): void {
    this.#stub.close();
    this.#cluster.close();
  }
}
