// A thread of template-threads.ts: parses, validates and (when asked) translates each template it
// is sent, with the service's import mirror and its own helper thread for big templates.
import { parentPort, workerData } from 'node:worker_threads';
import { processTemplate } from '../domain/validate';
import { translation } from '../domain/translate';
import { ImportFiles } from './import-files';
import type { TemplateAnswer, TemplateJob, TemplateThreadOptions } from './template-threads';
import { yamlThreadIfUseful } from './yaml-thread';

const options = workerData as TemplateThreadOptions;
const imports = new ImportFiles({ mirror: options.mirror });
const parallel = yamlThreadIfUseful(undefined, options.twoThreadsFromChars);

parentPort!.on('message', (job: TemplateJob) => {
  try {
    const result = processTemplate({ ...job, imports, parallel, maxFileChars: options.maxFileChars });
    const translated = job.target && result.valid && result.topology ? translation(result.topology, job.target) : undefined;
    const answer: TemplateAnswer = {
      valid: result.valid,
      // What the translation left out, per node, among the warnings.
      diagnostics: [...result.diagnostics, ...(translated?.warnings ?? [])],
      order: result.topology?.order ?? [],
      output: translated?.output,
    };
    parentPort!.postMessage({ answer });
  } catch (error) {
    parentPort!.postMessage({ error: (error as Error).stack ?? String(error) });
  }
});
parentPort!.postMessage({ ready: true });
