// Cosign-style key-pair signatures, checked as cosign stores them: an OCI manifest at the tag
// `sha256-<hex>.sig` in the image's repository, whose layers are simple-signing payloads
// (application/vnd.dev.cosign.simplesigning.v1+json) with the base64 ECDSA P-256/SHA-256
// signature of the payload bytes in the annotation `dev.cosignproject.cosign/signature`.
import { createPublicKey, verify, type KeyObject } from 'node:crypto';

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const COSIGN_TYPE = 'cosign container image signature';

/** The tag cosign stores the signatures of a manifest digest at. */
export const signatureTag = (digest: string) => `${digest.replace(':', '-')}.sig`;

export interface PolicyKey {
  id: string;
  pem: string;
}

export interface SignedPayload {
  payload: Buffer;
  /** Base64, from the layer annotation. */
  signature: string;
}

export type Verdict =
  | { verified: true; keyId: string }
  | { verified: false; reason: 'SIGNATURE_MISSING' | 'SIGNATURE_INVALID'; message: string };

/** The simple-signing payload cosign signs for `digest` pushed as `reference`. */
export function simpleSigningPayload(reference: string, digest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: { identity: { 'docker-reference': reference }, image: { 'docker-manifest-digest': digest }, type: COSIGN_TYPE },
      optional: null,
    }),
  );
}

const keyCache = new Map<string, KeyObject>();
function publicKey(pem: string): KeyObject {
  let key = keyCache.get(pem);
  if (!key) {
    key = createPublicKey(pem);
    const details = key.asymmetricKeyDetails;
    if (key.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'prime256v1') throw new Error('not an ECDSA P-256 public key');
    keyCache.set(pem, key);
  }
  return key;
}

/** Strips the registry host and the tag or digest: "host:5000/a/b:1" -> "a/b". */
export function repositoryOf(reference: string): string {
  let name = reference.split('@')[0]!;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) name = name.slice(0, colon);
  const first = name.split('/')[0]!;
  if (name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) name = name.slice(first.length + 1);
  return name;
}

/**
 * Whether one of the payloads is a valid signature of `digest` in `repository` by one of the
 * keys. A payload for another digest or repository, or a signature no key verifies, is invalid.
 */
export function verifySignatures(
  payloads: readonly SignedPayload[],
  digest: string,
  repository: string,
  keys: readonly PolicyKey[],
): Verdict {
  if (payloads.length === 0) return { verified: false, reason: 'SIGNATURE_MISSING', message: `no signature at ${signatureTag(digest)}` };
  const problems: string[] = [];
  for (const { payload, signature } of payloads) {
    let body: { critical?: { identity?: { 'docker-reference'?: string }; image?: { 'docker-manifest-digest'?: string }; type?: string } };
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      problems.push('payload is not JSON');
      continue;
    }
    if (body.critical?.type !== COSIGN_TYPE) {
      problems.push(`payload type is ${JSON.stringify(body.critical?.type)}`);
      continue;
    }
    if (body.critical.image?.['docker-manifest-digest'] !== digest) {
      problems.push(`payload signs ${body.critical.image?.['docker-manifest-digest']}, not ${digest}`);
      continue;
    }
    const reference = body.critical.identity?.['docker-reference'] ?? '';
    if (repositoryOf(reference) !== repository) {
      problems.push(`payload names ${JSON.stringify(reference)}, not ${repository}`);
      continue;
    }
    const sig = Buffer.from(signature, 'base64');
    for (const key of keys) {
      let ok = false;
      try {
        ok = verify('sha256', payload, publicKey(key.pem), sig);
      } catch {
        ok = false;
      }
      if (ok) return { verified: true, keyId: key.id };
    }
    problems.push(`signature not made by any policy key (${keys.map((k) => k.id).join(', ')})`);
  }
  return { verified: false, reason: 'SIGNATURE_INVALID', message: problems.join('; ') };
}
