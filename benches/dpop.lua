-- wrk: each request with the next DPoP proof of benches/dpop_proofs.py
-- (a proof is taken once) and the bound token. PROOFS names the file.
local proofs, token, next = {}, nil, 0

function init(args)
  local base = os.getenv("PROOFS")
  for line in io.lines(base .. ".proofs") do proofs[#proofs + 1] = line end
  token = io.open(base .. ".token"):read("*l")
end

function request()
  next = next + 1
  if next > #proofs then
    error("out of proofs: make more (COUNT)")
  end
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["Authorization"] = "DPoP " .. token
  headers["DPoP"] = proofs[next]
  return wrk.format("GET", "/", headers)
end
