"""Signs a user in at portero's own issuer, as a browser would, from a page
that sends it there (a portero route with `login`, or another relying
party such as Apache's mod_auth_openidc), and prints the session cookie
the page's server set (`NAME=value`; by default portero's own). For
features.sh's and modes.sh's session rows:

    python3 session_sign_in.py http://127.0.0.1:18085/ USER PASSWORD [COOKIE-NAME-SUFFIX]

SIGN_IN_DEBUG=1 prints each hop. Standard library only."""
import html
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

start, user, password = sys.argv[1:4]
suffix = sys.argv[4] if len(sys.argv) > 4 else "portero-session"
jar = {}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


opener = urllib.request.build_opener(NoRedirect)


def send(url, data=None, headers=None):
    headers = dict(headers or {})
    if jar:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        response = opener.open(request)
    except urllib.error.HTTPError as e:
        response = e
    for cookie in response.headers.get_all("Set-Cookie") or []:
        name, value = cookie.split(";")[0].split("=", 1)
        jar[name] = value
    location = response.headers.get("Location")
    if os.environ.get("SIGN_IN_DEBUG"):
        print(response.status, request.get_method(), url, "->", location, file=sys.stderr)
    return response.status, location and urllib.parse.urljoin(url, location), response.read().decode()


def follow(status, location, page):
    """Follows redirects (GET) to the page they end at."""
    for _ in range(10):
        if status not in (301, 302, 303, 307):
            return status, page
        status, location, page = send(location, headers={"Accept": "text/html"})
    raise SystemExit("too many redirects")


status, page = follow(*send(start, headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}))
assert status == 200, status
form = re.search(r'<form[^>]*action="([^"]+)"', page)
assert form, f"no sign-in form: {page[:600]}"
action = urllib.parse.urljoin(start, html.unescape(form.group(1)))
fields = {k: html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}
fields.update(username=user, password=password)
origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(action))
follow(*send(action, urllib.parse.urlencode(fields).encode(), {"Origin": origin}))
cookies = [k for k in jar if k.endswith(suffix)]
assert cookies, f"no cookie ending {suffix!r}: {sorted(jar)}"
print(f"{cookies[0]}={jar[cookies[0]]}")
