// How `synod placement` prints a placement view for people: one row per shard (shard, slots, replicas,
// leader, revision) and a line of move counts. Pure text formatting of a PlacementView; the JSON form
// (`--json`) is the view itself.
import type { KeyLocation, PlacementView } from './placement-view.ts';

const HEADER = ['SHARD', 'SLOTS', 'REPLICAS', 'LEARNERS', 'LEADER', 'REVISION'];

/** Columns padded to their widest cell, two spaces apart; no trailing spaces. */
function columns(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ').trimEnd());
}

export function formatPlacementTable(view: PlacementView): string {
  const rows = [
    HEADER,
    ...view.shards.map((s) => [
      String(s.id),
      `${s.slots[0]}-${s.slots[1]}`,
      s.replicas.join(',') || '-',
      s.learners.join(',') || '-',
      s.leader ?? '(none)',
      String(s.revision),
    ]),
  ];
  const moves = `moves: ${view.moves.pending} pending, ${view.moves.inProgress} in progress, ${view.moves.done} done (placement version ${view.version})`;
  return [...columns(rows), moves].join('\n') + '\n';
}

export function formatKeyLocation(loc: KeyLocation): string {
  return `key ${JSON.stringify(loc.key)}: slot ${loc.slot}, shard ${loc.shard}\n`;
}
