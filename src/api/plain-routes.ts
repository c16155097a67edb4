/**
 * The route table for plain HTTP beside Connect (ack URLs today; inbound ingest and console assets
 * later): each route names its methods and a path pattern and answers JSON, so the server special-
 * cases nothing. A route's request body is not read unless the route reads it.
 */

/** One plain HTTP request as a route sees it. */
export interface PlainRequest {
  readonly method: string;
  readonly url: URL;
  /** The path pattern's match (index 0 is the whole path). */
  readonly match: RegExpExecArray;
}

/** A route's answer: a status and a JSON body. */
export interface PlainResponse {
  status: number;
  body: unknown;
}

/** One entry of the route table. */
export interface PlainRoute {
  readonly methods: readonly string[];
  readonly path: RegExp;
  handle(req: PlainRequest): Promise<PlainResponse>;
}

/** The route for a path, and whether the method is allowed; undefined when no route has the path. */
export function findPlainRoute(
  routes: readonly PlainRoute[],
  path: string,
): { route: PlainRoute; match: RegExpExecArray } | undefined {
  for (const route of routes) {
    const match = route.path.exec(path);
    if (match !== null) return { route, match };
  }
  return undefined;
}
