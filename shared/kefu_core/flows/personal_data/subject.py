"""Which customer a request names: a widget visitor id, or a signed-in customer's id."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kefu_core.chat.conversations import CUSTOMER_PREFIX

__all__ = ["CustomerRef"]


class CustomerRef(BaseModel):
    """Exactly one of ``visitor_id`` (an anonymous visitor, ``v-...``, as the console and the
    audit log show it) and ``customer_id`` (the company's id of a signed-in customer, the
    ``sub`` of the identity its backend signed)."""

    model_config = ConfigDict(extra="forbid")

    visitor_id: str | None = Field(default=None, pattern=r"^v-[0-9A-Za-z_-]{1,64}$")
    # 1 to 100 characters; the length is not a ``{1,100}`` of the pattern, which pydantic's
    # regex engine would compile a hundred times over (Unicode ``\w``) at import.
    customer_id: str | None = Field(default=None, min_length=1, max_length=100,
                                    pattern=r"^[\w.@:+-]+$")

    @model_validator(mode="after")
    def _exactly_one(self) -> CustomerRef:
        if (self.visitor_id is None) == (self.customer_id is None):
            raise ValueError("give exactly one of visitor_id and customer_id")
        return self

    @property
    def subject(self) -> str:
        """The id every store keys the customer's data by (conversations, facts, audit)."""
        if self.customer_id is not None:
            return CUSTOMER_PREFIX + self.customer_id
        assert self.visitor_id is not None
        return self.visitor_id
