import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadStaticTokens } from '../../src/auth';
import { readYamlFile } from '../../src/yaml-file';

describe('readYamlFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lapis-yaml-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('gives the document of a YAML file', () => {
    assert.deepEqual(readYamlFile(file('ok.yaml', 'flavors:\n  - name: m1.tiny\n    cpus: 1\n'), 'flavors file'), {
      flavors: [{ name: 'm1.tiny', cpus: 1 }],
    });
  });

  it('names what the file is and where, for a file that is missing or not YAML', () => {
    const missing = join(dir, 'missing.yaml');
    assert.throws(
      () => readYamlFile(missing, 'flavors file'),
      (error: Error) => error.message.startsWith(`flavors file ${missing}: ENOENT`),
    );
    const broken = file('broken.yaml', 'tokens: [unclosed\n');
    assert.throws(
      () => readYamlFile(broken, 'static token file'),
      (error: Error) => error.message.startsWith(`static token file ${broken}: `) && error.cause instanceof Error,
    );
    // The loaders built on it say the same.
    assert.throws(() => loadStaticTokens(broken), new RegExp(`^Error: static token file ${broken}: `));
  });
});
