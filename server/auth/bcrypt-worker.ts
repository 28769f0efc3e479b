// The worker thread behind bcrypt-pool.ts: runs bcryptjs's synchronous hash and compare, one request at a
// time, so that a member's main thread (Raft ticks, every client's requests) never spends the tens to
// hundreds of milliseconds one bcrypt takes in JavaScript. Requests and answers are plain objects
// (BcryptRequest, BcryptAnswer in bcrypt-pool.ts).
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

interface Request {
  id: number;
  op: 'hash' | 'compare';
  password: string;
  /** hash: the cost; compare: unused. */
  cost: number;
  /** compare: the stored hash. */
  hash: string;
}

const port = parentPort;
if (port === null) throw new Error('bcrypt-worker.ts runs only as a worker thread');

port.on('message', (req: Request) => {
  try {
    const result = req.op === 'hash' ? bcrypt.hashSync(req.password, bcrypt.genSaltSync(req.cost)) : bcrypt.compareSync(req.password, req.hash);
    port.postMessage({ id: req.id, result });
  } catch (err) {
    port.postMessage({ id: req.id, error: err instanceof Error ? err.message : String(err) });
  }
});
