// A client that keeps calling every service of an installed mesh, one read a service every
// 100 ms, and counts what failed: the load of the rolling-update test. The runtime in the
// kubernetes backend is recreated, not rolled (one agent owns the node name at a time), so its
// calls wait for it (gRPC wait-for-ready) within their deadline; the other services are rolled
// and their calls get no retry at all.
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { createClient } from '@lapis/platform';
import { ImageSyncServiceClient } from '@lapis/proto/lapis/images/v1/image_sync_service';
import { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { ToscaServiceClient } from '@lapis/proto/lapis/tosca/v1/tosca_service';
import { MESH_TOKENS } from '../src/mesh';

export interface LoadReport {
  calls: Record<string, number>;
  slowestMs: Record<string, number>;
  /** When each service's slowest call started: to set it beside the pods' events. */
  slowestAt: Record<string, string>;
  failures: string[];
}

type Unary = (request: object, metadata: Metadata, callback: (error: ServiceError | null) => void) => unknown;

export function keepCalling(target: { addresses: Record<string, string>; occiUrl: string }): { stop(): Promise<LoadReport> } {
  const token = MESH_TOKENS.alice.token;
  const strict = { token, maxAttempts: 1, deadlineMs: 10_000 };
  const address = (service: string) => {
    const found = target.addresses[service];
    if (!found) throw new Error(`no address for ${service}`);
    return found;
  };
  const scheduler = createClient(SchedulerServiceClient, address('scheduler'), strict);
  const images = createClient(ImageSyncServiceClient, address('image-sync'), strict);
  const tosca = createClient(ToscaServiceClient, address('tosca-orchestrator'), strict);
  const runtime = createClient(RuntimeServiceClient, address('container-runtime'), { token, waitForReady: true, deadlineMs: 120_000 });
  const grpc = (method: Unary, request: object) => () =>
    new Promise<void>((resolve, reject) => method(request, new Metadata(), (error) => (error ? reject(error) : resolve())));
  const reads: Record<string, () => Promise<void>> = {
    scheduler: grpc(scheduler.listFlavors.bind(scheduler) as Unary, { pageSize: 10, pageToken: '' }),
    'image-sync': grpc(images.listImages.bind(images) as Unary, { pageSize: 10, pageToken: '', repositoryPrefix: '', policy: '' }),
    'tosca-orchestrator': grpc(tosca.listDeployments.bind(tosca) as Unary, { pageSize: 10, pageToken: '', project: '', states: [] }),
    'container-runtime': grpc(runtime.listNodes.bind(runtime) as Unary, { pageSize: 10, pageToken: '', partition: '' }),
    'occi-gateway': async () => {
      const res = await fetch(`${target.occiUrl}/-/`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(10_000),
      });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
    },
  };
  const report: LoadReport = { calls: {}, slowestMs: {}, slowestAt: {}, failures: [] };
  let running = true;
  const loops = Object.entries(reads).map(async ([service, read]) => {
    report.calls[service] = 0;
    report.slowestMs[service] = 0;
    while (running) {
      const started = Date.now();
      try {
        await read();
      } catch (error) {
        report.failures.push(`${new Date().toISOString()} ${service}: ${(error as Error).message}`);
      }
      const took = Date.now() - started;
      report.calls[service]! += 1;
      if (took > report.slowestMs[service]!) {
        report.slowestMs[service] = took;
        report.slowestAt[service] = new Date(started).toISOString();
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 100 - took)));
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const client of [scheduler, images, tosca, runtime]) client.close();
      return report;
    },
  };
}
