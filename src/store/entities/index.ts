import { ApiKey } from "./api-key.entity.ts";
import { Attempt } from "./attempt.entity.ts";
import { Delivery } from "./delivery.entity.ts";
import { Endpoint } from "./endpoint.entity.ts";
import { Message } from "./message.entity.ts";
import { Outbox } from "./outbox.entity.ts";
import { Workspace } from "./workspace.entity.ts";

export { ApiKey, Attempt, Delivery, Endpoint, Message, Outbox, Workspace };

/** Every entity of the store, for MikroORM's discovery. */
export const ENTITIES = [Workspace, ApiKey, Endpoint, Message, Delivery, Attempt, Outbox] as const;
