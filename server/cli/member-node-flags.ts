// Node/V8 flags for a member process. Every launcher passes them: `synod local`, the image's
// entrypoint, the benchmark, and the shebang of synod.ts (which must spell them out itself).
//
// --max-semi-space-size: a member's long-lived data (the MVCC index, the Raft log) is allocated
// young and survives, so V8 grows the young generation to its maximum, 64 MiB semi-spaces on a
// 64-bit machine with this much memory: about 128 MiB resident that holds mostly garbage. 8 MiB
// semi-spaces cost more frequent (each cheaper) scavenges; docs/performance.md has the figures.
// V8 reads this flag only when the heap is set up, so it cannot be applied from inside the process.
export const MEMBER_NODE_FLAGS: readonly string[] = Object.freeze(['--max-semi-space-size=8']);
