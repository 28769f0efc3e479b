// The client port's ALPN choice: HTTP/1.1 whenever a client offers it (curl, Go's net/http, browsers
// asking for /health or /metrics), h2 for the gRPC clients, which offer nothing else.
import { describe, expect, it } from 'vitest';
import { pickClientPortProtocol } from './tls-listener.ts';

describe('pickClientPortProtocol', () => {
  it('picks http/1.1 when offered, h2 for gRPC clients, nothing for a client offering neither', () => {
    expect(pickClientPortProtocol(['h2'])).toBe('h2'); // grpc-go (etcdctl), grpc-js
    expect(pickClientPortProtocol(['grpc-exp', 'h2'])).toBe('h2'); // grpc's C core
    expect(pickClientPortProtocol(['h2', 'http/1.1'])).toBe('http/1.1'); // curl
    expect(pickClientPortProtocol(['http/1.1'])).toBe('http/1.1');
    expect(pickClientPortProtocol(['spdy/3.1'])).toBeUndefined(); // refused: no_application_protocol
  });
});
