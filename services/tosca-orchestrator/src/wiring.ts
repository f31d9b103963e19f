// Builds the orchestrator's object graph from its configuration: the key-value buckets, the
// scheduler and runtime clients, the deployment engine, the threads that read templates, and
// the gRPC services over them; registers their shutdown.
import { jsonCodec, type Lease, type ServiceContext } from '@lapis/platform';
import { ImportFiles } from './adapters/import-files';
import { LapisPorts } from './adapters/lapis';
import { OperationStore, type OperationRecord } from './adapters/operations';
import { TemplateThreads } from './adapters/template-threads';
import { yamlThreadIfUseful } from './adapters/yaml-thread';
import { DeploymentEngine } from './application/engine';
import { observeDeployments, timeValidation } from './adapters/metrics';
import type { ToscaConfig } from './config';
import type { DeploymentRecord } from './domain/deployment';
import { toscaServices } from './server';

export async function wireToscaOrchestrator(
  config: ToscaConfig,
  { bus, log, shutdown }: ServiceContext,
): Promise<ReturnType<typeof toscaServices>> {
  const deployments = await bus.bucket('tosca-deployments', jsonCodec<DeploymentRecord>());
  const index = await bus.bucket('tosca-instances', jsonCodec<{ deployment: string; key: string }>());
  const operations = new OperationStore(await bus.bucket('tosca-operations', jsonCodec<OperationRecord>()));
  const leases = await bus.bucket('tosca-leases', jsonCodec<Lease>());
  const ports = new LapisPorts({
    scheduler: config.LAPIS_SCHEDULER_ADDRESS,
    runtime: config.LAPIS_RUNTIME_ADDRESS,
    serviceToken: config.LAPIS_SERVICE_TOKEN,
  });
  const engine = new DeploymentEngine({
    deployments,
    index,
    operations,
    ports,
    bus,
    log,
    deletedRetentionMs: config.LAPIS_TOSCA_DELETED_RETENTION_S * 1000,
    leases,
    leaseMs: config.LAPIS_TOSCA_LEASE_MS,
    peerWaitMs: config.LAPIS_TOSCA_PEER_WAIT_MS,
  });
  await engine.start();
  const parallel = yamlThreadIfUseful(
    (error) => log.warn({ err: error }, 'the YAML helper thread failed; it is started again'),
    config.LAPIS_TOSCA_TWO_THREADS_FROM_KIB * 1024,
  );
  const mirror = config.LAPIS_TOSCA_IMPORT_MIRROR || undefined;
  const maxFileChars = config.LAPIS_TOSCA_MAX_TEMPLATE_KIB * 1024;
  observeDeployments(deployments);
  const threads = timeValidation(
    new TemplateThreads({
      threads: config.LAPIS_TOSCA_TEMPLATE_THREADS,
      budgetMs: config.LAPIS_TOSCA_TEMPLATE_BUDGET_MS,
      mirror,
      twoThreadsFromChars: config.LAPIS_TOSCA_TWO_THREADS_FROM_KIB * 1024,
      maxFileChars,
      onStopped: (reason, job) => log.info({ reason, file: job.fileName }, 'template work stopped'),
      onFailure: (error) => log.warn({ err: error }, 'a template thread failed; it is started again'),
    }),
  );
  shutdown.add('deployments', async () => {
    threads.close();
    await engine.stop();
    ports.close();
    parallel?.close();
  });
  return toscaServices({
    engine,
    deployments,
    operations,
    reading: { imports: new ImportFiles({ mirror }), parallel, maxFileChars, threads },
  });
}
