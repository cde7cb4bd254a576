-- journey.lua: a shopper's journey through the gateway, for wrk: browse 10 : cart 3 :
-- checkout 1, over many users, counting confirmed checkouts.
-- Usage: wrk -s bench/journey.lua URL -- DATA_FILE NONCE
-- DATA_FILE is Lua written by bench/run:
--   return { products = {"prd_...", ...},          -- ids to browse
--            cart_products = {"prd_...", ...},     -- ids with plenty of stock
--            users = { {token=..., checkout='{"payment_method_id":...}'}, ... } }
-- NONCE makes Idempotency-Keys unique to this run.
--
-- wrk cannot tie a request to a connection, and 64 requests are in flight at once, so
-- one user's steps must not be sent back to back (a checkout could overtake its cart
-- puts). A round therefore goes: every user's 3 cart puts, 5 browses per user, every
-- user's checkout, 5 more browses per user. With N users, a user's checkout follows its
-- last cart put by at least 5N requests, and its next cart put follows the checkout (whose
-- order.confirmed event empties the cart) by 5N requests; N = 64 users keeps both gaps
-- at 320 requests, five times the requests in flight.
local data, nonce
local n_users, step, round_len, seq = 0, 0, 0, 0
-- globals, not locals: done() reads them from each thread with thread:get()
checkouts, rejected, other = 0, 0, 0
bad = ""            -- "status count" pairs of non-2xx answers, e.g. "409=2 404=1"
local bad_counts, bad_first = {}, {}

function init(args)
  data = dofile(args[1])
  nonce = args[2] or tostring(os.time())
  n_users = #data.users
  round_len = 14 * n_users
  math.randomseed(os.time())
end

local function auth(u, extra)
  local h = { ["Authorization"] = "Bearer " .. u.token }
  if extra then
    for k, v in pairs(extra) do h[k] = v end
  end
  return h
end

local function browse(u)
  local id = data.products[math.random(#data.products)]
  return wrk.format("GET", "/api/v1/products/" .. id, auth(u))
end

function request()
  local s = step
  step = (step + 1) % round_len
  local n = n_users
  if s < 3 * n then                        -- cart: user s % n, its (s // n)-th item
    local u = data.users[s % n + 1]
    local id = data.cart_products[math.random(#data.cart_products)]
    return wrk.format("PUT", "/api/v1/cart/items/" .. id,
                      auth(u, { ["Content-Type"] = "application/json" }), '{"quantity":1}')
  elseif s < 8 * n then
    return browse(data.users[s % n + 1])
  elseif s < 9 * n then                    -- checkout: user s % n
    local u = data.users[s % n + 1]
    seq = seq + 1
    return wrk.format("POST", "/api/v1/orders",
                      auth(u, { ["Content-Type"] = "application/json",
                                ["Idempotency-Key"] = "bench-" .. nonce .. "-" .. seq }),
                      u.checkout)
  else
    return browse(data.users[s % n + 1])
  end
end

-- Orders answer {"id":"ord_...","status":"confirmed"|"rejected"|"pending",...}.
function response(status, headers, body)
  if status >= 300 then
    bad_counts[status] = (bad_counts[status] or 0) + 1
    if bad_first[status] == nil and body ~= nil then
      bad_first[status] = body:sub(1, 160):gsub("[\r\n|]", " ")
    end
    local parts = {}
    for st, n in pairs(bad_counts) do
      table.insert(parts, string.format("%d x%d (%s)", st, n, bad_first[st] or ""))
    end
    bad = table.concat(parts, "; ")
  end
  if body ~= nil and body:find('"ord_', 1, true) then
    if body:find('"status":%s*"confirmed"') then
      checkouts = checkouts + 1
    elseif body:find('"status":%s*"rejected"') then
      rejected = rejected + 1
    else
      other = other + 1
    end
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local c, r, o = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + (t:get("checkouts") or 0)
    r = r + (t:get("rejected") or 0)
    o = o + (t:get("other") or 0)
  end
  io.write(string.format("JOURNEY checkouts=%d rejected=%d other=%d duration_us=%d\n",
                         c, r, o, summary.duration))
  local b = {}
  for _, t in ipairs(threads) do
    local s = t:get("bad")
    if s ~= nil and s ~= "" then table.insert(b, s) end
  end
  io.write("JOURNEY-BAD " .. table.concat(b, "; ") .. "\n")
end
