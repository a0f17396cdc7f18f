/**
 * The file operations Longboat's own files (snapshots, received snapshots, exports, data
 * directories) go through. Production uses nodeFileSystem (src/fs/node.ts); the simulator
 * passes a disk that loses, at a power loss, whatever was not synced (test/sim/disk.ts).
 * Synchronous like bun:sqlite: the engine and the simulator stay deterministic.
 *
 * Nothing here is durable by itself: a write is durable after FileHandle.sync(), a new name
 * (create, rename, mkdir, remove) after syncDir() of the directory that holds it. The helpers
 * of src/fs/durable.ts keep that order; use them for anything a message or a reply promises.
 */
export interface FileSystem {
  /**
   * "read": an existing file; "create": create or truncate; "createNew": create, failing
   * (EEXIST) when the name exists.
   */
  open(path: string, mode: "read" | "create" | "createNew"): FileHandle;
  /** The whole file. */
  readFile(path: string): Uint8Array;
  /** Names in a directory (no order promised). */
  list(dir: string): string[];
  /** Kind and size of what path names, or null when nothing does. */
  stat(path: string): { isDirectory: boolean; sizeBytes: number } | null;
  /** Creates one directory; its parent must exist (EEXIST when path exists). */
  mkdir(path: string): void;
  /** Atomically gives from's file the name to (replacing a file there). */
  rename(from: string, to: string): void;
  /** Removes a file; nothing happens when there is none. */
  remove(path: string): void;
  /** Removes a directory and everything under it; nothing happens when there is none. */
  removeTree(path: string): void;
  /** fsync of a directory: the names created, renamed or removed in it are durable. */
  syncDir(dir: string): void;
  /**
   * Optional: syncDir off the calling thread; done(null) once durable, never inside this call.
   * A file system without it (the simulator's disk) is synced with syncDir().
   */
  syncDirAsync?(dir: string, done: (error: Error | null) => void): void;
}

/** An open file. Writes append (Longboat writes its files front to back, once). */
export interface FileHandle {
  /** Writes all of data after what was written through this handle. */
  write(data: Uint8Array): void;
  /** Reads up to into.byteLength bytes at position; returns how many (0 at the end). */
  read(into: Uint8Array, position: number): number;
  sizeBytes(): number;
  /** fsync: the file's data is durable when it returns. */
  sync(): void;
  /**
   * Optional: fsync off the calling thread (the runtime's I/O threads); done(null) once the
   * data is durable, never inside this call. The handle must not be used or closed until done.
   * A file system without it (the simulator's disk) is synced with sync().
   */
  syncAsync?(done: (error: Error | null) => void): void;
  close(): void;
}
