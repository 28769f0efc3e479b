// CoalescingStreamWriter against a real grpc-js server and client on loopback.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import http2 from 'node:http2';
import { CoalescingStreamWriter, GRPC_FRAME_PREFIX_BYTES, writeFramePrefix } from './stream-writer.ts';

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
let lastPort = 0;
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
  lastPort = port;
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
    // Both messages answered (each over two turns) before the call ends: on a loaded machine a fixed
    // pause could end it between '2:a' and '2:b', and a write after the end is dropped by design.
    for (let i = 0; i < 500 && got.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
    call.end();
    await ended;
    expect(got).toEqual(written);
    expect(got.length).toBe(5);
    expect(got.at(-1)).toBe('last');
  });

  it('writes messages given as parts, large parts uncopied, small and large messages in order', async () => {
    const big = Buffer.alloc(40 * 1024, 'b');
    const call = await serve((text, writer) => {
      for (let i = 0; i < 6; i++) {
        const head = Buffer.alloc(GRPC_FRAME_PREFIX_BYTES + 3); // "m0:"
        head.write(`${text}${i}:`, GRPC_FRAME_PREFIX_BYTES);
        // Even messages carry a large part; odd ones are all small.
        writer.writeParts(i % 2 === 0 ? [head, big, Buffer.from('.')] : [head, Buffer.from('small')]);
      }
    });
    const got = collect(call, 6);
    call.write(Buffer.from('m'));
    expect(await got).toEqual(Array.from({ length: 6 }, (_, i) => `m${i}:${i % 2 === 0 ? `${big.toString()}.` : 'small'}`));
    call.end();
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

  it('counts what a client that stops reading leaves queued, reports it over budget, and says when it drained', async () => {
    const BUDGET = 256 * 1024;
    const frameBody = 'x'.repeat(64 * 1024);
    let writer: CoalescingStreamWriter | null = null;
    let frames = 0;
    let stop = false;
    let drained = 0;
    const idle = await serve((_text, _unbudgeted, serverCall) => {
      writer = new CoalescingStreamWriter(serverCall as grpc.ServerDuplexStream<unknown, unknown>, BUDGET);
      writer.onDrained = () => drained++;
      // One 64 KiB message per turn whenever the writer has room (as the watch service produces).
      const pump = (): void => {
        if (stop) return;
        if (writer!.overBudget) {
          setTimeout(pump, 5);
          return;
        }
        writer!.write(frameOf(`${frames++}:${frameBody}`));
        setImmediate(pump);
      };
      pump();
    });
    idle.end();
    // A bare HTTP/2 client that sends one request and reads nothing: its flow-control window closes
    // and the writer holds the rest. (A grpc-js client keeps reading into its own buffers.)
    const session = http2.connect(`http://127.0.0.1:${lastPort}`);
    cleanups.push(() => session.destroy());
    const req = session.request({ ':method': 'POST', ':path': '/test.Writer/Chat', 'content-type': 'application/grpc', te: 'trailers' });
    req.pause();
    req.write(writeFramePrefix(frameOf('go')));
    const deadline = Date.now() + 10_000;
    while (writer === null || !(writer as CoalescingStreamWriter).overBudget) {
      if (Date.now() > deadline) throw new Error(`never over budget: ${frames} frames`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const w = writer as CoalescingStreamWriter;
    await new Promise((r) => setTimeout(r, 300));
    expect(frames).toBeLessThan(20);
    expect(w.overBudget).toBe(true);
    expect(w.queuedBytes).toBeGreaterThanOrEqual(BUDGET);
    expect(w.queuedBytes).toBeLessThanOrEqual(BUDGET + frameBody.length + 100);
    expect(drained).toBe(0);
    // Reading again: everything arrives in order, and the writer says it drained.
    stop = true;
    const total = frames;
    let buffered = Buffer.alloc(0);
    const got: number[] = [];
    req.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 5 && buffered.length >= 5 + buffered.readUInt32BE(1)) {
        const len = buffered.readUInt32BE(1);
        got.push(Number(buffered.subarray(5, 5 + len).toString().split(':')[0]));
        buffered = buffered.subarray(5 + len);
      }
    });
    req.resume();
    while ((got.length < total || drained === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(drained).toBe(1);
    expect(w.overBudget).toBe(false);
    expect(w.queuedBytes).toBe(0);
    req.close();
  });
});
