// Image trust: image-sync's ResolveImage decides what may run and gives the digest to run.
import { status, type ServiceError } from '@grpc/grpc-js';
import { call, createClient, errorDetails, failedPrecondition, unavailable } from '@lapis/platform';
import type { ResolveImageResponse } from '@lapis/proto/lapis/images/v1/images';
import { ImageSyncServiceClient } from '@lapis/proto/lapis/images/v1/image_sync_service';

export interface ResolvedImage {
  /** The reference to find or pull the image by. */
  reference: string;
  /** The trusted digest; empty for an untrusted image run because the node allows it. */
  digest: string;
  trusted: boolean;
}

export interface ImageResolver {
  resolve(reference: string): Promise<ResolvedImage>;
  close(): void;
}

export class ImageSyncResolver implements ImageResolver {
  private readonly client?: ImageSyncServiceClient;

  constructor(
    address: string,
    token: string,
    private readonly allowUntrusted: boolean,
  ) {
    if (address) this.client = createClient(ImageSyncServiceClient, address, { token, deadlineMs: 5_000, maxAttempts: 3 });
  }

  async resolve(reference: string): Promise<ResolvedImage> {
    if (!this.client) return { reference, digest: '', trusted: false };
    let response: ResolveImageResponse;
    try {
      response = await call(this.client.resolveImage.bind(this.client), { reference, platform: undefined });
    } catch (error) {
      const e = error as ServiceError;
      if (e.code === status.NOT_FOUND) {
        if (this.allowUntrusted) return { reference, digest: '', trusted: false };
        const reason = errorDetails(e).errorInfo?.reason ?? 'IMAGE_NOT_TRUSTED';
        throw failedPrecondition(
          `image ${reference} is not in the trusted catalogue (image-sync: ${e.details})`,
          reason === 'NOT_FOUND' ? 'IMAGE_NOT_TRUSTED' : reason,
        );
      }
      throw unavailable(`cannot check image ${reference} with image-sync: ${e.details ?? e.message}`, 'IMAGE_SYNC_UNAVAILABLE');
    }
    const digest = response.digest || response.image?.digest || '';
    const pull = response.pullReference || response.image?.pullReference || reference;
    return { reference: pull, digest, trusted: true };
  }

  close(): void {
    this.client?.close();
  }
}
