// Trusted-image rules for lapis-run, as the node's runtime applies them: image-sync's
// ResolveImage decides whether an image may run and gives the digest to run it by.
// It talks gRPC with grpc-js directly rather than through @lapis/platform, whose import
// (telemetry, NATS, ...) would add about a second to the start of every task of every step;
// of the platform it takes only the retry helper, which imports nothing heavy.
import * as fs from 'node:fs';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { withRetries } from '@lapis/platform/retry';
import type { ResolveImageResponse } from '@lapis/proto/lapis/images/v1/images';
import { ImageSyncServiceClient } from '@lapis/proto/lapis/images/v1/image_sync_service';

/** Exit status of a step refused because its image is not in the trusted catalogue (EX_NOPERM). */
export const EXIT_UNTRUSTED = 77;
/** Exit status of a step whose image could not be checked: image-sync unreachable (EX_UNAVAILABLE). */
export const EXIT_UNAVAILABLE = 69;

/** Where lapis-run reads its site settings when LAPIS_RUN_CONFIG does not name a file. */
export const DEFAULT_CONFIG_FILE = '/etc/lapis/lapis-run.conf';

export interface TrustConfig {
  /** image-sync's gRPC address (host:port); empty: no catalogue to ask. */
  imageSyncAddress: string;
  /** The service token ResolveImage is called with. */
  token: string;
  /** Run an image the catalogue does not know (by the reference given). Default false. */
  allowUntrusted: boolean;
}

/**
 * The settings from the config file (KEY=VALUE lines, # comments; LAPIS_RUN_CONFIG or
 * /etc/lapis/lapis-run.conf, optional) overlaid with the same variables from the environment:
 * LAPIS_IMAGE_SYNC_ADDRESS, LAPIS_SERVICE_TOKEN, LAPIS_ALLOW_UNTRUSTED_IMAGES.
 */
export function trustConfig(env: NodeJS.ProcessEnv): TrustConfig {
  const file = env.LAPIS_RUN_CONFIG || DEFAULT_CONFIG_FILE;
  const values: Record<string, string> = {};
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    // The default file is optional; one named explicitly must be there.
    if (env.LAPIS_RUN_CONFIG) throw new Error(`cannot read LAPIS_RUN_CONFIG ${file}: ${(e as Error).message}`);
  }
  for (const raw of (text ?? '').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`${file}: "${line}" is not KEY=VALUE`);
    values[line.slice(0, eq).trim()] = line
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1');
  }
  const get = (key: string): string => env[key] ?? values[key] ?? '';
  const allow = get('LAPIS_ALLOW_UNTRUSTED_IMAGES').toLowerCase();
  if (allow && !['true', 'false', '1', '0', 'yes', 'no'].includes(allow)) {
    throw new Error(`LAPIS_ALLOW_UNTRUSTED_IMAGES must be true or false, got "${allow}"`);
  }
  return {
    imageSyncAddress: get('LAPIS_IMAGE_SYNC_ADDRESS'),
    token: get('LAPIS_SERVICE_TOKEN'),
    allowUntrusted: ['true', '1', 'yes'].includes(allow),
  };
}

export type Resolution =
  | { ok: true /** What to run: the site registry's reference by digest. */; reference: string; digest: string; trusted: boolean }
  | { ok: false; exitCode: number; message: string };

/** Asks image-sync whether `reference` may run; never throws. */
export async function resolveImage(reference: string, config: TrustConfig): Promise<Resolution> {
  if (!config.imageSyncAddress) {
    if (config.allowUntrusted) return { ok: true, reference, digest: '', trusted: false };
    return {
      ok: false,
      exitCode: EXIT_UNAVAILABLE,
      message: `cannot check image ${reference}: no image-sync address (LAPIS_IMAGE_SYNC_ADDRESS in the environment or ${DEFAULT_CONFIG_FILE})`,
    };
  }
  const client = new ImageSyncServiceClient(config.imageSyncAddress, credentials.createInsecure());
  const metadata = new Metadata();
  if (config.token) metadata.set('authorization', `Bearer ${config.token}`);
  const resolveOnce = () =>
    new Promise<ResolveImageResponse>((resolve, reject) =>
      client.resolveImage({ reference, platform: undefined }, metadata, { deadline: Date.now() + 10_000 }, (error, response) =>
        error ? reject(error) : resolve(response),
      ),
    );
  try {
    // Three attempts while image-sync is unavailable (a restart), as the platform's clients do.
    const response = await withRetries(resolveOnce, {
      attempts: 3,
      retryIf: (error) => (error as ServiceError).code === status.UNAVAILABLE,
      delayMs: (failed) => 200 * failed,
    });
    const digest = response.digest || response.image?.digest || '';
    return { ok: true, reference: response.pullReference || response.image?.pullReference || reference, digest, trusted: true };
  } catch (error) {
    const e = error as ServiceError;
    if (e.code === status.NOT_FOUND) {
      if (config.allowUntrusted) return { ok: true, reference, digest: '', trusted: false };
      // image-sync answers NOT_FOUND (reason IMAGE_NOT_TRUSTED) for anything outside its catalogue.
      return {
        ok: false,
        exitCode: EXIT_UNTRUSTED,
        message: `image ${reference} is not trusted (IMAGE_NOT_TRUSTED): ${e.details || 'not in the site catalogue'}; the step did not run`,
      };
    }
    if (e.code === status.UNAUTHENTICATED || e.code === status.PERMISSION_DENIED) {
      return {
        ok: false,
        exitCode: EXIT_UNAVAILABLE,
        message: `image-sync refused lapis-run's token (${e.details}): check LAPIS_SERVICE_TOKEN`,
      };
    }
    return {
      ok: false,
      exitCode: EXIT_UNAVAILABLE,
      message: `cannot check image ${reference} with image-sync at ${config.imageSyncAddress}: ${e.details || e.message}`,
    };
  } finally {
    client.close();
  }
}
