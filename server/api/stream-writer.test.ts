// CoalescingStreamWriter against a real grpc-js server and client on loopback.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { CoalescingStreamWriter, GRPC_FRAME_PREFIX_BYTES } from './stream-writer.ts';

const id = (b: Buffer): Buffer => b;
const SERVICE: grpc.ServiceDefinition = {
  Chat: {
    path: '/test.Writer/Chat',
    requestStream: true,
    responseStream: true,
    requestSerialize: id,
    requestDeserialize: id,
    responseSerialize: id,
    responseDeserialize: id,
  },
};

function frameOf(text: string): Buffer {
  const body = Buffer.from(text);
  const frame = Buffer.allocUnsafe(GRPC_FRAME_PREFIX_BYTES + body.length);
  body.copy(frame, GRPC_FRAME_PREFIX_BYTES);
  return frame;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

/** A server whose handler gets every request and the writer; resolves with a client call. */
async function serve(
  onRequest: (text: string, writer: CoalescingStreamWriter, call: grpc.ServerDuplexStream<Buffer, Buffer>) => void,
  onEnd?: (writer: CoalescingStreamWriter) => void,
): Promise<grpc.ClientDuplexStream<Buffer, Buffer>> {
  const server = new grpc.Server();
  server.addService(SERVICE, {
    Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      const writer = new CoalescingStreamWriter(call as grpc.ServerDuplexStream<unknown, unknown>);
      call.on('data', (b: Buffer) => onRequest(b.toString(), writer, call));
      call.on('end', () => {
        onEnd?.(writer);
        writer.close();
        call.end();
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const Client = grpc.makeGenericClientConstructor(SERVICE, 'Writer');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  cleanups.push(() => {
    client.close();
    server.forceShutdown();
  });
  return (client as unknown as { Chat(): grpc.ClientDuplexStream<Buffer, Buffer> }).Chat();
}

function collect(call: grpc.ClientDuplexStream<Buffer, Buffer>, count: number): Promise<string[]> {
  const got: string[] = [];
  return new Promise((resolve, reject) => {
    call.on('data', (b: Buffer) => {
      got.push(b.toString());
      if (got.length === count) resolve(got);
    });
    call.on('error', reject);
  });
}

describe('CoalescingStreamWriter', () => {
  it('finds the HTTP/2 stream under the grpc-js call (else it silently falls back to one write per message)', async () => {
    let coalescing: boolean | undefined;
    const call = await serve((_text, writer) => {
      coalescing = writer.coalescing;
      writer.write(frameOf('ok'));
    });
    const got = collect(call, 1);
    call.write(Buffer.from('hi'));
    expect(await got).toEqual(['ok']);
    expect(coalescing).toBe(true);
    call.end();
  });

  it('sends every message of one turn in order in a single HTTP/2 write, headers first', async () => {
    let writes = -1;
    const call = await serve((text, writer, serverCall) => {
      const stream = (serverCall as unknown as { call: { stream: { write: (...a: unknown[]) => boolean } } }).call.stream;
      const original = stream.write.bind(stream);
      writes = 0;
      stream.write = (...a: unknown[]) => {
        writes++;
        return original(...a);
      };
      for (let i = 0; i < 100; i++) writer.write(frameOf(`${text}-${i}`));
    });
    const got = collect(call, 100);
    call.write(Buffer.from('m'));
    expect(await got).toEqual(Array.from({ length: 100 }, (_, i) => `m-${i}`));
    expect(writes).toBe(1);
    call.end();
  });

  it('keeps order across turns and flushes what is queued before the call ends', async () => {
    const written: string[] = [];
    const write = (writer: CoalescingStreamWriter, text: string): void => {
      written.push(text);
      writer.write(frameOf(text));
    };
    // The last message is queued in the same turn the call ends: only close()'s flush can send it.
    const call = await serve(
      (text, writer) => {
        write(writer, `${text}:a`);
        setImmediate(() => write(writer, `${text}:b`));
      },
      (writer) => write(writer, 'last'),
    );
    const got: string[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      call.on('data', (b: Buffer) => got.push(b.toString()));
      call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))));
      call.on('error', reject);
    });
    call.write(Buffer.from('1'));
    call.write(Buffer.from('2'));
    await new Promise((r) => setTimeout(r, 50));
    call.end();
    await ended;
    expect(got).toEqual(written);
    expect(got.length).toBe(5);
    expect(got.at(-1)).toBe('last');
  });

  it('drops writes after close without throwing', async () => {
    const call = await serve((text, writer) => {
      writer.write(frameOf(text));
      writer.close();
      writer.write(frameOf('after'));
    });
    const got = collect(call, 1);
    call.write(Buffer.from('x'));
    expect(await got).toEqual(['x']);
    call.end();
  });
});
