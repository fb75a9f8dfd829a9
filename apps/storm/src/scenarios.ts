import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/** Where the built-in scenario files live. */
export const SCENARIO_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'scenarios');

/** The scenarios `pnpm storm` compares when given no scenario. */
export const DEFAULT_COMPARISON = [
  'storm',
  'storm-legacy-watcher',
  'storm-hardened-watcher',
  'exempt-username',
  'exempt-group',
] as const;

const envMap = z.record(
  z.string().regex(/^[A-Z][A-Z0-9_]*$/, 'must be an UPPER_SNAKE variable name'),
  z.string(),
);

const scenarioSchema = z
  .object({
    description: z.string().min(1),
    lms: envMap.default({}),
    watcher: envMap.default({}),
  })
  .strict();

/** A scenario: environment for the LMS and for the watcher fleet, on top of the run's defaults. */
export interface Scenario {
  name: string;
  description: string;
  lms: Record<string, string>;
  watcher: Record<string, string>;
}

/** Values substituted for `{name}` in scenario files. */
export interface ScenarioVariables {
  serviceUsername: string;
  totalConnections: number;
}

/** Thrown for a scenario that does not exist or does not parse; the message says which. */
export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
}

/** Names of the built-in scenarios. */
export async function listScenarios(): Promise<string[]> {
  const files = await readdir(SCENARIO_DIR);
  return files
    .filter((file) => file.endsWith('.json'))
    .map((file) => basename(file, '.json'))
    .sort();
}

function substitute(env: Record<string, string>, variables: ScenarioVariables) {
  return Object.fromEntries(
    Object.entries(env).map(([key, value]) => [
      key,
      value.replace(/\{(serviceUsername|totalConnections)\}/g, (_, name: keyof ScenarioVariables) =>
        String(variables[name]),
      ),
    ]),
  );
}

/**
 * Loads a scenario by built-in name or by path to a JSON file of the same shape.
 *
 * @example
 * const scenario = await loadScenario('exempt-username', { serviceUsername: 'xqueue_svc', totalConnections: 8 });
 */
export async function loadScenario(
  nameOrPath: string,
  variables: ScenarioVariables,
): Promise<Scenario> {
  const isPath = nameOrPath.endsWith('.json') || nameOrPath.includes('/');
  const file = isPath ? nameOrPath : join(SCENARIO_DIR, `${nameOrPath}.json`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    const known = (await listScenarios()).join(', ');
    throw new ScenarioError(
      `unknown scenario "${nameOrPath}" (built-in: ${known}; or give a path to a .json file)`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ScenarioError(`${file}: not valid JSON (${(error as Error).message})`);
  }
  const parsed = scenarioSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join('.') ?? '';
    const message =
      issue?.code === 'invalid_key' ? 'must be an UPPER_SNAKE variable name' : issue?.message;
    throw new ScenarioError(`${file}: ${where} ${message ?? 'invalid'}`);
  }
  return {
    name: basename(file, '.json'),
    description: parsed.data.description,
    lms: substitute(parsed.data.lms, variables),
    watcher: substitute(parsed.data.watcher, variables),
  };
}
