-- path.lua: one fixed GET path (a search or list page), for wrk, with an optional token.
-- Usage: wrk -s bench/path.lua URL -- PATH [TOKEN]
local req

function init(args)
  local headers = {}
  if args[2] ~= nil and args[2] ~= "" then
    headers["Authorization"] = "Bearer " .. args[2]
  end
  req = wrk.format("GET", args[1], headers)
end

function request()
  return req
end
