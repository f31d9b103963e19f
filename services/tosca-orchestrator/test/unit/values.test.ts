// Scalar units: the hand-written reader of "<number> <unit>" must read exactly what the
// pattern it replaces (for speed) reads. Scalar verdicts remembered per definition must never
// hide an error.
import { strict as assert } from 'node:assert';
import { parseScalar } from '../../src/domain/values';
import { processTemplate } from '../../src/domain/validate';

const pattern = /^\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*([A-Za-z]+)\s*$/;
const sizes: Record<string, number> = {
  b: 1,
  kb: 1e3,
  kib: 1024,
  mb: 1e6,
  mib: 1024 ** 2,
  gb: 1e9,
  gib: 1024 ** 3,
  tb: 1e12,
  tib: 1024 ** 4,
};
const byPattern = (value: string): number | undefined => {
  const m = pattern.exec(value);
  const factor = m ? sizes[m[2]!.toLowerCase()] : undefined;
  return factor === undefined ? undefined : Number(m![1]) * factor;
};

describe('scalar-unit values', () => {
  it('reads sizes as the pattern does', () => {
    const cases = [
      '2 GB',
      '10GB',
      ' 1.5 MiB ',
      '-3 kb',
      '1e3 B',
      '1e3B',
      '1e B',
      '1eGB',
      '1.GB',
      '.5 GB',
      'GB',
      '2',
      '2 G B',
      '2\u00a0GB',
      '\u00a02 GB',
      '1E-2 gb',
      '2 GBs',
      '12 gib\n',
      '5 e3 GB',
      '--2 GB',
      '2.5.1 GB',
    ];
    for (const c of cases) assert.equal(parseScalar(c, 'scalar-unit.size'), byPattern(c), JSON.stringify(c));
    assert.equal(parseScalar('4 GB', 'scalar-unit.size'), 4e9);
    assert.equal(parseScalar('30 s', 'scalar-unit.time'), 30);
  });

  it('agrees with the pattern on generated text', () => {
    // A fixed sequence (LCG), so a failure is reproducible.
    let seed = 42;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alphabet = ' 0123456789.eE+-GBkbiMm\t\u00a0';
    for (let i = 0; i < 50_000; i++) {
      let s = '';
      for (let j = 1 + next(8); j > 0; j--) s += alphabet[next(alphabet.length)];
      assert.equal(parseScalar(s, 'scalar-unit.size'), byPattern(s), JSON.stringify(s));
    }
  });
});

describe('remembered scalar verdicts', () => {
  const template = (port: number, types = '') => `tosca_definitions_version: tosca_simple_yaml_1_3
${types}topology_template:
  node_templates:
    web:
      type: tosca.nodes.WebServer
      capabilities:
        data_endpoint: { properties: { port: ${port} } }
    host:
      type: tosca.nodes.Compute
`;
  const errors = (text: string) =>
    processTemplate({ text, fileName: 't.yaml' })
      .diagnostics.filter((d) => d.severity === 'error')
      .map((d) => d.code);

  it('reports an invalid value every time, however often a valid one was seen', () => {
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(errors(template(8080)), []);
      assert.deepEqual(errors(template(70000)), ['CONSTRAINT_VIOLATION']);
    }
  });

  it("judges by the template's own types: a redefined data type is not answered from the built-in one", () => {
    assert.deepEqual(errors(template(8080)), []);
    const narrower =
      'data_types:\n  tosca.datatypes.network.PortDef:\n    derived_from: integer\n    constraints:\n      - in_range: [ 1, 1024 ]\n';
    assert.deepEqual(errors(template(8080, narrower)), ['CONSTRAINT_VIOLATION']);
    assert.deepEqual(errors(template(8080)), []);
  });
});
