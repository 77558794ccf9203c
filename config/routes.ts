// Route ordering and shadowing. (Owned by the router work; placeholder until it lands.)
import type { RouteConfig } from './model.ts';

/** Routes that can never match because an earlier route in match order takes all their requests. */
export function findShadowedRoutes(_routes: RouteConfig[]): Array<{ index: number; by: number }> {
  return [];
}
