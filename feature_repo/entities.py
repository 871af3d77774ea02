"""Feast entities: every feature in the platform is keyed by a user or an item."""

from feast import Entity, ValueType

USER_ID = "user_id"
ITEM_ID = "item_id"

user = Entity(
    name="user",
    join_keys=[USER_ID],
    value_type=ValueType.STRING,
    description="A person using the app (shopper or viewer).",
)

item = Entity(
    name="item",
    join_keys=[ITEM_ID],
    value_type=ValueType.STRING,
    description="A product or a title in the catalogue.",
)
