/** POST ROUTES.gatewayPolicy: a gateway's copy of the policy, to answer from through an outage (docs/wire.md). */
import { Hono } from 'hono';
import { GatewayPolicyRequestSchema, ROUTES, WIRE_VERSION } from '../../protocol/wire.js';
import { compileNames, matchesNames } from '../policy/patterns.js';
import type { Policy, PolicyRule } from '../policy/index.js';
import { gatewayAuth } from '../auth.js';
import { limitBody, parseWith, readJson } from '../http.js';
import type { Service } from '../service.js';

/** False only when the rule's gateway condition rules this gateway out: no query of its can reach the rule. */
function canMatch(rule: PolicyRule, gateway: string): boolean {
  const names = rule.match?.gateway;
  if (names === undefined) return true;
  return matchesNames(compileNames(typeof names === 'string' ? [names] : names), gateway);
}

/**
 * What one gateway may hold of a policy: the rules that can match its name, in order, and the default; never the
 * pseudonym key, since a gateway's signing key is not bound to its name (docs/wire.md "Last-good policy").
 *
 * @example
 * policyForGateway(policy, 'edge-1').rules.every((rule) => rule.match?.gateway === undefined || ...)
 */
export function policyForGateway(policy: Policy, gateway: string): Omit<Policy, 'key'> {
  const { key: _key, ...rest } = policy;
  return { ...rest, rules: policy.rules.filter((rule) => canMatch(rule, gateway)) };
}

export function gatewayPolicyRoutes(service: Service): Hono {
  const { configured, signed } = gatewayAuth(service);
  const routes = new Hono();
  routes.post(ROUTES.gatewayPolicy, configured, limitBody, signed, async (c) => {
    const request = parseWith(GatewayPolicyRequestSchema, await readJson(c));
    const snapshot = await service.current();
    // A poll while nothing changed costs a version compare, not the policy's size.
    if (request.have === snapshot.version)
      return c.json({ v: WIRE_VERSION, version: snapshot.version, unchanged: true });
    const policy = policyForGateway(snapshot.policy, request.gateway);
    return c.json({ v: WIRE_VERSION, version: snapshot.version, policy });
  });
  return routes;
}
