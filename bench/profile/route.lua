-- route.lua: one step of the checkout journey alone, for wrk, over the journey's users
-- (bench/profile/journey-routes). Usage: wrk -s route.lua URL -- DATA_FILE MODE
-- DATA_FILE as for bench/journey.lua; MODE browse (GET a product with a user's token)
-- or cart (PUT quantity 1 of a well-stocked product into a user's cart: idempotent,
-- so a cart holds at most the 20 cart products however long it runs), or checkout
-- (a cart put, then that user's checkout, user after user: only with -c1, where the
-- requests of the one connection go in order; NONCE, a third argument, makes the
-- Idempotency-Keys unique to the run).
local data, mode, nonce
local turn, seq = 0, 0

function init(args)
  data = dofile(args[1])
  mode = args[2]
  nonce = args[3] or tostring(os.time())
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local u = data.users[math.random(#data.users)]
  local h = { ["Authorization"] = "Bearer " .. u.token }
  if mode == "checkout" then
    u = data.users[math.floor(turn / 2) % #data.users + 1]
    h = { ["Authorization"] = "Bearer " .. u.token, ["Content-Type"] = "application/json" }
    turn = turn + 1
    if turn % 2 == 1 then
      local id = data.cart_products[math.random(#data.cart_products)]
      return wrk.format("PUT", "/api/v1/cart/items/" .. id, h, '{"quantity":1}')
    end
    seq = seq + 1
    h["Idempotency-Key"] = "route-" .. nonce .. "-" .. seq
    return wrk.format("POST", "/api/v1/orders", h, u.checkout)
  end
  if mode == "cart" then
    h["Content-Type"] = "application/json"
    local id = data.cart_products[math.random(#data.cart_products)]
    return wrk.format("PUT", "/api/v1/cart/items/" .. id, h, '{"quantity":1}')
  end
  local id = data.products[math.random(#data.products)]
  return wrk.format("GET", "/api/v1/products/" .. id, h)
end
