// The conformance folder: one directory per feature with template.yaml, optional inputs.yaml
// and expected.yaml. A new case is a new folder. expected.yaml:
//   valid: true|false
//   errors: [ { code, line?, column?, path?, message? } ]   every error, no more, no fewer
//   warnings: [ { code, ... } ]                               must be among the warnings
//   order: [ node, ... ]                                      deployment order
//   indigo: both        also validate with Lapis' built-in INDIGO types (no mirror): same verdict
//   translate: { hot|radl|k8s: [ substring, ... ] }
//   files: [ other.yaml ]  relative imports, read from the case folder
import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ImportFiles } from '../../src/adapters/import-files';
import type { Diagnostic } from '../../src/domain/diagnostics';
import { translate, type Target } from '../../src/domain/translate';
import { processTemplate } from '../../src/domain/validate';
import { conformanceDir, indigoMirror } from '../helpers';

interface Expected {
  valid: boolean;
  errors?: Partial<Diagnostic>[];
  warnings?: Partial<Diagnostic>[];
  order?: string[];
  indigo?: 'both';
  translate?: Partial<Record<Target, string[]>>;
}

const matches = (d: Diagnostic, e: Partial<Diagnostic>) =>
  (e.code === undefined || d.code === e.code) &&
  (e.line === undefined || d.line === e.line) &&
  (e.column === undefined || d.column === e.column) &&
  (e.path === undefined || d.path === e.path) &&
  (e.message === undefined || d.message.includes(e.message)) &&
  (e.file === undefined || d.file === e.file);

const show = (ds: Diagnostic[]) => ds.map((d) => `${d.file}:${d.line}:${d.column} ${d.code} ${d.message} (${d.path})`).join('\n  ');

describe('conformance cases', () => {
  const cases = readdirSync(conformanceDir)
    .filter((c) => existsSync(join(conformanceDir, c, 'expected.yaml')))
    .sort();
  it('has cases', () => assert.ok(cases.length >= 20, `only ${cases.length} cases`));
  for (const name of cases) {
    it(name, () => {
      const dir = join(conformanceDir, name);
      const expected = parse(readFileSync(join(dir, 'expected.yaml'), 'utf8')) as Expected;
      const inputsFile = join(dir, 'inputs.yaml');
      const inputs = existsSync(inputsFile)
        ? ((parse(readFileSync(inputsFile, 'utf8')) as Record<string, unknown> | null) ?? {})
        : undefined;
      const text = readFileSync(join(dir, 'template.yaml'), 'utf8');
      const runs = [indigoMirror(), ...(expected.indigo === 'both' ? [undefined] : [])];
      for (const mirror of runs) {
        const label = mirror ? 'with the INDIGO file' : "with Lapis' INDIGO types";
        const result = processTemplate({ text, fileName: 'template.yaml', imports: new ImportFiles({ baseDir: dir, mirror }), inputs });
        const errors = result.diagnostics.filter((d) => d.severity === 'error');
        const warnings = result.diagnostics.filter((d) => d.severity === 'warning');
        if (result.valid !== expected.valid) assert.fail(`${label}: valid should be ${expected.valid}; errors:\n  ${show(errors)}`);
        const wanted = expected.errors ?? [];
        const unmatched = [...errors];
        for (const e of wanted) {
          const i = unmatched.findIndex((d) => matches(d, e));
          if (i < 0) assert.fail(`${label}: expected error ${JSON.stringify(e)} not reported; errors:\n  ${show(errors)}`);
          unmatched.splice(i, 1);
        }
        assert.deepEqual(
          unmatched.map((d) => `${d.code} ${d.message}`),
          [],
          `${label}: unexpected errors:\n  ${show(unmatched)}`,
        );
        for (const w of expected.warnings ?? []) {
          if (!warnings.some((d) => matches(d, w)))
            assert.fail(`${label}: expected warning ${JSON.stringify(w)}; warnings:\n  ${show(warnings)}`);
        }
        if (expected.order) assert.deepEqual(result.topology?.order, expected.order, `${label}: deployment order`);
        for (const [target, needles] of Object.entries(expected.translate ?? {})) {
          const output = translate(result.topology!, target as Target);
          for (const needle of needles ?? [])
            assert.ok(output.includes(needle), `${label}: ${target} output lacks ${JSON.stringify(needle)}:\n${output}`);
        }
      }
    });
  }
});
