"""Kefu's settings are read from the environment by kefu_core.infra.env_settings (not
pydantic-settings, which the plumbing functions' cold start no longer imports): variable names,
precedence, list splitting and validation errors as users configure them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kefu_core.infra.settings import DEV_TOKEN_SECRET, Settings
from tests.support.imports import loaded_after


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("KEFU_ENV", "TOKEN_SECRETS", "TOKEN_SECRET_ID", "DB_POOL_MAX", "AWS_REGION",
                 "CRM_TOKEN_SECRET_ID", "WIDGET_KEYS", "CRM_URL", "GATEWAY_TRUST_LOOPBACK"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_variables_are_the_upper_case_field_names_matched_in_any_case(
        env: pytest.MonkeyPatch) -> None:
    # GIVEN variables in upper and mixed case
    env.setenv("DB_POOL_MAX", "7")
    env.setenv("Kefu_Env", "test")
    env.setenv("GATEWAY_TRUST_LOOPBACK", "yes")
    # WHEN the settings are read
    settings = Settings()
    # THEN each reached its field, converted to the field's type
    assert (settings.db_pool_max, settings.kefu_env) == (7, "test")
    assert settings.gateway_trust_loopback is True


def test_an_alias_is_the_variable_and_keyword_arguments_win(env: pytest.MonkeyPatch) -> None:
    # GIVEN the aliased variables and a conflicting keyword argument
    env.setenv("AWS_REGION", "eu-west-1")
    env.setenv("CRM_TOKEN_SECRET_ID", "arn:aws:secretsmanager:eu-west-1:1:secret:crm")
    env.setenv("KEFU_ENV", "test")
    # WHEN read with keyword arguments
    settings = Settings(kefu_env="production", token_secrets=["s" * 32])
    # THEN the aliases were read and the keyword argument won over the environment
    assert settings.aws_region == "eu-west-1"
    assert settings.crm_token_source == "arn:aws:secretsmanager:eu-west-1:1:secret:crm"
    assert settings.kefu_env == "production"


def test_lists_are_comma_separated(env: pytest.MonkeyPatch) -> None:
    # GIVEN list variables with spaces and empty items
    env.setenv("TOKEN_SECRETS", " a, b,,c ")
    env.setenv("WIDGET_KEYS", "")
    # WHEN read THEN they are split and trimmed, an empty one is an empty list
    settings = Settings()
    assert settings.token_secrets == ["a", "b", "c"]
    assert settings.widget_keys == []


def test_production_gets_no_development_secret_and_development_does(
        env: pytest.MonkeyPatch) -> None:
    # GIVEN no token secret WHEN read in production THEN none is filled in
    env.setenv("KEFU_ENV", "production")
    assert Settings().token_secrets == []
    # WHEN read in development THEN the development secret is the default
    env.setenv("KEFU_ENV", "development")
    assert Settings().token_secrets == [DEV_TOKEN_SECRET]


@pytest.mark.parametrize(("name", "value", "field", "kind"), [
    ("DB_POOL_MAX", "many", "db_pool_max", "int_parsing"),
    ("DB_POOL_MAX", "", "db_pool_max", "int_parsing"),
    ("KEFU_ENV", "Production", "kefu_env", "literal_error"),
    ("GATEWAY_TRUST_LOOPBACK", "maybe", "gateway_trust_loopback", "bool_parsing"),
])
def test_an_invalid_value_names_its_field(env: pytest.MonkeyPatch, name: str, value: str,
                                          field: str, kind: str) -> None:
    # GIVEN a variable that does not validate
    env.setenv(name, value)
    # WHEN read THEN pydantic's error names the field and why
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert caught.value.title == "Settings"
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [((field,), kind)]


def test_a_crm_url_that_is_not_http_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("CRM_URL", "ftp://crm.example.com")
    with pytest.raises(ValidationError, match="CRM_URL must be an http:// or https:// URL"):
        Settings()


def test_the_plumbing_functions_do_not_import_pydantic_settings() -> None:
    # GIVEN a fresh interpreter WHEN it imports what connect, disconnect and message import
    # and builds the settings
    loaded = loaded_after(
        "from kefu_core.flows import handle_connect, handle_disconnect, handle_message\n"
        "from kefu_core.lambda_runtime import api_gateway_handler\n"
        "from kefu_core.infra.secret_settings import get_settings\n"
        "get_settings()\n",
        ("pydantic_settings", "dotenv", "argparse"))
    # THEN pydantic-settings (and the dotenv and argparse sources it loads) stayed out
    assert loaded == {"pydantic_settings": False, "dotenv": False, "argparse": False}
