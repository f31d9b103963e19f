// Builds the gateway's object graph from its configuration: the Lapis clients, the store of what
// only OCCI knows, the use cases (application/gateway.ts) kept fresh by the services' events,
// and the OCCI HTTP server over them; registers their shutdown.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { authenticatorFrom, type ServiceContext, type ServiceRegistration } from '@lapis/platform';
import { followEntityChanges } from './adapters/entity-events';
import { LapisClients } from './adapters/lapis';
import { OcciStore, occiStateCodec } from './adapters/store';
import { Gateway } from './application/gateway';
import type { OcciConfig } from './config';
import { createOcciServer, listenUrl } from './http/server';

export async function wireOcciGateway(config: OcciConfig, { bus, log, shutdown }: ServiceContext): Promise<ServiceRegistration[]> {
  const lapis = new LapisClients({
    scheduler: config.LAPIS_SCHEDULER_ADDRESS,
    runtime: config.LAPIS_RUNTIME_ADDRESS,
    images: config.LAPIS_IMAGE_SYNC_ADDRESS,
  });
  const store = new OcciStore(await bus.bucket('occi-mixins', occiStateCodec));
  await store.start();
  shutdown.add('occi state', async () => store.stop());
  const gateway = new Gateway(lapis, store, log, config.LAPIS_OCCI_VIEW_MAX_AGE_MS);
  const unfollow = followEntityChanges(bus, ({ project, kind, id }) => gateway.changed(project, kind, id));
  shutdown.add('events', async () => unfollow());
  const http = createOcciServer(gateway, authenticatorFrom(config), log, config.LAPIS_OCCI_PUBLIC_URL);
  http.listen(config.LAPIS_HTTP_PORT, config.LAPIS_GRPC_HOST);
  await once(http, 'listening');
  const address = http.address() as AddressInfo;
  log.info({ port: address.port, publicUrl: config.LAPIS_OCCI_PUBLIC_URL || listenUrl(address) }, 'OCCI HTTP interface listening');
  shutdown.add('http', async () => {
    http.close();
    http.closeIdleConnections();
    await once(http, 'close');
    lapis.close();
  });
  // The gateway serves no gRPC API of its own; its gRPC port answers health checks.
  return [];
}
