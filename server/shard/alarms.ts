// The replicated alarm table (etcd's alarm store): which member raised which alarm. Alarms change only
// by applying an alarm entry from the Raft log, so every member lists the same alarms at the same
// applied index, and while NOSPACE is raised every member refuses the same writes (etcd's "capped"
// applier). Persisted as state records, so alarms survive restarts and travel in Raft snapshots.

/** Alarm types as etcd names them (etcdserverpb.AlarmType). */
export type AlarmType = 'NONE' | 'NOSPACE' | 'CORRUPT';

/** One raised alarm (etcdserverpb.AlarmMember; memberID as a decimal string, as proto-loader gives uint64). */
export interface AlarmMember {
  memberID: string;
  alarm: AlarmType;
}

/** An alarm entry's request: etcdserverpb.AlarmRequest as protobufjs decodes it (enums as names). */
export interface AlarmRequestBody {
  action: 'GET' | 'ACTIVATE' | 'DEACTIVATE';
  memberID: string;
  alarm: AlarmType;
}

/** Alarms live in the group's state keyspace under this prefix ('w', for warning). */
export const ALARM_RECORD_PREFIX = 0x77;

const ALARM_TYPES: ReadonlySet<string> = new Set(['NONE', 'NOSPACE', 'CORRUPT']);

/** Accepts enum names and numbers (JSON clients and proto-loader options differ). */
export function alarmTypeOf(v: unknown): AlarmType {
  if (typeof v === 'number') return (['NONE', 'NOSPACE', 'CORRUPT'][v] ?? 'NONE') as AlarmType;
  return typeof v === 'string' && ALARM_TYPES.has(v) ? (v as AlarmType) : 'NONE';
}

export function alarmActionOf(v: unknown): AlarmRequestBody['action'] {
  if (typeof v === 'number') return (['GET', 'ACTIVATE', 'DEACTIVATE'][v] ?? 'GET') as AlarmRequestBody['action'];
  return v === 'ACTIVATE' || v === 'DEACTIVATE' ? v : 'GET';
}

function keyOf(a: AlarmMember): string {
  return `${a.memberID}:${a.alarm}`;
}

export class AlarmStore {
  private readonly alarms = new Map<string, AlarmMember>();
  private persist: Array<{ key: Buffer; value: Buffer | null }> = [];

  static restore(records: Iterable<[Buffer, Buffer]>): AlarmStore {
    const store = new AlarmStore();
    for (const [, value] of records) {
      const a = JSON.parse(value.toString('utf8')) as AlarmMember;
      store.alarms.set(keyOf(a), { memberID: a.memberID, alarm: alarmTypeOf(a.alarm) });
    }
    return store;
  }

  /** Raises an alarm; returns the alarm, or null for NONE (etcd ignores it). Raising twice is harmless. */
  activate(memberID: string, alarm: AlarmType): AlarmMember | null {
    if (alarm === 'NONE') return null;
    const a: AlarmMember = { memberID, alarm };
    if (!this.alarms.has(keyOf(a))) {
      this.alarms.set(keyOf(a), a);
      this.persist.push({ key: Buffer.from(keyOf(a), 'utf8'), value: Buffer.from(JSON.stringify(a)) });
    }
    return a;
  }

  /** Clears an alarm; returns it, or null if it was not raised (etcd answers with no alarms then). */
  deactivate(memberID: string, alarm: AlarmType): AlarmMember | null {
    const key = keyOf({ memberID, alarm });
    const a = this.alarms.get(key);
    if (!a) return null;
    this.alarms.delete(key);
    this.persist.push({ key: Buffer.from(key, 'utf8'), value: null });
    return a;
  }

  /** Whether any member has raised this alarm. */
  has(alarm: AlarmType): boolean {
    for (const a of this.alarms.values()) if (a.alarm === alarm) return true;
    return false;
  }

  hasFor(memberID: string, alarm: AlarmType): boolean {
    return this.alarms.has(keyOf({ memberID, alarm }));
  }

  /** Every raised alarm, by member id then type (a stable order for `etcdctl alarm list`). */
  list(): AlarmMember[] {
    return [...this.alarms.values()].sort((a, b) => {
      const x = BigInt(a.memberID);
      const y = BigInt(b.memberID);
      return x < y ? -1 : x > y ? 1 : a.alarm < b.alarm ? -1 : a.alarm > b.alarm ? 1 : 0;
    });
  }

  drainPersistOps(): Array<{ key: Buffer; value: Buffer | null }> {
    const ops = this.persist;
    this.persist = [];
    return ops;
  }
}
