// A client of one registry speaking the OCI distribution spec: manifests (Docker schema 2, OCI
// manifest, OCI index, Docker manifest list), tags, blobs verified against their digest while
// they stream, cross-repository mounts, monolithic and chunked uploads. The HTTP side (auth,
// retries, redirects, the limit on requests in flight) is transport.ts.
import { pipeline, Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { contentType, header } from './answer';
import { chunks, digestCheck } from './blob-streams';
import { RegistryError } from './errors';
import { MANIFEST_ACCEPT, sha256, type FetchedManifest, type Manifest } from './manifest';
import { RegistryTransport, type TransportOptions } from './transport';

export interface RegistryClientOptions extends TransportOptions {
  /** Blobs above this size are uploaded in chunks of this size (default 64 MiB). */
  chunkSize?: number;
}

/** A blob body: a Node stream, a web stream or bytes. */
export type BlobBody = Readable | ReadableStream<Uint8Array> | Buffer;

export class RegistryClient {
  private readonly transport: RegistryTransport;

  constructor(private readonly options: RegistryClientOptions) {
    this.transport = new RegistryTransport(options);
  }

  get url(): string {
    return this.transport.url;
  }

  /** host:port, as in image references. */
  get host(): string {
    return this.transport.host;
  }

  /** Closes the kept connections. */
  close(): Promise<void> {
    return this.transport.close();
  }

  // ---- manifests ----

  /** The digest a tag (or digest) points at, from a HEAD; undefined when absent. */
  async headManifest(repository: string, reference: string): Promise<{ digest: string; mediaType: string; size: number } | undefined> {
    const response = await this.transport.request(`/v2/${repository}/manifests/${reference}`, {
      method: 'HEAD',
      headers: { accept: MANIFEST_ACCEPT },
      scope: `repository:${repository}:pull`,
      ok: [200, 404],
    });
    await response.body.dump();
    if (response.status === 404) return undefined;
    const digest = header(response, 'docker-content-digest');
    if (!digest) throw new RegistryError(`${this.host}/${repository}:${reference}: HEAD gave no Docker-Content-Digest`, 'PROTOCOL');
    return { digest, mediaType: contentType(response), size: Number(header(response, 'content-length') ?? 0) };
  }

  /** Fetches a manifest; when `expected` (or a digest reference) is given, its bytes must hash to it. */
  async getManifest(repository: string, reference: string, expected?: string): Promise<FetchedManifest | undefined> {
    const response = await this.transport.request(`/v2/${repository}/manifests/${reference}`, {
      headers: { accept: MANIFEST_ACCEPT },
      scope: `repository:${repository}:pull`,
      ok: [200, 404],
    });
    if (response.status === 404) {
      await response.body.dump();
      return undefined;
    }
    const bytes = Buffer.from(await response.body.arrayBuffer());
    const digest = sha256(bytes);
    const want = expected ?? (reference.startsWith('sha256:') ? reference : header(response, 'docker-content-digest'));
    if (want && want !== digest) {
      throw new RegistryError(`${this.host}/${repository}@${want}: manifest content hashes to ${digest}`, 'DIGEST_MISMATCH');
    }
    let manifest: Manifest;
    try {
      manifest = JSON.parse(bytes.toString('utf8')) as Manifest;
    } catch {
      throw new RegistryError(`${this.host}/${repository}:${reference}: manifest is not JSON`, 'PROTOCOL');
    }
    return { digest, mediaType: manifest.mediaType ?? contentType(response), bytes, manifest };
  }

  /** Pushes a manifest by tag or digest; checks the digest the registry computed. */
  async putManifest(repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<string> {
    const response = await this.transport.request(`/v2/${repository}/manifests/${reference}`, {
      method: 'PUT',
      headers: { 'content-type': mediaType },
      body: bytes,
      scope: `repository:${repository}:pull,push`,
    });
    await response.body.dump();
    const digest = sha256(bytes);
    const stored = header(response, 'docker-content-digest');
    if (stored && stored !== digest)
      throw new RegistryError(`${this.host}/${repository}:${reference} stored as ${stored}, sent ${digest}`, 'DIGEST_MISMATCH');
    return digest;
  }

  async deleteManifest(repository: string, digest: string): Promise<void> {
    const response = await this.transport.request(`/v2/${repository}/manifests/${digest}`, {
      method: 'DELETE',
      scope: `repository:${repository}:pull,push,delete`,
      ok: [202, 404],
    });
    await response.body.dump();
  }

  /** Every tag of a repository, following the Link header's pages. */
  async listTags(repository: string): Promise<string[]> {
    const tags: string[] = [];
    let path: string | undefined = `/v2/${repository}/tags/list?n=1000`;
    while (path) {
      const response = await this.transport.request(path, { scope: `repository:${repository}:pull`, ok: [200, 404] });
      if (response.status === 404) {
        await response.body.dump();
        throw new RegistryError(`${this.host}/${repository}: no such repository`, 'NOT_FOUND', 404);
      }
      const body = (await response.body.json()) as { tags?: string[] | null };
      tags.push(...(body.tags ?? []));
      const link = header(response, 'link')?.match(/<([^>]+)>/)?.[1];
      path = link ? (link.startsWith('/') ? link : new URL(link).pathname + new URL(link).search) : undefined;
    }
    return tags;
  }

  // ---- blobs ----

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const response = await this.transport.request(`/v2/${repository}/blobs/${digest}`, {
      method: 'HEAD',
      scope: `repository:${repository}:pull`,
      ok: [200, 404],
    });
    await response.body.dump();
    return response.status === 200;
  }

  /**
   * The blob as a stream that errors (DIGEST_MISMATCH) at its end when the bytes do not hash
   * to `digest` or their count differs from `size`: nothing built on it can complete.
   */
  async getBlob(repository: string, digest: string, size?: number): Promise<Readable> {
    const response = await this.transport.request(`/v2/${repository}/blobs/${digest}`, { scope: `repository:${repository}:pull` });
    // A body that breaks off fails the stream; a reader that gives up releases the connection.
    return pipeline(response.body, digestCheck(digest, size, `${this.host}/${repository}@${digest}`), () => undefined);
  }

  async getBlobBytes(repository: string, digest: string, size?: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const part of await this.getBlob(repository, digest, size)) parts.push(part as Buffer);
    return Buffer.concat(parts);
  }

  /** Mounts a blob from another repository of this registry; false when the registry would not. */
  async mountBlob(repository: string, digest: string, from: string): Promise<boolean> {
    const started = await this.startUpload(repository, { digest, from });
    if (started.mounted) return true;
    // The registry opened an upload instead; abandon it.
    await this.cancelUpload(repository, started.location);
    return false;
  }

  /**
   * Opens an upload. With `mount`, asks first for the blob to be mounted from `from` (which
   * may be `repository` itself: a blob already there answers 201 at once), so a blob that
   * is there or can be mounted costs one request, and one that is not gets its upload.
   */
  async startUpload(
    repository: string,
    mount?: { digest: string; from: string },
  ): Promise<{ mounted: true } | { mounted: false; location: string }> {
    const query = mount ? `?mount=${encodeURIComponent(mount.digest)}&from=${encodeURIComponent(mount.from)}` : '';
    const scope = `repository:${repository}:pull,push${mount && mount.from !== repository ? ` repository:${mount.from}:pull` : ''}`;
    const response = await this.transport.request(`/v2/${repository}/blobs/uploads/${query}`, { method: 'POST', scope, ok: [201, 202] });
    await response.body.dump();
    if (response.status === 201) return { mounted: true };
    return { mounted: false, location: this.transport.location(response) };
  }

  /**
   * Uploads a blob from a stream: monolithic (POST, then one streamed PUT) up to the chunk
   * size, else PATCH chunk by chunk and a closing PUT. The registry checks the digest too.
   */
  async pushBlob(repository: string, digest: string, size: number, blob: BlobBody, upload?: string): Promise<void> {
    const body =
      blob instanceof Buffer
        ? Readable.from([blob])
        : blob instanceof Readable
          ? blob
          : Readable.fromWeb(blob as NodeReadableStream<Uint8Array>);
    const scope = `repository:${repository}:pull,push`;
    let location = upload;
    if (!location) {
      try {
        const start = await this.transport.request(`/v2/${repository}/blobs/uploads/`, { method: 'POST', scope, ok: [202] });
        await start.body.dump();
        location = this.transport.location(start);
      } catch (error) {
        body.destroy();
        throw error;
      }
    }
    const chunkSize = this.options.chunkSize ?? 64 * 1024 * 1024;
    try {
      if (size <= chunkSize) {
        const put = await this.transport.request(withDigest(location, digest), {
          method: 'PUT',
          // No Content-Length: a stream that fails its digest check never sends its last
          // chunk, so the registry cannot complete the upload.
          headers: { 'content-type': 'application/octet-stream' },
          body,
          scope,
          retry: false,
          ok: [201],
        });
        await put.body.dump();
        return;
      }
      let offset = 0;
      for await (const chunk of chunks(body, chunkSize)) {
        const patch = await this.transport.request(location, {
          method: 'PATCH',
          headers: {
            'content-type': 'application/octet-stream',
            'content-length': String(chunk.length),
            'content-range': `${offset}-${offset + chunk.length - 1}`,
          },
          body: chunk,
          scope,
          retry: false,
          ok: [202],
        });
        await patch.body.dump();
        location = this.transport.location(patch);
        offset += chunk.length;
      }
      const put = await this.transport.request(withDigest(location, digest), {
        method: 'PUT',
        headers: { 'content-length': '0' },
        scope,
        ok: [201],
      });
      await put.body.dump();
    } catch (error) {
      body.destroy();
      await this.cancelUpload(repository, location);
      throw error;
    }
  }

  /** Abandons an upload session. */
  async cancelUpload(repository: string, location: string): Promise<void> {
    await this.transport
      .request(location, { method: 'DELETE', scope: `repository:${repository}:pull,push`, ok: [204, 404] })
      .then((r) => r.body.dump())
      .catch(() => undefined);
  }
}

function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}
