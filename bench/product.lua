-- product.lua: GET /api/v1/products/{id} over random ids, for wrk.
-- Usage: wrk -s bench/product.lua URL -- IDS_FILE [TOKEN]
-- IDS_FILE is Lua written by bench/run: `return {"prd_...", ...}`, the ids fetched from
-- the running catalog's list API. TOKEN, when given, is sent as a Bearer token.
local ids, headers = {}, {}

function init(args)
  ids = dofile(args[1])
  if args[2] ~= nil and args[2] ~= "" then
    headers["Authorization"] = "Bearer " .. args[2]
  end
  -- each thread its own sequence, so threads do not ask for the same ids in lockstep
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/api/v1/products/" .. id, headers)
end
