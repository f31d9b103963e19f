// occi-gateway: the OGF OCCI 1.2 HTTP interface over the scheduler, the runtime and image-sync.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Event } from '@lapis/proto/lapis/events/v1/events';
import { authenticatorFrom, decodeEvent, eventSubjects, occiListens, runMain, startService } from '@lapis/platform';
import { LapisClients } from './adapters/lapis';
import { loadOcciConfig } from './config';
import { Gateway } from './gateway';
import { OcciStore, occiStateCodec } from './adapters/store';
import { createOcciServer, listenUrl } from './http';

/** The compute an event is about, if it is about one. */
function changedCompute(event: Event): string | undefined {
  const payload = event.payload;
  switch (payload?.$case) {
    case 'instanceStateChanged':
      return payload.instanceStateChanged.instanceId;
    case 'claimPlaced':
      return payload.claimPlaced.claimId;
    case 'claimCancelled':
      return payload.claimCancelled.claimId;
    case 'preemptionNotice':
      return payload.preemptionNotice.instanceId;
    case 'volumeStateChanged':
      return payload.volumeStateChanged.instanceId || undefined;
    default:
      return undefined;
  }
}

runMain(async () => {
  const config = loadOcciConfig();
  return startService({
    name: 'occi-gateway',
    domain: 'occi.lapis.dev',
    config,
    serve: async ({ bus, log, shutdown }) => {
      const lapis = new LapisClients({
        scheduler: config.LAPIS_SCHEDULER_ADDRESS,
        runtime: config.LAPIS_RUNTIME_ADDRESS,
        images: config.LAPIS_IMAGE_SYNC_ADDRESS,
      });
      const store = new OcciStore(await bus.bucket('occi-mixins', occiStateCodec));
      await store.start();
      shutdown.add('occi state', async () => store.stop());
      const gateway = new Gateway(lapis, store, log);
      // Claims and instances announce their changes; the gateway drops what it keeps of them.
      // A plain subscription is enough: a restarted gateway starts with nothing kept.
      // One subscription per kind of event it hears: its NATS user may subscribe to no other.
      const changes = occiListens.map((kind) =>
        bus.nc.subscribe(`${eventSubjects[kind]}.*`, {
          callback: (error, message) => {
            if (error) return;
            try {
              const id = changedCompute(decodeEvent(message.data));
              if (id) gateway.invalidate(id);
            } catch {
              // not an event: nothing to drop
            }
          },
        }),
      );
      shutdown.add('events', async () => changes.forEach((c) => c.unsubscribe()));
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
    },
  });
});
