"""GitHub's OAuth 2.0 web flow as the auth service runs it: the authorize URL, the code exchange
(`/login/oauth/access_token`), then the REST API's `/user` and `/user/teams` for the login name
and the (organization, team) pairs that teams_to_logins maps. The endpoints are github.com's
unless the connector names GitHub Enterprise's (endpoint_url, api_endpoint_url).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import aiohttp

from teleport import defaults
from teleport.auth.sso.connectors import GithubConnector
from teleport.errors import AccessDenied, ConnectionProblem

SCOPES = ("read:org",)
MAX_TEAM_PAGES = 10


def authorization_url(conn: GithubConnector, state: str, challenge: str) -> str:
    params = {
        "client_id": conn.spec["client_id"],
        "redirect_uri": conn.spec["redirect_url"],
        "scope": " ".join(SCOPES),
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{conn.endpoint_url}/login/oauth/authorize?{urlencode(params)}"


class GithubClient:
    """Calls GitHub (or a GitHub Enterprise) for one login."""

    def __init__(self, conn: GithubConnector) -> None:
        self.conn = conn
        self.timeout = aiohttp.ClientTimeout(total=defaults.SSO_HTTP_TIMEOUT)

    async def exchange(self, code: str, verifier: str) -> str:
        """The access token for the authorization code."""
        url = f"{self.conn.endpoint_url}/login/oauth/access_token"
        form = {
            "client_id": self.conn.spec["client_id"],
            "client_secret": self.conn.spec["client_secret"],
            "code": code,
            "redirect_uri": self.conn.spec["redirect_url"],
            "code_verifier": verifier,
        }
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as s, s.post(
                url, data=form, headers={"Accept": "application/json"}
            ) as r:
                body = await r.json(content_type=None)
                status = r.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ConnectionProblem(f"cannot reach GitHub at {url}: {exc}") from None
        # GitHub answers 200 with {"error": ...} for a bad code
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            reason = (body.get("error_description") or body.get("error")) if isinstance(body, dict) else ""
            raise AccessDenied(f"GitHub refused the login code: {reason or f'HTTP {status}'}")
        return str(body["access_token"])

    async def _api(self, path: str, token: str) -> Any:
        url = f"{self.conn.api_endpoint_url}{path}"
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as s, s.get(url, headers=headers) as r:
                if r.status != 200:
                    raise AccessDenied(f"GitHub's API {path} answered HTTP {r.status}")
                return await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ConnectionProblem(f"cannot reach GitHub's API at {url}: {exc}") from None

    async def user(self, token: str) -> str:
        """The GitHub login name of the token's owner."""
        data = await self._api("/user", token)
        if not isinstance(data, dict) or not isinstance(data.get("login"), str) or not data["login"]:
            raise AccessDenied("GitHub's /user answer has no login name")
        return str(data["login"])

    async def teams(self, token: str) -> list[tuple[str, str]]:
        """(organization login, team slug) of every team the user belongs to."""
        out: list[tuple[str, str]] = []
        for page in range(1, MAX_TEAM_PAGES + 1):
            data = await self._api(f"/user/teams?per_page=100&page={page}", token)
            if not isinstance(data, list):
                raise AccessDenied("GitHub's /user/teams answer is not a list")
            for team in data:
                if not isinstance(team, dict):
                    continue
                org = team.get("organization")
                slug = team.get("slug")
                if isinstance(org, dict) and isinstance(org.get("login"), str) and isinstance(slug, str):
                    out.append((org["login"], slug))
            if len(data) < 100:
                break
        return out
