/**
 * The app recipes of docs/apps.md, as files under examples/apps/<app>/: the policy and the app's
 * own configuration. The docs show each file verbatim (test/apps/recipes.test.ts checks it).
 *
 * @example
 * const { policy, files } = readRecipe('znc');
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RECIPES_DIR = fileURLToPath(new URL('../../examples/apps/', import.meta.url));
export const APPS_DOC = fileURLToPath(new URL('../../docs/apps.md', import.meta.url));

export interface Recipe {
  readonly app: string;
  /** policy.json, parsed as JSON (not yet as a policy). */
  readonly policy: Record<string, unknown>;
  /** Every other file of the recipe by name, as text. */
  readonly files: Readonly<Record<string, string>>;
}

export function recipeNames(): string[] {
  return readdirSync(RECIPES_DIR).sort();
}

export function readRecipe(app: string): Recipe {
  const dir = join(RECIPES_DIR, app);
  const files: Record<string, string> = {};
  for (const name of readdirSync(dir)) if (name !== 'policy.json') files[name] = readFileSync(join(dir, name), 'utf8');
  return { app, policy: JSON.parse(readFileSync(join(dir, 'policy.json'), 'utf8')), files };
}
