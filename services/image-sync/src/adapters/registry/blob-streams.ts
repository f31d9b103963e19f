// Blob bytes on their way through the client: checked against their digest while they stream,
// and re-cut into the chunks of a chunked upload.
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { RegistryError } from './errors';

/**
 * A pass-through that errors (DIGEST_MISMATCH) at its end when the bytes do not hash to
 * `digest` or their count differs from `size`: nothing built on it can complete.
 */
export function digestCheck(digest: string, size: number | undefined, where: string): Transform {
  const hash = createHash('sha256');
  let count = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      count += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== digest)
        callback(new RegistryError(`${where}: content hashes to ${got} (blob corrupted or tampered with)`, 'DIGEST_MISMATCH'));
      else if (size !== undefined && count !== size)
        callback(new RegistryError(`${where}: ${count} bytes, descriptor says ${size}`, 'DIGEST_MISMATCH'));
      else callback();
    },
  });
}

/** Re-cuts a stream into buffers of `size` bytes (the last one shorter). */
export async function* chunks(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let length = 0;
  for await (const piece of stream) {
    let buffer = Buffer.isBuffer(piece) ? piece : Buffer.from(piece as Uint8Array);
    while (buffer.length > 0) {
      const take = Math.min(size - length, buffer.length);
      parts.push(buffer.subarray(0, take));
      length += take;
      buffer = buffer.subarray(take);
      if (length === size) {
        yield Buffer.concat(parts);
        parts = [];
        length = 0;
      }
    }
  }
  if (length > 0) yield Buffer.concat(parts);
}
