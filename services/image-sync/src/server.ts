// gRPC handlers of lapis.images.v1.ImageSyncService and lapis.common.v1.OperationsService:
// validate requests, call the application (application/image-sync.ts), map answers. The
// catalogue is readable by every authenticated caller (the runtime resolves with its service
// token); syncs, statuses, policies and operations are for admins.
import { invalidArgument, paginate, service, watchOperationByPolling, type ServiceRegistration } from '@lapis/platform';
import { OperationsServiceService } from '@lapis/proto/lapis/common/v1/operations_service';
import type { SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import { ImageSyncServiceService } from '@lapis/proto/lapis/images/v1/image_sync_service';
import type { ImageSync } from './application/image-sync';

export function registrations(app: ImageSync): ServiceRegistration[] {
  const requirePolicy = (policy: SyncPolicy | undefined): SyncPolicy => {
    if (!policy) throw invalidArgument([{ field: 'policy', description: 'is required' }]);
    return policy;
  };

  return [
    service(ImageSyncServiceService, {
      async listImages(request) {
        const images = await app.listImages(request.repositoryPrefix, request.policy);
        const page = paginate(images, (i) => `${i.repository}:${i.tag}`, request);
        return { images: page.items, nextPageToken: page.nextPageToken };
      },
      async getImage(request) {
        if (!request.repository) throw invalidArgument([{ field: 'repository', description: 'is required' }]);
        if (!request.tag) throw invalidArgument([{ field: 'tag', description: 'is required' }]);
        return { image: await app.getImage(request.repository, request.tag) };
      },
      async resolveImage(request) {
        return app.resolveImage(request.reference, request.platform);
      },
      async syncNow(request, ctx) {
        ctx.requireAdmin();
        return { operation: await app.startOperation(request.policy, request.repositories, request.requestId) };
      },
      async getSyncStatus(request, ctx) {
        ctx.requireAdmin();
        if (request.policy) await app.getPolicy(request.policy);
        return { repositories: await app.statuses(request.policy) };
      },
      async createPolicy(request, ctx) {
        ctx.requireAdmin();
        return { policy: await app.createPolicy(requirePolicy(request.policy)) };
      },
      async getPolicy(request, ctx) {
        ctx.requireAdmin();
        return { policy: await app.getPolicy(request.name) };
      },
      async listPolicies(request, ctx) {
        ctx.requireAdmin();
        const page = paginate(await app.listPolicies(), (p) => p.name, request);
        return { policies: page.items, nextPageToken: page.nextPageToken };
      },
      async updatePolicy(request, ctx) {
        ctx.requireAdmin();
        return { policy: await app.updatePolicy(requirePolicy(request.policy)) };
      },
      async deletePolicy(request, ctx) {
        ctx.requireAdmin();
        await app.deletePolicy(request.name, request.pruneImages);
        return {};
      },
    }),
    service(OperationsServiceService, {
      async getOperation(request, ctx) {
        ctx.requireAdmin();
        return { operation: await app.getOperation(request.name) };
      },
      async watchOperation(request, ctx, send) {
        ctx.requireAdmin();
        await watchOperationByPolling(() => app.getOperation(request.name), send, ctx.signal, 200);
      },
      async cancelOperation(request, ctx) {
        ctx.requireAdmin();
        return { operation: await app.cancelOperation(request.name) };
      },
      async listOperations(request, ctx) {
        ctx.requireAdmin();
        const operations = (await app.listOperations()).filter((o) => !request.onlyRunning || !o.done);
        const page = paginate(operations, (o) => o.name, request);
        return { operations: page.items, nextPageToken: page.nextPageToken };
      },
    }),
  ];
}
