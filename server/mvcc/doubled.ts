// Growing a typed-array column (records' revisions, offsets, checksums) without per-record objects:
// the column copied into one twice as long.
type TypedColumn = Float64Array | Uint32Array | Uint16Array | Uint8Array;

export function doubled<T extends TypedColumn>(column: T): T {
  const wider = new (column.constructor as new (length: number) => T)(column.length * 2);
  wider.set(column);
  return wider;
}
