/**
 * `fileResponse`: a Response streaming a file, the counterpart of waitress's
 * `wsgi.file_wrapper`.
 * @module
 */
import { openFile } from "./runtime/files.ts";

/**
 * Opens `path` and answers with its contents: `Content-Length` from the
 * file's size, the bytes streamed in large blocks with bounded memory, the
 * file closed at the end or when the client goes away. Rejects (so the app
 * can answer 404) when the file cannot be opened.
 */
export async function fileResponse(path: string, init?: ResponseInit): Promise<Response> {
  const { size, stream } = await openFile(path);
  const headers = new Headers(init?.headers);
  headers.set("content-length", String(size));
  if (!headers.has("content-type")) headers.set("content-type", "application/octet-stream");
  return new Response(stream, { ...init, headers });
}
