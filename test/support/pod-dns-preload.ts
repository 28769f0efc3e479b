// Loaded with `node --import` into processes that stand for pods in tests (the server and the operator's
// test process): resolves a pod's stable DNS name `<cluster>-<i>.<peer service>.<namespace>.svc`, and the
// client Service `<client service>.<namespace>.svc`, to the loopback address the test gave that pod
// (SYNOD_TEST_POD_IP_PREFIX + "." + (10 + i); the client Service → pod 0), as cluster DNS would. Every other
// name resolves as usual. Only dns.lookup / dns.promises.lookup are covered: what grpc-js and net use.
// TEST-ONLY: it exists because no cluster DNS runs here.
import dns from 'node:dns';
import { installPodDns } from './pod-dns.ts';

const prefix = process.env['SYNOD_TEST_POD_IP_PREFIX'];
const cluster = process.env['SYNOD_TEST_POD_CLUSTER'];
const namespace = process.env['SYNOD_TEST_POD_NAMESPACE'];
if (prefix !== undefined && cluster !== undefined && namespace !== undefined) installPodDns(dns, { prefix, cluster, namespace });
