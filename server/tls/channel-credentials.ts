// Credentials for the connections a member opens to its peers (Raft streams, lease forwarding):
// plaintext for http:// peer URLs; for https://, TLS that presents this member's peer certificate and
// trusts the peer CA, both following reloads of the files (grpc-js's certificate-provider credentials).
import * as grpc from '@grpc/grpc-js';
import type { CertificateFiles } from './certificate-files.ts';

export function peerChannelCredentials(files: CertificateFiles | null): grpc.ChannelCredentials {
  if (!files) return grpc.credentials.createInsecure();
  return grpc.experimental.createCertificateProviderChannelCredentials(files, files);
}
