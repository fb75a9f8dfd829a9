import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_REFERENCE_PATH, renderConfigReference } from './config-reference.ts';
import { repositoryRoot } from './repository.ts';

/** `pnpm docs:config`: writes docs/configuration.md from the schemas. */
const root = repositoryRoot();
const markdown = renderConfigReference(readFileSync(join(root, 'docker-compose.yml'), 'utf8'));
writeFileSync(join(root, CONFIG_REFERENCE_PATH), markdown);
process.stdout.write(`wrote ${CONFIG_REFERENCE_PATH}\n`);
