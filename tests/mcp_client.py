"""The Python MCP SDK's client (PyPI `mcp`) against an MCP server behind
portero, named by its client ID metadata document (`client_metadata_url`)
instead of registering (tests/sign_in_clients.rs runs this). It meets
portero's 401, reads the metadata, sends the user to the page (signed in
here by a small form-posting browser), redeems the code and calls the
tool. Each check prints `ok <name>`; the first failure raises.

Env: PORTERO_URL (the gateway's public_url; /mcp is the server),
CLIENT_METADATA_URL (the document the test serves), USERNAME, PASSWORD.
"""

import asyncio
import html
import os
import re
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata


def env(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set")
    return value


def ok(name):
    print(f"ok {name}", flush=True)


class Memory:
    """Tokens and client information, kept for the run."""

    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


class Browser:
    """Opens the authorization URL and signs in on the page's form."""

    def __init__(self):
        self.http = httpx2.AsyncClient(follow_redirects=False)
        self.authorization_url = None
        self.callback = None

    async def sign_in(self, url):
        self.authorization_url = url
        page = await self.http.get(url)
        assert page.status_code == 200, page.text
        action = html.unescape(re.search(r'<form method="post" action="([^"]*)"', page.text)[1])
        fields = [
            (html.unescape(n), html.unescape(v))
            for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', page.text)
        ]
        fields += [("username", env("USERNAME")), ("password", env("PASSWORD"))]
        origin = "{0.scheme}://{0.netloc}".format(urlparse(action))
        answer = await self.http.post(
            urljoin(url, action),
            content=urlencode(fields),
            headers={"origin": origin, "content-type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 303, answer.text
        self.callback = parse_qs(urlparse(answer.headers["location"]).query)

    async def code(self):
        q = self.callback
        return AuthorizationCodeResult(code=q["code"][0], state=q.get("state", [None])[0], iss=q.get("iss", [None])[0])


async def main():
    server = f"{env('PORTERO_URL')}/mcp"
    metadata_url = env("CLIENT_METADATA_URL")
    browser = Browser()
    auth = OAuthClientProvider(
        server_url=server,
        client_metadata=OAuthClientMetadata(
            client_name="portero Python MCP test client",
            redirect_uris=["http://127.0.0.1:8977/callback"],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=Memory(),
        redirect_handler=browser.sign_in,
        callback_handler=browser.code,
        client_metadata_url=metadata_url,
    )
    async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
        async with streamable_http_client(server, http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                asked = parse_qs(urlparse(browser.authorization_url).query)
                assert asked["client_id"] == [metadata_url], asked
                ok("signed in named by its client ID metadata document")
                tools = await session.list_tools()
                assert any(t.name == "add" for t in tools.tools), tools
                result = await session.call_tool("add", {"a": 20, "b": 22})
                assert result.content[0].text == "42", result
                ok("tool called: add(20, 22) = 42")


asyncio.run(main())
