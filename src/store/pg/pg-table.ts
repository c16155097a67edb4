/**
 * Column lists, parameter arrays and row mappers for the PostgreSQL overrides, derived from
 * MikroORM's entity metadata, so a raw statement never repeats a column name or a type that the
 * entity already declares: adding a property to an entity (and its record) is the only change.
 */
import type { EntityMetadata, EntityProperty } from "@mikro-orm/core";
import type { SqlOrm } from "../store-context.ts";
import { toBuffer } from "../record-mappers.ts";

/** The part of `pg`'s Pool used here (pg ships no type declarations in this project). */
export interface PgPool {
  query(config: { name: string; text: string; values: readonly unknown[] }): Promise<{ rows: unknown[] }>;
}

/** A result row of a raw statement. */
export type PgRow = Record<string, unknown>;

/** Runs one named (prepared) statement and returns its rows. */
export async function pgRows(pool: PgPool, name: string, text: string, values: readonly unknown[]): Promise<PgRow[]> {
  const res = await pool.query({ name, text, values });
  return res.rows as PgRow[];
}

type ColumnKind = "date" | "bytes" | "json" | "bool" | "bigint" | "plain";

interface Column {
  prop: string;
  name: string;
  kind: ColumnKind;
  /** Element type for `$n::type[]` array parameters. */
  arrayType: string;
  nullable: boolean;
}

function columnOf(meta: EntityMetadata, prop: EntityProperty): Column {
  const type = (prop.columnTypes[0] ?? "").toLowerCase();
  const name = prop.fieldNames[0];
  if (name === undefined) throw new Error(`${meta.className}.${prop.name} has no column`);
  let kind: ColumnKind = "plain";
  let arrayType = "text";
  if (type.startsWith("timestamp")) [kind, arrayType] = ["date", "timestamptz"];
  else if (type === "bytea") [kind, arrayType] = ["bytes", "bytea"];
  else if (type === "jsonb" || type === "json") [kind, arrayType] = ["json", "jsonb"];
  else if (type === "boolean" || type === "bool") [kind, arrayType] = ["bool", "bool"];
  else if (type === "bigint" || type === "bigserial" || type === "int8") [kind, arrayType] = ["bigint", "bigint"];
  else if (type === "int" || type === "integer" || type === "int4" || type === "smallint") arrayType = "int";
  else if (type.startsWith("double") || type === "real" || type.startsWith("numeric")) arrayType = type;
  return { prop: prop.name, name, kind, arrayType, nullable: prop.nullable === true };
}

// MikroORM's pool returns timestamptz as text and int8 as text; bytea as a Buffer.
function fromColumn(c: Column, value: unknown): unknown {
  if (value === null || value === undefined) return c.nullable ? null : value;
  switch (c.kind) {
    case "date":
      return value instanceof Date ? value : new Date(value as string);
    case "bytes": {
      const b = value as Uint8Array;
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    }
    case "json":
      return typeof value === "string" ? JSON.parse(value) : value;
    case "bool":
      return Boolean(value);
    case "bigint":
      return Number(value);
    default:
      return value;
  }
}

function toColumn(c: Column, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (c.kind) {
    case "date":
      return (value as Date).toISOString();
    case "bytes":
      return toBuffer(value as Uint8Array);
    case "json":
      return JSON.stringify(value);
    default:
      return value;
  }
}

/**
 * One table as the raw statements see it: the columns of the record type R (a subset of the
 * entity's properties, in the record's order), how to select them, how to map a row back to R and
 * how to pass many R as one array parameter per column (for `unnest`).
 */
export class PgTable<R extends object> {
  /** The table name. */
  readonly table: string;
  /** The columns, in property order. */
  readonly columns: readonly string[];
  readonly #cols: readonly Column[];

  /**
   * The table of `entityName` with every column property of the entity except `omit` (columns
   * that the record type R does not carry, such as a soft-delete marker or a secret hash).
   */
  constructor(orm: SqlOrm, entityName: string, omit: readonly string[] = []) {
    const meta: EntityMetadata | undefined = orm.getMetadata().find(entityName as never);
    if (meta === undefined) throw new Error(`no entity ${entityName}`);
    this.table = meta.tableName;
    this.#cols = meta.props
      .filter((prop) => !omit.includes(prop.name) && prop.fieldNames.length === 1 && prop.persist !== false)
      .map((prop) => columnOf(meta, prop));
    this.columns = this.#cols.map((c) => c.name);
  }

  /** `col, col, …`, or `a.col AS pcol, …` for a joined select. */
  select(alias?: string, prefix = ""): string {
    if (alias === undefined) return this.columns.join(", ");
    return this.columns.map((c) => `${alias}.${c} AS ${prefix}${c}`).join(", ");
  }

  /** The record in a result row (columns optionally prefixed, as `select` aliased them). */
  fromRow(row: PgRow, prefix = ""): R {
    const out: Record<string, unknown> = {};
    for (const c of this.#cols) out[c.prop] = fromColumn(c, row[`${prefix}${c.name}`]);
    return out as R;
  }

  /** One array per column (in `columns` order) holding every record's value. */
  arrays(records: readonly R[]): unknown[][] {
    return this.#cols.map((c) => records.map((r) => toColumn(c, (r as Record<string, unknown>)[c.prop])));
  }

  /** `$first::type[], $first+1::type[], …`: the array parameters `arrays` fills, for `unnest(…)`. */
  unnestParams(first: number): string {
    return this.#cols.map((c, i) => `$${first + i}::${c.arrayType}[]`).join(", ");
  }
}
