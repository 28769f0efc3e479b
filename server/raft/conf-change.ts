// Byte encoding of ConfChange, the payload of 'confChange' log entries:
//   byte 0: format version (1); byte 1: type code; bytes 2..9: nodeId (float64 BE); rest: context.

import type { ConfChange, ConfChangeType, ConfState, NodeId } from './types.ts';
import { fail } from './errors.ts';

const VERSION = 1;
const HEADER = 10;
const TYPES: readonly ConfChangeType[] = ['addNode', 'addLearner', 'removeNode', 'promoteLearner'];

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const code = TYPES.indexOf(cc.type);
  if (!(code >= 0)) fail(`unknown conf change type ${String(cc.type)}`);
  if (!(Number.isSafeInteger(cc.nodeId) && cc.nodeId > 0)) fail(`conf change nodeId ${cc.nodeId} must be a positive integer`);
  const ctx = cc.context ?? new Uint8Array(0);
  const out = new Uint8Array(HEADER + ctx.byteLength);
  out[0] = VERSION;
  out[1] = code + 1;
  new DataView(out.buffer).setFloat64(2, cc.nodeId);
  out.set(ctx, HEADER);
  return out;
}

/** Decodes a 'confChange' entry payload; throws RaftInvariantError if malformed. */
export function decodeConfChange(data: Uint8Array): ConfChange {
  if (!(data.byteLength >= HEADER && data[0] === VERSION)) fail(`malformed conf change (${data.byteLength} bytes)`);
  const type = TYPES[data[1] - 1];
  if (type === undefined) fail(`unknown conf change type code ${data[1]}`);
  const nodeId = new DataView(data.buffer, data.byteOffset, data.byteLength).getFloat64(2);
  if (!(Number.isSafeInteger(nodeId) && nodeId > 0)) fail(`malformed conf change nodeId ${nodeId}`);
  const cc: ConfChange = { type, nodeId };
  if (data.byteLength > HEADER) cc.context = data.slice(HEADER);
  return cc;
}

const byId = (a: NodeId, b: NodeId): number => a - b;

/**
 * The membership after applying `cc` to `cs` (pure). Changes that make no sense are no-ops,
 * identically on every node: addLearner of a voter (no demotion), promoteLearner of a
 * non-learner, removing the last voter, adding an existing voter.
 */
export function applyConfChangeTo(cs: ConfState, cc: ConfChange): ConfState {
  const id = cc.nodeId;
  const isVoter = cs.voters.includes(id);
  const isLearner = cs.learners.includes(id);
  const voters = cs.voters.slice();
  let learners = cs.learners.slice();
  switch (cc.type) {
    case 'addNode':
    case 'promoteLearner':
      if (isVoter || (cc.type === 'promoteLearner' && !isLearner)) break;
      learners = learners.filter((x) => x !== id);
      voters.push(id);
      break;
    case 'addLearner':
      if (isVoter || isLearner) break;
      learners.push(id);
      break;
    case 'removeNode':
      if (isVoter && voters.length === 1) break;
      return { voters: voters.filter((x) => x !== id), learners: learners.filter((x) => x !== id) };
  }
  return { voters: voters.sort(byId), learners: learners.sort(byId) };
}
