"""Signs a user in at portero's own issuer through a route with `login`,
as a browser would, and prints the session cookie's value. For
features.sh's session row: python3 session_sign_in.py http://127.0.0.1:18085 USER PASSWORD
Standard library only."""
import html
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

base, user, password = sys.argv[1:4]
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
    return response.status, response.headers.get("Location"), response.read().decode()


status, location, _ = send(base + "/", headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
assert status == 302, status
status, _, page = send(location)
assert status == 200, status
action = html.unescape(re.search(r'<form[^>]*action="([^"]+)"', page).group(1))
fields = {k: html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}
fields.update(username=user, password=password)
body = urllib.parse.urlencode(fields).encode()
status, location, _ = send(urllib.parse.urljoin(location, action), body, {"Origin": base})
assert status == 303, status
status, _, _ = send(location)
assert status == 303, status
cookie = [k for k in jar if k.endswith("portero-session")][0]
print(f"{cookie}={jar[cookie]}")
