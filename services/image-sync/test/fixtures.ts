// Images made by the tests themselves and pushed over HTTP to real registries: random
// gzip'd layers (registries do not look inside), configs naming a platform, Docker schema 2
// and OCI manifests, multi-arch indexes and cosign signatures. Plus a hook that records
// every request, to count what a sync asks of a registry.
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { RegistryClient } from '../src/adapters/registry/client';
import { MEDIA, sha256, type Descriptor } from '../src/adapters/registry/manifest';
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING, signatureTag, simpleSigningPayload } from '../src/domain/signature';

export interface Recorded {
  method: string;
  url: string;
  status: number;
}

/** A client's onResponse that records method, URL and status of every request it makes. */
export function recording(log: Recorded[], hook?: (request: Recorded) => void | Promise<void>): (answer: Recorded) => Promise<void> {
  return async (answer) => {
    const entry = { ...answer };
    log.push(entry);
    await hook?.(entry);
  };
}

export async function pushBlob(client: RegistryClient, repository: string, bytes: Buffer, mediaType: string): Promise<Descriptor> {
  const digest = sha256(bytes);
  if (!(await client.hasBlob(repository, digest))) {
    await client.pushBlob(repository, digest, bytes.length, new Blob([bytes]).stream() as ReadableStream<Uint8Array>);
  }
  return { mediaType, digest, size: bytes.length };
}

export const randomLayer = (size: number) => gzipSync(randomBytes(size), { level: 0 });

export interface PushedImage {
  digest: string;
  layers: Descriptor[];
  config: Descriptor;
  bytes: Buffer;
}

/** One image manifest (Docker schema 2 by default) with its config and layers. */
export async function pushImage(
  client: RegistryClient,
  repository: string,
  tag: string | undefined,
  layers: Buffer[],
  { os = 'linux', architecture = 'amd64', oci = false }: { os?: string; architecture?: string; oci?: boolean } = {},
): Promise<PushedImage> {
  const layerType = oci ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.docker.image.rootfs.diff.tar.gzip';
  const configType = oci ? 'application/vnd.oci.image.config.v1+json' : 'application/vnd.docker.container.image.v1+json';
  const pushed = await Promise.all(layers.map((layer) => pushBlob(client, repository, layer, layerType)));
  const config = await pushBlob(
    client,
    repository,
    Buffer.from(
      JSON.stringify({
        architecture,
        os,
        rootfs: { type: 'layers', diff_ids: pushed.map((l) => l.digest) },
        config: {},
        created: new Date(0).toISOString(),
        nonce: randomBytes(4).toString('hex'),
      }),
    ),
    configType,
  );
  const mediaType = oci ? MEDIA.ociManifest : MEDIA.dockerManifest;
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, config, layers: pushed }, null, 2));
  const digest = await client.putManifest(repository, tag ?? sha256(bytes), mediaType, bytes);
  return { digest, layers: pushed, config, bytes };
}

/** A multi-arch index (OCI, or a Docker manifest list) over images pushed by digest. */
export async function pushIndex(
  client: RegistryClient,
  repository: string,
  tag: string,
  platforms: Array<{ architecture: string; layers: Buffer[] }>,
  { oci = true }: { oci?: boolean } = {},
): Promise<{ digest: string; children: Array<{ architecture: string; digest: string }> }> {
  const children = await Promise.all(
    platforms.map(async (p) => ({
      architecture: p.architecture,
      image: await pushImage(client, repository, undefined, p.layers, { architecture: p.architecture, oci }),
    })),
  );
  const mediaType = oci ? MEDIA.ociIndex : MEDIA.dockerList;
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: children.map((c) => ({
        mediaType: oci ? MEDIA.ociManifest : MEDIA.dockerManifest,
        digest: c.image.digest,
        size: c.image.bytes.length,
        platform: { os: 'linux', architecture: c.architecture },
      })),
    }),
  );
  const digest = await client.putManifest(repository, tag, mediaType, bytes);
  return { digest, children: children.map((c) => ({ architecture: c.architecture, digest: c.image.digest })) };
}

export function keyPair(): { privateKey: KeyObject; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** Signs `digest` as cosign does and pushes the signature manifest at `sha256-<hex>.sig`. */
export async function pushSignature(
  client: RegistryClient,
  repository: string,
  digest: string,
  privateKey: KeyObject,
  { reference = `${client.host}/${repository}`, signedDigest = digest }: { reference?: string; signedDigest?: string } = {},
): Promise<void> {
  const payload = simpleSigningPayload(reference, signedDigest);
  const signature = sign('sha256', payload, privateKey).toString('base64');
  const layer = await pushBlob(client, repository, payload, SIMPLE_SIGNING);
  const config = await pushBlob(client, repository, Buffer.from('{}'), 'application/vnd.oci.image.config.v1+json');
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config,
      layers: [{ ...layer, annotations: { [SIGNATURE_ANNOTATION]: signature } }],
    }),
  );
  await client.putManifest(repository, signatureTag(digest), MEDIA.ociManifest, bytes);
}
