// Validates an OpenAPI document read from stdin against the official OpenAPI schemas.
// (The validator is ESM-only, so jest runs it as a child process.) Prints {valid, errors}.
import { Validator } from '@seriousme/openapi-schema-validator';

let text = '';
for await (const chunk of process.stdin) text += chunk;
const validator = new Validator();
const result = await validator.validate(JSON.parse(text));
process.stdout.write(JSON.stringify({ valid: result.valid, version: validator.version, errors: result.errors }));
