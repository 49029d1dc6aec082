/** GET and PUT ROUTES.policy: the admin API over the policy store (docs/wire.md). */
import { Hono } from 'hono';
import { ROUTES, WIRE_VERSION } from '../../protocol/wire.js';
import { parsePolicy, PolicyError, redactPolicy, type Policy } from '../policy/index.js';
import { adminAuth } from '../auth.js';
import { limitBody, readJson, RequestRejected } from '../http.js';
import type { Service } from '../service.js';

/** What redactPolicy puts in place of the pseudonym key. */
const REDACTED = '[redacted]';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A replacement policy as PUT (and the console) receive it: parsed, with a "[redacted]" key (as GET shows it)
 * replaced by the current key. Throws PolicyError.
 */
export async function parseReplacement(service: Service, json: unknown): Promise<Policy> {
  if (isObject(json) && json.key === REDACTED) {
    const currentKey = (await service.current()).policy.key;
    if (currentKey === undefined) delete json.key;
    else json.key = currentKey;
  }
  return parsePolicy(json);
}

export function policyRoutes(service: Service): Hono {
  const admin = adminAuth(service);
  const routes = new Hono();
  routes.get(ROUTES.policy, admin, async (c) => {
    const snapshot = await service.current();
    c.header('ETag', `"${snapshot.version}"`);
    // The pseudonym key is a secret: shown as "[redacted]" (PUT keeps the current key for that value).
    return c.json({ v: WIRE_VERSION, version: snapshot.version, policy: redactPolicy(snapshot.policy) });
  });
  routes.put(ROUTES.policy, admin, limitBody, async (c) => {
    let json = await readJson(c);
    if (isObject(json) && json.v === WIRE_VERSION && isObject(json.policy)) {
      // What GET answered, edited and sent back: the policy inside; its version says which policy it was edited from.
      const current = await service.current();
      if (typeof json.version === 'string' && json.version !== current.version)
        throw new RequestRejected(
          409,
          'policy_changed',
          `the policy was replaced since version ${json.version} was fetched (now ${current.version}): GET it again and redo the edit`,
        );
      json = json.policy;
    }
    let policy;
    try {
      policy = await parseReplacement(service, json);
    } catch (error) {
      if (error instanceof PolicyError) throw new RequestRejected(400, 'invalid_policy', error.message);
      throw error;
    }
    const { version } = await service.store.replace(policy, json);
    service.log({ msg: 'policy_replaced', version });
    return c.json({ v: WIRE_VERSION, version });
  });
  return routes;
}
