// Validates Lapis' JSON renderings against the GFD.226 schema (test/fixtures/occi-json-schema.json).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';

const schema = JSON.parse(readFileSync(join(__dirname, '../../test/fixtures/occi-json-schema.json'), 'utf8'));
const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(schema, 'occi');

export type SchemaPart = 'resource' | 'link' | 'collection' | 'query_interface' | 'action_invocation';

/** Throws with every schema violation when `value` is not a valid `part`. */
export function assertValidOcciJson(value: unknown, part: SchemaPart): void {
  const validate = ajv.getSchema(`occi#/definitions/${part}`)!;
  if (!validate(value))
    throw new Error(`not valid GFD.226 ${part}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value).slice(0, 2000)}`);
}
