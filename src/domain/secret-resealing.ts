/**
 * Brings every stored secret under the primary encryption key: plaintext secrets written before
 * encryption was configured (run by `hookstream migrate` and `dev` at start) and, after a key
 * rotation, secrets sealed with an older key (`hookstream reencrypt`). Batched by endpoint id;
 * each row is a compare-and-set, so a rotation racing the pass is never overwritten, and a crash
 * mid-way leaves every row either old (still readable) or new.
 */
import { clientKeyContext } from "./client-certificate.ts";
import { endpointSecretContext } from "./endpoints.ts";
import { isSealed, type SecretBox } from "./secret-box.ts";

/** The stored secrets of one endpoint. */
export interface StoredEndpointSecrets {
  id: string;
  secret: string;
  previousSecret: string | null;
  /** The sealed private key of the endpoint's mTLS client certificate, if any. */
  clientKey: string | null;
}

/** The resealing pass's port. */
export interface EndpointSecretStore {
  /** Endpoints, deleted ones too, with id greater than `afterId`, ascending by id, at most `limit`. */
  listEndpointSecrets(afterId: string | null, limit: number): Promise<StoredEndpointSecrets[]>;
  /** Writes `next` when the row still holds `expected`; false when it changed in the meantime. */
  replaceEndpointSecrets(expected: StoredEndpointSecrets, next: StoredEndpointSecrets): Promise<boolean>;
}

/** What a pass did. */
export interface ResealReport {
  visited: number;
  resealed: number;
}

/**
 * Reseals, under the box's primary key, every stored secret that is plaintext (`scope`
 * "plaintext") or not sealed with the primary key ("all"). Rows a concurrent rotation changed are
 * visited again, up to a few passes.
 */
export async function resealEndpointSecrets(
  store: EndpointSecretStore,
  box: SecretBox,
  scope: "plaintext" | "all",
  batchSize = 200,
): Promise<ResealReport> {
  if (box.primaryKeyId === undefined) throw new Error("resealing needs an encryption key");
  const stale = (stored: string | null): boolean =>
    stored !== null && (scope === "all" ? !box.isCurrent(stored) : !isSealed(stored));
  const report: ResealReport = { visited: 0, resealed: 0 };
  for (let pass = 0; pass < 5; pass++) {
    let raced = false;
    let afterId: string | null = null;
    for (;;) {
      const rows = await store.listEndpointSecrets(afterId, batchSize);
      if (rows.length === 0) break;
      afterId = rows[rows.length - 1]!.id;
      if (pass === 0) report.visited += rows.length;
      for (const row of rows) {
        if (!stale(row.secret) && !stale(row.previousSecret) && !stale(row.clientKey)) continue;
        const context = endpointSecretContext(row.id);
        const reseal = (stored: string, ctx = context): string => box.seal(box.open(stored, ctx), ctx);
        const next: StoredEndpointSecrets = {
          id: row.id,
          secret: stale(row.secret) ? reseal(row.secret) : row.secret,
          previousSecret:
            row.previousSecret !== null && stale(row.previousSecret) ? reseal(row.previousSecret) : row.previousSecret,
          clientKey:
            row.clientKey !== null && stale(row.clientKey)
              ? reseal(row.clientKey, clientKeyContext(row.id))
              : row.clientKey,
        };
        if (await store.replaceEndpointSecrets(row, next)) report.resealed += 1;
        else raced = true;
      }
    }
    if (!raced) break;
  }
  return report;
}
