import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root: this package sits one level below it. */
export function repositoryRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..');
}
