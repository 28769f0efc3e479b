// The part of hpack.js (RFC 7541 header compression) that authority-repair.ts uses: the decompressor,
// which keeps one peer's dynamic table across the header blocks of a connection.
declare module 'hpack.js' {
  export interface HeaderField {
    /** Latin-1: one character per byte of the field as sent. */
    name: string;
    value: string;
    neverIndex: boolean;
  }

  export interface Decompressor {
    write(block: Buffer): boolean;
    /** Decodes what was written; throws on a malformed block. */
    execute(): void;
    read(): HeaderField | null;
  }

  export const decompressor: {
    create(options: { table: { maxSize: number } }): Decompressor;
  };
}
