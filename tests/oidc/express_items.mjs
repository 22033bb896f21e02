// An application of items on Express 4, an upstream of tests/parsers.rs:
// method-override in its README's query form (a POST's `_method` names
// the method, read by Node's `querystring`), the query read by `qs`
// (Express 4's default parser) and cookies by `cookie`. Prints its port on
// the first line, then one JSON line per request: the method it ran, the
// one sent, and what it read as `access_token` (query) and `tok` (cookie).
//
// Usage: node tests/oidc/express_items.mjs
import express from "express";
import methodOverride from "method-override";
import cookie from "cookie";

const app = express();
app.use(methodOverride("_method"));
app.all("*", (req, res) => {
  const line = {
    method: req.method,
    sent_as: req.originalMethod,
    token: req.query.access_token ?? null,
    cookie: cookie.parse(req.headers.cookie ?? "").tok ?? null,
  };
  console.log(JSON.stringify(line));
  res.json(line);
});
const server = app.listen(0, "127.0.0.1", () => console.log(server.address().port));
