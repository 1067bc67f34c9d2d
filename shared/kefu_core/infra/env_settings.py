"""A pydantic model whose fields are read from the environment: what Kefu's settings need of
pydantic-settings, without importing it.

pydantic-settings loads every source it supports when it is imported (dotenv files, secrets
directories, the command line with argparse, AWS, Azure and GCP secret stores): about 20 ms of
each Lambda cold start, for settings that only ever come from environment variables and
keyword arguments. :class:`EnvSettings` keeps the behaviour Kefu relied on:

- a field's variable is its alias if it has one (``Field(alias="AWS_REGION")``), else its
  name; names match case-insensitively (``KEFU_ENV`` and ``kefu_env`` are the same variable);
- keyword arguments win over the environment, matched by the same names;
- values reach pydantic as the strings the environment holds (lax mode turns ``"3"`` into 3
  and ``"true"`` into True); nothing is JSON-decoded: a list field splits its string itself
  with a ``mode="before"`` validator (comma-separated everywhere in Kefu, as the
  ``NoDecode`` fields were);
- a value that does not validate raises pydantic's ``ValidationError`` naming the field, as
  before; defaults are validated too; unknown variables are ignored.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

__all__ = ["EnvSettings"]


class EnvSettings(BaseModel):
    """Subclass it and declare fields; ``Cls()`` reads them from ``os.environ``."""

    model_config = ConfigDict(extra="ignore", validate_default=True)

    # lower-cased variable name -> the key pydantic validates (the alias, else the field name)
    __env_keys__: ClassVar[dict[str, str]] = {}

    def __init__(self, **values: Any) -> None:
        super().__init__(**self.environment_values(values))

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.__env_keys__ = {(info.alias or name).lower(): info.alias or name
                            for name, info in cls.model_fields.items()}

    @classmethod
    def environment_values(cls, given: dict[str, Any]) -> dict[str, Any]:
        """What the model validates: ``given`` (keyword arguments) over the environment."""
        keys = cls.__env_keys__
        values = {keys[name.lower()]: value for name, value in os.environ.items()
                  if name.lower() in keys}
        for name, value in given.items():
            values[keys.get(name.lower(), name)] = value
        return values
