/**
 * Opening a file as a body stream with the runtime's fastest file API.
 * @module
 */

/** An open file ready to be streamed. */
export interface FileBody {
  /** Size in bytes at open time. */
  size: number;
  /** The file's bytes in large blocks; cancelling it closes the file. */
  stream: ReadableStream<Uint8Array>;
}

/** Read size per block: large enough to amortize per-read cost, small enough to bound memory. */
export const FILE_BLOCK_SIZE = 256 * 1024;

// deno-lint-ignore no-explicit-any
const g = globalThis as any;

/** Opens `path` for streaming; rejects when it is missing or not a regular file. */
export async function openFile(path: string): Promise<FileBody> {
  if (typeof g.Deno?.open === "function") return await openDeno(path);
  if (typeof g.Bun?.file === "function") return await openBun(path);
  return await openNode(path);
}

/**
 * The blocks `read` fills (it resolves to the count of bytes read, or null at
 * the end), pulled one at a time. `close` runs once: at the end, on cancel,
 * or when a read fails, since a stream that has errored is never cancelled.
 */
export function blockStream(
  read: (block: Uint8Array) => Promise<number | null>,
  close: () => void,
): ReadableStream<Uint8Array> {
  let closed = false;
  const closeOnce = () => {
    if (!closed) {
      closed = true;
      close();
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const block = new Uint8Array(FILE_BLOCK_SIZE);
      let n: number | null;
      try {
        n = await read(block);
      } catch (error) {
        closeOnce();
        throw error;
      }
      if (n === null) {
        closeOnce();
        controller.close();
      } else {
        controller.enqueue(block.subarray(0, n));
      }
    },
    cancel: closeOnce,
  }, { highWaterMark: 0 });
}

async function openDeno(path: string): Promise<FileBody> {
  // Opening a FIFO for reading waits for a writer: look before opening.
  if (!(await g.Deno.stat(path)).isFile) throw new Error(`${path} is not a regular file`);
  const file = await g.Deno.open(path, { read: true });
  try {
    const info = await file.stat();
    if (!info.isFile) throw new Error(`${path} is not a regular file`);
    const stream = blockStream((block) => file.read(block), () => file.close());
    return { size: info.size, stream };
  } catch (error) {
    file.close();
    throw error;
  }
}

async function openBun(path: string): Promise<FileBody> {
  const { stat } = await import("node:fs/promises");
  const info = await stat(path);
  if (!info.isFile()) throw new Error(`${path} is not a regular file`);
  return { size: info.size, stream: g.Bun.file(path).stream() };
}

async function openNode(path: string): Promise<FileBody> {
  const { open } = await import("node:fs/promises");
  const { constants } = await import("node:fs");
  // O_NONBLOCK: a FIFO opens at once (and is refused below) instead of
  // holding a thread of node's pool until a writer comes; files ignore it.
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new Error(`${path} is not a regular file`);
    const stream = blockStream(
      async (block) => {
        const { bytesRead } = await handle.read(block, 0, block.byteLength, null);
        return bytesRead === 0 ? null : bytesRead;
      },
      () => void handle.close().catch(() => {}),
    );
    return { size: info.size, stream };
  } catch (error) {
    await handle.close();
    throw error;
  }
}
