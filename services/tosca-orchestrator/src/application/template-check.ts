// A caller's template read and checked, with the inputs it was given (values, and text to be
// converted to each input's declared type): on the template threads when the service has them,
// its errors an INVALID_ARGUMENT naming where (a position in the template, or the input whose
// value is wrong).
import { cancelled, invalidArgument, resourceExhausted, unavailable, type CallContext, type FieldViolation } from '@lapis/platform';
import { WorkStopped, type TemplateAnswer, type TemplateThreads } from '../adapters/template-threads';
import type { DeploymentRecord } from '../domain/deployment';
import type { Diagnostic } from '../domain/diagnostics';
import type { ImportSource } from '../domain/loader';
import type { ProcessResult } from '../domain/model';
import type { Dict } from '../domain/registry';
import { translation, type Target } from '../domain/translate';
import { processTemplate } from '../domain/validate';
import { LIMIT_CODES, type ParallelReader } from '../domain/yaml';

type StoredTemplate = DeploymentRecord['template'];

/**
 * How templates are read: imported files (URL imports from the mirror), a second thread for big
 * templates, the most characters a file may have, and the threads that check a caller's template
 * off the event loop (without them, here).
 */
export interface Reading {
  imports?: ImportSource;
  parallel?: ParallelReader;
  maxFileChars?: number;
  threads?: TemplateThreads;
}

/** The inputs a template is read with: values, and text converted to the declared types (over the values). */
export interface GivenInputs {
  inputs?: Dict;
  textInputs?: Record<string, string>;
}

const source = (t: StoredTemplate) => ({
  ...(t.yaml !== undefined ? { text: t.yaml } : { csar: new Uint8Array(Buffer.from(t.csar ?? '', 'base64')) }),
  fileName: t.fileName,
  files: t.files,
});

/** A template read and validated here, on the calling thread. */
export function processStored(t: StoredTemplate, given: GivenInputs, reading: Reading): ProcessResult {
  const { imports, parallel, maxFileChars } = reading;
  return processTemplate({ ...source(t), ...given, imports, parallel, maxFileChars });
}

/** Where a problem is: the input whose given value is wrong, else the template's file, line and column. */
function violations(diagnostics: Diagnostic[], given: GivenInputs): FieldViolation[] {
  return diagnostics.slice(0, 50).map((d) => ({
    field:
      d.input === undefined
        ? `template:${d.file}:${d.line}:${d.column}`
        : given.textInputs && d.input in given.textInputs
          ? `text_inputs.${d.input}`
          : `inputs.${d.input}`,
    description: `${d.message} [${d.code}] (${d.path})`,
  }));
}

/** Errors refuse the call: INVALID_INPUT when only given values are wrong, INVALID_TEMPLATE otherwise. */
export function rejectInvalid(diagnostics: Diagnostic[], given: GivenInputs): void {
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (!errors.length) return;
  const reason = errors.every((d) => d.input !== undefined) ? 'INVALID_INPUT' : 'INVALID_TEMPLATE';
  throw invalidArgument(violations(errors, given), reason);
}

/**
 * A caller's template checked (and translated, with a target) on the template threads, stopped
 * when the caller goes. A template refused for its bounds (too big, too deep, aliases that
 * expand too far) is an INVALID_ARGUMENT naming where, whichever call sent it.
 */
export async function checkTemplate(
  t: StoredTemplate,
  given: GivenInputs,
  reading: Reading,
  ctx: CallContext,
  target?: Target,
): Promise<TemplateAnswer> {
  let answer: TemplateAnswer;
  if (reading.threads) {
    try {
      answer = await reading.threads.run({ ...source(t), ...given, target }, ctx.signal);
    } catch (error) {
      if (!(error instanceof WorkStopped)) throw error;
      if (error.reason === 'caller gone') throw cancelled(`stopped checking the template: ${error.message}`);
      if (error.reason === 'closed') throw unavailable(`stopped checking the template: ${error.message}`, 'SHUTTING_DOWN');
      throw resourceExhausted(`the template needs more than this service gives one template: ${error.message}`, 'TEMPLATE_LIMIT');
    }
  } else {
    const result = processStored(t, given, reading);
    const translated = target && result.valid && result.topology ? translation(result.topology, target) : undefined;
    answer = {
      valid: result.valid,
      diagnostics: [...result.diagnostics, ...(translated?.warnings ?? [])],
      order: result.topology?.order ?? [],
      output: translated?.output,
    };
  }
  const limits = answer.diagnostics.filter((d) => d.severity === 'error' && LIMIT_CODES.has(d.code));
  if (limits.length) throw invalidArgument(violations(limits, given), 'TEMPLATE_LIMIT');
  return answer;
}
