import type { MigrationObject } from "@mikro-orm/core";
import { Migration20261123110528_initial_schema } from "./Migration20261123110528_initial_schema.ts";
import { Migration20261202074601_recovery_bulk_operations } from "./Migration20261202074601_recovery_bulk_operations.ts";
import { Migration20261202080135_payload_retention } from "./Migration20261202080135_payload_retention.ts";
import { Migration20261202082408_endpoint_async_ack } from "./Migration20261202082408_endpoint_async_ack.ts";
import { Migration20261202153911_api_key_scope_mode } from "./Migration20261202153911_api_key_scope_mode.ts";
import { Migration20261202154010_endpoint_health } from "./Migration20261202154010_endpoint_health.ts";
import { Migration20261202154022_event_types } from "./Migration20261202154022_event_types.ts";
import { Migration20261202155001_outbox_stream_subject } from "./Migration20261202155001_outbox_stream_subject.ts";
import { Migration20261202155109_delivery_due_index } from "./Migration20261202155109_delivery_due_index.ts";
import { Migration20261202161340_endpoint_routing } from "./Migration20261202161340_endpoint_routing.ts";
import { Migration20261202165000_message_deliver_at } from "./Migration20261202165000_message_deliver_at.ts";
import { Migration20261202165001_message_headers_metadata_retry } from "./Migration20261202165001_message_headers_metadata_retry.ts";
import { Migration20261202170517_endpoint_security } from "./Migration20261202170517_endpoint_security.ts";
import { Migration20261202165410_subscriptions } from "./Migration20261202165410_subscriptions.ts";
import { Migration20261202165002_idempotency_keys } from "./Migration20261202165002_idempotency_keys.ts";
import { Migration20261202165003_message_workspace_index } from "./Migration20261202165003_message_workspace_index.ts";
import { Migration20261202165004_quota_usage } from "./Migration20261202165004_quota_usage.ts";
import { Migration20261202155720_endpoint_rate_limit } from "./Migration20261202155720_endpoint_rate_limit.ts";
import { Migration20261202201933_publish_check } from "./Migration20261202201933_publish_check.ts";
import { Migration20261203185844_applications } from "./Migration20261203185844_applications.ts";
import { Migration20261203191345_portal_sessions } from "./Migration20261203191345_portal_sessions.ts";
import { Migration20261203195253_endpoint_ordered } from "./Migration20261203195253_endpoint_ordered.ts";
import { Migration20261204132724_endpoint_retry_policy } from "./Migration20261204132724_endpoint_retry_policy.ts";
import { Migration20261204184646_environments } from "./Migration20261204184646_environments.ts";
import { Migration20261206215302_status_leases } from "./Migration20261206215302_status_leases.ts";

/** The committed sqlite migrations, oldest first (append each new one here). */
export const sqliteMigrations: readonly MigrationObject[] = [
  { name: "Migration20261123110528_initial_schema", class: Migration20261123110528_initial_schema },
  { name: "Migration20261202074601_recovery_bulk_operations", class: Migration20261202074601_recovery_bulk_operations },
  { name: "Migration20261202080135_payload_retention", class: Migration20261202080135_payload_retention },
  { name: "Migration20261202082408_endpoint_async_ack", class: Migration20261202082408_endpoint_async_ack },
  { name: "Migration20261202153911_api_key_scope_mode", class: Migration20261202153911_api_key_scope_mode },
  { name: "Migration20261202154010_endpoint_health", class: Migration20261202154010_endpoint_health },
  { name: "Migration20261202154022_event_types", class: Migration20261202154022_event_types },
  { name: "Migration20261202155001_outbox_stream_subject", class: Migration20261202155001_outbox_stream_subject },
  { name: "Migration20261202155109_delivery_due_index", class: Migration20261202155109_delivery_due_index },
  { name: "Migration20261202161340_endpoint_routing", class: Migration20261202161340_endpoint_routing },
  { name: "Migration20261202165000_message_deliver_at", class: Migration20261202165000_message_deliver_at },
  {
    name: "Migration20261202165001_message_headers_metadata_retry",
    class: Migration20261202165001_message_headers_metadata_retry,
  },
  { name: "Migration20261202170517_endpoint_security", class: Migration20261202170517_endpoint_security },
  { name: "Migration20261202165410_subscriptions", class: Migration20261202165410_subscriptions },
  { name: "Migration20261202165002_idempotency_keys", class: Migration20261202165002_idempotency_keys },
  { name: "Migration20261202165003_message_workspace_index", class: Migration20261202165003_message_workspace_index },
  { name: "Migration20261202165004_quota_usage", class: Migration20261202165004_quota_usage },
  { name: "Migration20261202155720_endpoint_rate_limit", class: Migration20261202155720_endpoint_rate_limit },
  { name: "Migration20261202201933_publish_check", class: Migration20261202201933_publish_check },
  { name: "Migration20261203185844_applications", class: Migration20261203185844_applications },
  { name: "Migration20261203191345_portal_sessions", class: Migration20261203191345_portal_sessions },
  { name: "Migration20261203195253_endpoint_ordered", class: Migration20261203195253_endpoint_ordered },
  { name: "Migration20261204132724_endpoint_retry_policy", class: Migration20261204132724_endpoint_retry_policy },
  { name: "Migration20261204184646_environments", class: Migration20261204184646_environments },
  { name: "Migration20261206215302_status_leases", class: Migration20261206215302_status_leases },
];
