"""`azureml.core.authentication`: the SDK v1 credential classes, over headrace API tokens.

`get_authentication_header()` returns `{"Authorization": "Bearer <token>"}` for the headrace
server. The token comes from `$HEADRACE_TOKEN`, else from the key `token` of the workspace
config file (`.azureml/config.json`, found as `Workspace.from_config` finds it). Azure-only
arguments (tenant, service principal, ...) are accepted and ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from headrace.errors import ConfigError, WorkspaceNotFoundError
from headrace.sdk.workspace import TokenAuthentication, Workspace

__all__ = [
    "AbstractAuthentication",
    "InteractiveLoginAuthentication",
    "ServicePrincipalAuthentication",
    "TokenAuthentication",
]

TOKEN_ENV = "HEADRACE_TOKEN"  # noqa: S105 (the variable name, not a secret)


def _config_token() -> str | None:
    try:
        path: Path = Workspace._find_config(None, None)
    except WorkspaceNotFoundError:
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    token = raw.get("token") if isinstance(raw, dict) else None
    return token if isinstance(token, str) and token else None


def find_token() -> str:
    """The API token for the server, or ConfigError saying how to get one."""
    token = os.environ.get(TOKEN_ENV, "").strip() or _config_token()
    if not token:
        raise ConfigError(
            f'No headrace API token: set {TOKEN_ENV}, or add "token" to the workspace\'s '
            ".azureml/config.json. Create one with `headrace token create --name NAME "
            "--role submitter` (it is printed once)."
        )
    return token


class AbstractAuthentication:
    """Base of the credential classes: a bearer header with the headrace API token."""

    def get_authentication_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {find_token()}"}

    def get_token(self, *_scopes: str, **_kwargs: Any) -> str:
        return find_token()


class InteractiveLoginAuthentication(AbstractAuthentication):
    """SDK v1's notebook login; here it reads the headrace API token (no browser)."""

    def __init__(
        self,
        force: bool = False,
        tenant_id: str | None = None,
        cloud: str | None = None,
        **_azure_only: Any,
    ) -> None:
        self.force = force
        self.tenant_id = tenant_id
        self.cloud = cloud


class ServicePrincipalAuthentication(AbstractAuthentication):
    """SDK v1's service-principal login; here it reads the headrace API token.

    The principal's password is kept only in memory and never sent anywhere.
    """

    def __init__(
        self,
        tenant_id: str,
        service_principal_id: str,
        service_principal_password: str,
        cloud: str = "AzureCloud",
        **_azure_only: Any,
    ) -> None:
        self.tenant_id = tenant_id
        self.service_principal_id = service_principal_id
        self._service_principal_password = service_principal_password
        self.cloud = cloud
