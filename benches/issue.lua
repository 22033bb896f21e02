-- wrk script for token issuance over HTTP (BENCHMARKS.md, "Token issuance"):
-- every request is seed 004's example, a fast-hash client secret; wrk's
-- "Non-2xx" line counts the failures.
--   wrk -t1 -c50 -d10s -s benches/issue.lua http://127.0.0.1:18090/api/v1/auth
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"client_id": "demo_client_123", "client_secret": "demo_secret_456_ABCDEFGH"}'
