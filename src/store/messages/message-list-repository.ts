import type { MessageFilter, MessageLister } from "../../domain/message-list.ts";
import type { MessageRecord, PageQuery } from "../../domain/records.ts";
import { Delivery } from "../deliveries/delivery.entity.ts";
import { Endpoint } from "../endpoints/endpoint.entity.ts";
import { messageRecord } from "../record-mappers.ts";
import { DETACHED, inEnvironment, keyset, limitOf, type StoreContext } from "../store-context.ts";
import { Message } from "./message.entity.ts";

/** ListMessages on MikroORM (both databases): the (workspace_id, id) index, newest first. */
export function createMessageListRepository(ctx: StoreContext): MessageLister {
  return {
    async listMessages(workspaceId: string, filter: MessageFilter, page: PageQuery): Promise<MessageRecord[]> {
      const rows = await ctx.run((em) => {
        // A message matches the status and application filters through any one of its
        // deliveries (the same delivery for both).
        const statuses = filter.statuses === undefined || filter.statuses.length === 0 ? undefined : filter.statuses;
        const applicationId = filter.applicationId;
        const withStatus =
          statuses === undefined && applicationId === undefined
            ? {}
            : {
                id: {
                  $in: em
                    .createQueryBuilder(Delivery, "d")
                    .select("d.messageId")
                    .where({
                      workspaceId,
                      ...(statuses === undefined ? {} : { status: { $in: [...statuses] } }),
                      ...(applicationId === undefined
                        ? {}
                        : {
                            endpointId: {
                              $in: em
                                .createQueryBuilder(Endpoint, "e")
                                .select("e.id")
                                .where({ workspaceId, applicationId }),
                            },
                          }),
                    }),
                },
              };
        const created = {
          ...(filter.createdAfter === undefined ? {} : { $gte: filter.createdAfter }),
          ...(filter.createdBefore === undefined ? {} : { $lt: filter.createdBefore }),
        };
        return em.find(
          Message,
          {
            $and: [
              { workspaceId },
              inEnvironment(workspaceId, filter.environmentId),
              filter.eventType === undefined ? {} : { eventType: filter.eventType },
              Object.keys(created).length === 0 ? {} : { createdAt: created },
              withStatus,
              keyset("desc", page.afterId),
            ],
          },
          { ...DETACHED, orderBy: { id: "desc" }, limit: limitOf(page) },
        );
      });
      return rows.map(messageRecord);
    },
  };
}
