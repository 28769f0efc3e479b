// Placement gauges on /metrics, read from the placement view at each scrape: replicas and leaderships
// per member as this member sees them, and moves by state. Labels are member ids in etcdctl's hex, so
// a dashboard joins them with `etcdctl member list` and /placement. A removed member's series go away
// (the gauges are reset before each scrape fills them).
import client from 'prom-client';
import { buildPlacementView, loadsPerMember, type PlacementObservation } from '../placement/placement-view.ts';

export function registerPlacementMetrics(registry: client.Registry, observe: () => PlacementObservation): void {
  // One observation per scrape would need a shared cache across collect() calls; each gauge reading
  // its own is a few microseconds on today's cluster and keeps every gauge self-consistent.
  const perMember = (name: string, help: string, pick: (load: { replicas: number; leaders: number }) => number): void => {
    new client.Gauge({
      name,
      help,
      labelNames: ['member'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [member, load] of loadsPerMember(buildPlacementView(observe()))) this.set({ member }, pick(load));
      },
    });
  };
  perMember('synod_placement_replicas', 'Voting replicas hosted by each member, as this member sees the placement.', (l) => l.replicas);
  perMember('synod_placement_leaders', 'Shards led by each member, as this member sees the placement.', (l) => l.leaders);
  new client.Gauge({
    name: 'synod_placement_moves',
    help: 'Replica moves by state (pending, in_progress, done), as this member sees the placement.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const moves = observe().moves;
      this.set({ state: 'pending' }, moves.pending);
      this.set({ state: 'in_progress' }, moves.inProgress);
      this.set({ state: 'done' }, moves.done);
    },
  });
  new client.Gauge({
    name: 'synod_placement_version',
    help: 'Placement version this member has applied (the Raft index of the last membership change).',
    registers: [registry],
    collect() {
      this.set(observe().version);
    },
  });
}
