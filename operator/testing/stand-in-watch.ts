// A stand-in for the API server's list and watch endpoints (no real API server can run here): a
// client-node Watch whose streams the test drives by hand (send events, end a stream with or
// without an error), and a list function over an in-memory set of objects with resourceVersions.

import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { KubeConfig, Watch } from '@kubernetes/client-node';

export interface StandInStream {
  path: string;
  params: Record<string, string | number | boolean | undefined>;
  send(type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR', object: object): void;
  /** Ends the stream as the API server would: `null` for a clean close, else an error. */
  end(error: (Error & { statusCode?: number }) | null): void;
  aborted: boolean;
}

export class StandInWatch extends Watch {
  readonly streams: StandInStream[] = [];
  /** When set, the next watch() call throws this (connection refused and the like). */
  failNextWith: Error | null = null;

  constructor() {
    super(new KubeConfig());
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    if (this.failNextWith !== null) {
      const error = this.failNextWith;
      this.failNextWith = null;
      throw error;
    }
    const controller = new AbortController();
    let ended = false;
    const stream: StandInStream = {
      path,
      params: queryParams,
      aborted: false,
      send: (type, object) => {
        if (!ended) callback(type, object, { type, object });
      },
      end: (error) => {
        if (ended) return;
        ended = true;
        done(error);
      },
    };
    controller.signal.addEventListener('abort', () => {
      stream.aborted = true;
      ended = true;
    });
    this.streams.push(stream);
    return controller;
  }

  get latest(): StandInStream {
    const stream = this.streams.at(-1);
    if (stream === undefined) throw new Error('no watch stream opened yet');
    return stream;
  }
}

/** An in-memory collection with a resourceVersion counter, listed like the API server lists. */
export class StandInCollection<T extends KubernetesObject> {
  readonly objects = new Map<string, T>();
  resourceVersion = 1;
  listCalls = 0;
  failNextList: Error | null = null;

  put(object: T): T {
    this.resourceVersion += 1;
    const stored = { ...object, metadata: { ...object.metadata, resourceVersion: String(this.resourceVersion) } } as T;
    this.objects.set(`${stored.metadata?.namespace ?? ''}/${stored.metadata?.name ?? ''}`, stored);
    return stored;
  }

  remove(namespace: string, name: string): T | undefined {
    const key = `${namespace}/${name}`;
    const object = this.objects.get(key);
    this.objects.delete(key);
    this.resourceVersion += 1;
    return object;
  }

  readonly list = async (): Promise<KubernetesListObject<T>> => {
    this.listCalls += 1;
    if (this.failNextList !== null) {
      const error = this.failNextList;
      this.failNextList = null;
      throw error;
    }
    return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: String(this.resourceVersion) }, items: [...this.objects.values()] };
  };
}
