/* demo.c: builds believable demo products from static word tables, as a pure function of the
   product index, so every run (and every test) sees exactly the same catalog. Read the tables
   first, then demo_product() at the bottom, which puts one product together. */
#include "demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
   Word tables. Each category has kinds of product; a kind has a noun, four variants (material,
   colour, flavour or subject, named by the category's variant_key) and a believable price
   range. A product is a kind + brand + variant, so no two products share a name.
   Keep every string ASCII without quotes or backslashes: they go into names and JSON. */

struct kind {
    const char *noun;       /* "Pour-Over Coffee Stand", as it appears in a name */
    const char *variant[4]; /* "Walnut": word(s) placed before the noun */
    const char *use;        /* completes "made for ...": words a searcher would type */
    int32_t lo, hi;         /* price range in cents */
};

struct attr {
    const char *key;
    const char *const *values; /* NULL-terminated; when NULL, an integer in [lo, hi] */
    int32_t lo, hi;
};

/* Everything about a category beyond its public part; same order as categories[]. */
struct category_words {
    const char *sku_prefix;
    const char *name_pattern;      /* see expand(): {b} brand, {V} variant, {N} noun */
    const char *variant_key;       /* attribute key for the variant: "style", "flavor" */
    const struct kind *kinds;      /* terminated by {0} */
    const char *const *brands;     /* NULL-terminated, at least 6 */
    const char *const *adjectives; /* NULL-terminated, lowercase, none starting with u or h */
    const char *const *leads;      /* first-sentence templates, NULL-terminated */
    const char *const *features;   /* second sentences, NULL-terminated */
    const struct attr *attrs;      /* terminated by {0} */
};

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

static const struct demo_category categories[] = {
    {"kitchen", "Kitchen & Dining",
     "Cookware, coffee gear and tableware for everyday cooking and slow weekend breakfasts."},
    {"home", "Home & Living",
     "Lamps, textiles and small furniture that make a room feel lived in."},
    {"outdoors", "Outdoors & Camping",
     "Tents, packs and camp kitchen gear for trails, lakes and backyards."},
    {"electronics", "Electronics",
     "Headphones, chargers, speakers and gadgets that work together without fuss."},
    {"books", "Books", "Novels, cookbooks and field guides, in hardcover and paperback."},
    {"toys", "Toys & Games",
     "Building sets, puzzles and play things for curious kids of every age."},
    {"apparel", "Apparel",
     "Everyday clothing in natural fibres, cut to last more than one season."},
    {"footwear", "Footwear", "Boots, sneakers and sandals for city streets and muddy trails."},
    {"beauty", "Beauty & Personal Care",
     "Skin care, hair care and grooming essentials with short ingredient lists."},
    {"sports", "Sports & Fitness",
     "Equipment and accessories for the gym, the court and the living-room floor."},
    {"garden", "Garden & Patio",
     "Tools, planters and outdoor furniture for gardens of every size."},
    {"office", "Office & Stationery",
     "Desk gear, notebooks and pens for getting work done at home or at the office."},
    {"grocery", "Pantry & Grocery", "Coffee, tea and pantry staples from small producers."},
    {"pets", "Pet Supplies", "Beds, bowls, toys and treats for dogs and cats."},
};

#define NCATEGORIES (sizeof categories / sizeof categories[0])

/* First sentences shared by categories whose variant is a material or a colour. */
static const char *const material_leads[] = {
    "{A} {v} {n}, made for {u}.",
    "Our {v} {n} {is} {a} choice for {u}.",
    "Meet the {b} {n}: {a} design made for {u}.",
    NULL,
};

static const struct kind kitchen_kinds[] = {
    {"Pour-Over Coffee Stand",
     {"Walnut", "Oak", "Matte Black", "Brass"},
     "slow mornings and hand-poured coffee",
     2499,
     8999},
    {"Burr Coffee Grinder",
     {"Stainless", "Matte Black", "Copper", "Cream"},
     "grinding coffee beans fresh for espresso or drip",
     3999,
     24999},
    {"French Press",
     {"Glass", "Stainless", "Copper", "Enamel"},
     "brewing rich coffee or loose-leaf tea for two",
     1999,
     6999},
    {"Stoneware Mug",
     {"Speckled", "Sage", "Charcoal", "Terracotta"},
     "morning coffee and afternoon tea",
     1299,
     3499},
    {"Insulated Travel Mug",
     {"Teal", "Slate", "Sand", "Stainless"},
     "keeping coffee hot on the commute",
     1999,
     4499},
    {"Chef's Knife",
     {"Damascus", "Carbon Steel", "Stainless", "Olivewood"},
     "everyday chopping, slicing and dicing",
     3999,
     18999},
    {"Cutting Board",
     {"Walnut", "Maple", "Bamboo", "Acacia"},
     "prepping vegetables and serving cheese",
     2499,
     9999},
    {"Dutch Oven",
     {"Cast Iron", "Enamel", "Cherry Red", "Navy"},
     "braising, baking bread and slow-cooked stews",
     5999,
     34999},
    {"Mixing Bowl Set",
     {"Stainless", "Ceramic", "Glass", "Bamboo"},
     "baking, mixing dough and tossing salads",
     2499,
     7999},
    {"Tea Kettle",
     {"Copper", "Stainless", "Enamel", "Matte White"},
     "boiling water for tea and pour-over",
     2999,
     12999},
    {0},
};

static const struct kind home_kinds[] = {
    {"Table Lamp",
     {"Brass", "Ceramic", "Linen", "Walnut"},
     "warm reading light beside a bed or sofa",
     3999,
     19999},
    {"Throw Blanket",
     {"Wool", "Cotton", "Cashmere", "Chunky Knit"},
     "cool evenings on the couch",
     3999,
     24999},
    {"Linen Duvet Cover",
     {"Natural", "Sage", "Clay", "White"},
     "a breathable bed in every season",
     8999,
     29999},
    {"Scented Candle",
     {"Cedar", "Fig", "Sea Salt", "Amber"},
     "a calm, cosy room on long evenings",
     1499,
     4999},
    {"Wall Mirror",
     {"Round Brass", "Oak", "Black Iron", "Arched"},
     "hallways and bathrooms that need more light",
     4999,
     29999},
    {"Storage Basket",
     {"Seagrass", "Cotton Rope", "Rattan", "Felt"},
     "tidying blankets, toys and laundry",
     1999,
     6999},
    {"Floor Cushion",
     {"Velvet", "Linen", "Wool", "Corduroy"},
     "extra seating in a reading corner",
     3999,
     12999},
    {"Bookshelf",
     {"Oak", "Walnut", "White Ash", "Black Steel"},
     "books, plants and records in small spaces",
     9999,
     59999},
    {"Ceramic Vase",
     {"Speckled", "Matte White", "Terracotta", "Glazed Blue"},
     "fresh flowers and dried stems",
     1999,
     8999},
    {"Area Rug",
     {"Jute", "Wool", "Cotton", "Vintage"},
     "softening a living room or bedroom floor",
     8999,
     89999},
    {0},
};

static const struct kind outdoors_kinds[] = {
    {"Ultralight 2-Person Tent",
     {"Sage", "Ember", "Storm Gray", "Alpine"},
     "backpacking trips where every ounce counts",
     14999,
     59999},
    {"Family Camping Tent",
     {"Forest", "Sand", "Slate", "Canyon"},
     "car camping with the whole family",
     19999,
     69999},
    {"Down Sleeping Bag",
     {"Alpine", "Summit", "Ember", "Glacier"},
     "cold nights at camp",
     9999,
     44999},
    {"Trekking Poles",
     {"Carbon", "Aluminum", "Cork Grip", "Foldable"},
     "steep climbs and knee-friendly descents on the trail",
     4999,
     17999},
    {"Rechargeable Headlamp",
     {"Black", "Orange", "Olive", "Blue"},
     "night hikes and finding things in the tent",
     1999,
     7999},
    {"Camp Stove",
     {"Titanium", "Compact", "Two-Burner", "Canister"},
     "cooking and making coffee at camp",
     3999,
     19999},
    {"Enamel Camp Mug",
     {"Speckled Blue", "Forest Green", "Cream", "Red"},
     "coffee by the fire and cocoa on cold mornings",
     999,
     2499},
    {"Hydration Pack",
     {"Slate", "Teal", "Black", "Rust"},
     "long trail runs and day hikes",
     4999,
     14999},
    {"Folding Camp Chair",
     {"Olive", "Sand", "Navy", "Charcoal"},
     "campfires, festivals and the beach",
     2999,
     12999},
    {"Roll-Top Dry Bag",
     {"Yellow", "Orange", "Blue", "Gray"},
     "keeping gear dry on kayaks and canoes",
     1499,
     4999},
    {0},
};

static const struct kind electronics_kinds[] = {
    {"Wireless Earbuds",
     {"Black", "White", "Sage", "Navy"},
     "calls and music on the go",
     3999,
     24999},
    {"Wireless Charging Pad",
     {"Black", "White", "Walnut", "Fabric"},
     "charging a phone and earbuds at the bedside",
     1999,
     5999},
    {"Bluetooth Speaker",
     {"Charcoal", "Coral", "Olive", "Sand"},
     "wireless music in the kitchen, the park or the shower",
     2999,
     29999},
    {"Noise-Cancelling Headphones",
     {"Black", "Silver", "Midnight", "Stone"},
     "flights, open offices and focused work",
     9999,
     44999},
    {"USB-C Hub",
     {"Aluminum", "Space Gray", "Silver", "Black"},
     "adding HDMI, USB and SD card ports to a laptop",
     2999,
     9999},
    {"Smart Watch",
     {"Graphite", "Rose Gold", "Silver", "Midnight"},
     "tracking workouts, sleep and notifications",
     14999,
     49999},
    {"4K Action Camera",
     {"Black", "Waterproof", "Compact", "Pro"},
     "filming rides, dives and travel in 4K",
     19999,
     59999},
    {"Portable Power Bank",
     {"Slim", "Black", "White", "Rugged"},
     "recharging phones and tablets while travelling",
     1999,
     7999},
    {"Mechanical Keyboard",
     {"Retro", "Black", "White", "Low-Profile"},
     "typing and gaming with tactile switches",
     6999,
     24999},
    {"E-Reader",
     {"Black", "Sage", "Denim", "Agave"},
     "reading books in bright sun or in bed",
     9999,
     34999},
    {0},
};

/* Books read as "Title: A Mystery Novel"; the "brand" slot holds the title. */
static const struct kind books_kinds[] = {
    {"Novel",
     {"Mystery", "Literary", "Historical", "Science Fiction"},
     "readers who love a story they cannot put down",
     999,
     3499},
    {"Cookbook",
     {"Weeknight", "Sourdough", "Plant-Based", "Coffee and Cake"},
     "home cooks who want dependable recipes",
     1999,
     4999},
    {"Field Guide",
     {"Birding", "Mushroom", "Wildflower", "Night Sky"},
     "hikers and naturalists who like to know what they see",
     1499,
     3999},
    {"Memoir",
     {"Travel", "Kitchen", "Mountain", "Music"},
     "readers who enjoy true stories told with warmth",
     1299,
     3499},
    {"Travel Guide",
     {"Japan", "Portugal", "Patagonia", "Scotland"},
     "travellers planning a trip",
     1499,
     3999},
    {"Picture Book",
     {"Bedtime", "Dinosaur", "Ocean", "Forest"},
     "reading aloud to children aged 3 to 7",
     899,
     2499},
    {"Handbook",
     {"Woodworking", "Gardening", "Camping", "Bread Baking"},
     "beginners who want to learn by doing",
     1499,
     4499},
    {"Essay Collection",
     {"Nature", "Food", "City", "Science"},
     "curious readers with a cup of coffee and an hour to spare",
     1299,
     3499},
    {0},
};

static const struct kind toys_kinds[] = {
    {"Building Block Set",
     {"Castle", "Space Station", "City", "Pirate Ship"},
     "builders who like open-ended play",
     1999,
     12999},
    {"Wooden Train Set",
     {"Beech", "Maple", "Painted", "Deluxe"},
     "toddlers who love tracks, tunnels and bridges",
     2999,
     14999},
    {"Jigsaw Puzzle",
     {"1000-Piece", "500-Piece", "Panoramic", "Vintage Map"},
     "quiet evenings and family tables",
     1299,
     3999},
    {"Play Tent",
     {"Teepee", "Castle", "Rocket", "Jungle"},
     "indoor forts and reading nooks",
     2999,
     9999},
    {"Plush Bear", {"Honey", "Cocoa", "Cream", "Cinnamon"}, "cuddles at bedtime", 1499, 4999},
    {"Board Game",
     {"Strategy", "Cooperative", "Family", "Party"},
     "game nights with two to six players",
     1999,
     5999},
    {"Remote Control Car",
     {"Off-Road", "Racing", "Monster", "Drift"},
     "backyard races and driveway stunts",
     2999,
     12999},
    {"Art Kit",
     {"Watercolor", "Clay", "Crayon", "Sketching"},
     "young artists aged 5 and up",
     1499,
     4999},
    {"Marble Run",
     {"Wooden", "Glow", "Deluxe", "Starter"},
     "budding engineers who like cause and effect",
     2499,
     8999},
    {0},
};

static const struct kind apparel_kinds[] = {
    {"Crew Sweater",
     {"Merino", "Cashmere", "Cotton", "Lambswool"},
     "layering from autumn through spring",
     5999,
     24999},
    {"Denim Jacket",
     {"Indigo", "Washed Black", "Light Wash", "Selvedge"},
     "everyday wear that gets better with age",
     6999,
     19999},
    {"Leather Belt", {"Brown", "Black", "Tan", "Cognac"}, "jeans and chinos", 2999, 9999},
    {"Button-Down Shirt",
     {"Linen", "Oxford", "Flannel", "Chambray"},
     "the office, weekends and warm evenings",
     3999,
     12999},
    {"Rain Jacket",
     {"Olive", "Navy", "Yellow", "Black"},
     "wet commutes and windy walks",
     7999,
     29999},
    {"Beanie",
     {"Wool", "Merino", "Cashmere", "Ribbed Cotton"},
     "cold mornings and winter walks",
     1999,
     6999},
    {"Chino Pants", {"Khaki", "Navy", "Olive", "Stone"}, "work and weekends", 4999, 12999},
    {"T-Shirt", {"Organic Cotton", "Heavyweight", "Pocket", "Slub"}, "everyday wear", 1499, 4499},
    {"Leather Jacket",
     {"Black", "Brown", "Oxblood", "Vintage"},
     "cool evenings and motorcycle rides",
     19999,
     59999},
    {"Hoodie",
     {"Fleece", "French Terry", "Heather Gray", "Forest"},
     "lazy Sundays and chilly mornings",
     3999,
     9999},
    {0},
};

static const struct kind footwear_kinds[] = {
    {"Chelsea Boots",
     {"Suede", "Black", "Tan", "Waxed"},
     "city streets and nights out",
     9999,
     29999},
    {"Trail Running Shoes",
     {"Gray", "Blue", "Orange", "Black"},
     "rocky trails and muddy climbs",
     7999,
     19999},
    {"Canvas Sneakers",
     {"White", "Navy", "Olive", "Black"},
     "warm days and easy errands",
     3999,
     9999},
    {"Hiking Boots",
     {"Full-Grain", "Waterproof", "Mid-Cut", "Lightweight"},
     "long hikes over rough ground in leather that breathes",
     11999,
     29999},
    {"Penny Loafers",
     {"Cognac", "Black", "Burgundy", "Suede"},
     "the office and weddings, in soft leather",
     8999,
     24999},
    {"Wool Slippers",
     {"Gray", "Oatmeal", "Charcoal", "Shearling"},
     "cold floors and lazy mornings",
     2999,
     8999},
    {"Sport Sandals",
     {"Black", "Olive", "Sand", "Teal"},
     "river crossings, beaches and summer walks",
     3999,
     11999},
    {"Rain Boots",
     {"Yellow", "Navy", "Black", "Sage"},
     "puddles, gardens and muddy dog walks",
     3999,
     12999},
    {"Running Shoes",
     {"Cushioned", "Lightweight", "Stability", "Racing"},
     "daily training runs on the road",
     8999,
     21999},
    {0},
};

static const struct kind beauty_kinds[] = {
    {"Face Moisturizer",
     {"Hydrating", "Oil-Free", "Rich", "Fragrance-Free"},
     "dry or sensitive skin, morning and night",
     1499,
     5999},
    {"Vitamin C Serum",
     {"Brightening", "Daily", "Gentle", "Concentrated"},
     "dull skin and an even tone",
     1999,
     6999},
    {"Shampoo",
     {"Argan", "Tea Tree", "Coconut", "Rosemary"},
     "clean, soft hair without sulfates",
     999,
     3499},
    {"Lip Balm Set",
     {"Beeswax", "Vanilla", "Mint", "Tinted"},
     "chapped lips in cold weather",
     699,
     1999},
    {"Bar Soap",
     {"Oatmeal", "Lavender", "Charcoal", "Goat Milk"},
     "gentle everyday cleansing",
     599,
     1499},
    {"Mineral Sunscreen",
     {"SPF 30", "SPF 50", "Tinted", "Sport"},
     "daily sun protection without a white cast",
     1299,
     3999},
    {"Safety Razor",
     {"Chrome", "Brass", "Matte Black", "Rose Gold"},
     "a close shave with less plastic waste",
     2499,
     6999},
    {"Hand Cream",
     {"Shea", "Rose", "Unscented", "Citrus"},
     "dry hands after washing and gardening",
     899,
     2999},
    {"Body Oil",
     {"Jojoba", "Almond", "Neroli", "Sandalwood"},
     "soft skin after a shower or bath",
     1499,
     4999},
    {0},
};

static const struct kind sports_kinds[] = {
    {"Yoga Mat",
     {"Cork", "Natural Rubber", "Extra-Thick", "Travel"},
     "yoga, pilates and floor stretching",
     2499,
     12999},
    {"Adjustable Dumbbells",
     {"Cast Iron", "Chrome", "Compact", "Pro"},
     "strength training at home",
     9999,
     44999},
    {"Resistance Bands",
     {"Fabric", "Latex", "Heavy", "Light"},
     "warm-ups, rehab and travel workouts",
     1299,
     3999},
    {"Basketball",
     {"Indoor", "Outdoor", "Composite", "Leather"},
     "pickup games in the gym or on the street court",
     1999,
     14999},
    {"Foam Roller",
     {"High-Density", "Textured", "Travel", "Vibrating"},
     "sore muscles after long runs",
     1499,
     9999},
    {"Jump Rope",
     {"Speed", "Weighted", "Beaded", "Leather"},
     "cardio and footwork drills",
     999,
     3999},
    {"Tennis Racket",
     {"Graphite", "Carbon", "Junior", "Tour"},
     "club players who want control and spin",
     4999,
     24999},
    {"Insulated Water Bottle",
     {"Stainless", "Teal", "Black", "Coral"},
     "long workouts and hot days",
     1999,
     4999},
    {"Gym Bag",
     {"Canvas", "Nylon", "Leather", "Ripstop"},
     "carrying shoes, a towel and a change of clothes",
     3999,
     14999},
    {0},
};

static const struct kind garden_kinds[] = {
    {"Raised Garden Bed",
     {"Cedar", "Galvanized Steel", "Redwood", "Composite"},
     "growing vegetables and herbs in small yards",
     7999,
     29999},
    {"Pruning Shears",
     {"Bypass", "Anvil", "Ratchet", "Compact"},
     "roses, shrubs and fruit trees",
     1999,
     6999},
    {"Watering Can",
     {"Galvanized", "Copper", "Green", "Long-Spout"},
     "houseplants, seedlings and patio pots",
     1999,
     6999},
    {"Terracotta Planter",
     {"Large", "Small", "Glazed", "Footed"},
     "herbs, succulents and citrus trees",
     1499,
     7999},
    {"Garden Hose",
     {"Expandable", "Rubber", "Coiled", "Heavy-Duty"},
     "watering beds, washing cars and filling pools",
     2999,
     9999},
    {"Adirondack Chair",
     {"Teak", "Cedar", "Recycled Poly", "Acacia"},
     "slow evenings on the patio or the lawn",
     14999,
     44999},
    {"Solar String Lights",
     {"Warm White", "Globe", "Edison", "Fairy"},
     "patios, pergolas and summer parties",
     1999,
     6999},
    {"Gardening Gloves",
     {"Goatskin", "Bamboo", "Nitrile", "Suede"},
     "weeding, pruning and planting without scratches",
     999,
     3499},
    {"Compost Bin",
     {"Tumbling", "Cedar", "Countertop", "Stackable"},
     "turning kitchen scraps into rich soil",
     2999,
     17999},
    {0},
};

static const struct kind office_kinds[] = {
    {"Wireless Mouse",
     {"Ergonomic", "Silent", "Compact", "Vertical"},
     "long days at the desk without a tangle of wires",
     1999,
     9999},
    {"Dotted Notebook",
     {"A5", "Pocket", "Linen-Bound", "Kraft"},
     "bullet journals, sketches and meeting notes",
     999,
     3499},
    {"Desk Lamp",
     {"LED", "Brass", "Architect", "Matte Black"},
     "late nights and focused reading",
     2999,
     14999},
    {"Fountain Pen",
     {"Brass", "Resin", "Demonstrator", "Lacquered"},
     "journaling and letters with a smooth nib",
     1999,
     19999},
    {"Leather Portfolio",
     {"Cognac", "Black", "Tan", "Burgundy"},
     "carrying documents and a notepad to meetings",
     3999,
     14999},
    {"Monitor Stand",
     {"Walnut", "Oak", "Bamboo", "Aluminum"},
     "raising a screen to eye level and clearing the desk",
     3999,
     12999},
    {"Weekly Planner",
     {"Undated", "Hardcover", "Spiral", "Linen"},
     "planning weeks, goals and habits",
     1499,
     3999},
    {"Desk Organizer",
     {"Walnut", "Felt", "Metal Mesh", "Cork"},
     "pens, cables and the small things on a desk",
     1499,
     5999},
    {"Ergonomic Office Chair",
     {"Mesh", "Fabric", "Leather", "Gray"},
     "all-day work with lumbar support",
     19999,
     79999},
    {"Wireless Keyboard",
     {"Slim", "Compact", "Backlit", "Quiet"},
     "typing at the desk or on the sofa",
     3999,
     14999},
    {0},
};

static const struct kind grocery_kinds[] = {
    {"Whole Bean Coffee",
     {"Ethiopian", "Colombian", "Espresso Roast", "Decaf"},
     "pour-over, espresso or French press coffee",
     1299,
     2999},
    {"Cold Brew Coffee",
     {"Classic", "Vanilla", "Mocha", "Oat Milk"},
     "iced coffee at home in seconds",
     899,
     2499},
    {"Loose-Leaf Tea",
     {"Earl Grey", "Sencha", "Chamomile", "Masala Chai"},
     "a calm cup in the afternoon",
     999,
     2999},
    {"Extra Virgin Olive Oil",
     {"Greek", "Spanish", "Californian", "Garlic-Infused"},
     "salads, dipping bread and everyday cooking",
     1499,
     4499},
    {"Wildflower Honey",
     {"Raw", "Creamed", "Manuka", "Clover"},
     "tea, toast and baking",
     999,
     3999},
    {"Dark Chocolate Bar",
     {"Sea Salt", "Almond", "Orange", "Espresso"},
     "an afternoon treat",
     399,
     1299},
    {"Granola",
     {"Maple Pecan", "Coconut", "Cherry Almond", "Honey Oat"},
     "breakfast bowls and yogurt",
     699,
     1799},
    {"Pasta Sauce",
     {"Marinara", "Arrabbiata", "Basil", "Roasted Garlic"},
     "quick weeknight dinners",
     599,
     1599},
    {"Hot Sauce",
     {"Habanero", "Chipotle", "Green Chili", "Smoked"},
     "tacos, eggs and anything that needs a kick",
     599,
     1499},
    {0},
};

static const struct kind pets_kinds[] = {
    {"Orthopedic Dog Bed",
     {"Gray", "Sherpa", "Canvas", "Tweed"},
     "older dogs and long afternoon naps",
     4999,
     19999},
    {"Leather Dog Collar",
     {"Brown", "Black", "Tan", "Red"},
     "daily walks around the block",
     1999,
     5999},
    {"Ceramic Pet Bowl", {"Speckled", "Blue", "White", "Sage"}, "food and water", 1299, 3999},
    {"Cat Scratching Post",
     {"Sisal", "Cardboard", "Carpet", "Jute"},
     "healthy claws and saved sofas",
     1999,
     8999},
    {"Rope Tug Toy",
     {"Cotton", "Braided", "Knotted", "Jumbo"},
     "tug of war and fetch in the park",
     799,
     2499},
    {"Reflective Dog Leash",
     {"Nylon", "Orange", "Teal", "Black"},
     "evening walks and busy streets",
     1499,
     4499},
    {"Cat Tree",
     {"Modern", "Tall", "Compact", "Wall-Mounted"},
     "climbing, perching and napping in the sun",
     4999,
     24999},
    {"Grain-Free Dog Treats",
     {"Salmon", "Peanut Butter", "Sweet Potato", "Duck"},
     "training sessions and good behaviour",
     799,
     2499},
    {"Pet Carrier",
     {"Soft-Sided", "Airline-Approved", "Hard-Shell", "Backpack"},
     "trips to the vet and travel",
     2999,
     9999},
    {0},
};

static const struct category_words category_words[NCATEGORIES] = {
    {"KIT", "{b} {V} {N}", "finish", kitchen_kinds,
     LIST("Hearthstone", "Kettlewood", "Oak & Ember", "Morrow", "Saltbox", "Fennel Lane",
          "Copperleaf"),
     LIST("sturdy", "elegant", "well-balanced", "simple", "generous", "beautiful", "dependable"),
     material_leads,
     LIST("Dishwasher safe and easy to clean.", "Built to last through years of daily use.",
          "Looks good enough to leave out on the counter.", "Makes a thoughtful housewarming gift.",
          "Tested in our own kitchen for six months before we sold it."),
     (const struct attr[]){
         {"dishwasher_safe", LIST("true", "false"), 0, 0},
         {"made_in", LIST("USA", "Portugal", "Japan", "Germany", "Denmark", "Mexico"), 0, 0},
         {0}}},
    {"HOM", "{b} {V} {N}", "style", home_kinds,
     LIST("Nook & Linden", "Marlow House", "Driftwood", "Hollis", "Pale Harbor", "Willowmere"),
     LIST("cosy", "quiet", "timeless", "soft", "calm", "considered", "warm"), material_leads,
     LIST("Designed to work with both modern and traditional rooms.",
          "Responsibly made from natural materials.",
          "Arrives ready to use, with no assembly needed.",
          "A simple way to make a room feel finished."),
     (const struct attr[]){{"room", LIST("living room", "bedroom", "hallway", "any room"), 0, 0},
                           {"care", LIST("spot clean", "machine wash", "wipe clean"), 0, 0},
                           {0}}},
    {"OUT", "{b} {V} {N}", "style", outdoors_kinds,
     LIST("Trailhead", "Ridgeline", "Summit & Co", "Northfork", "Cascadia", "Switchback",
          "Basecamp"),
     LIST("rugged", "lightweight", "packable", "weatherproof", "trail-tested", "compact"),
     material_leads,
     LIST("Packs down small and shrugs off rain.", "Field-tested on long trails in the Rockies.",
          "Ripstop fabrics and reinforced stitching for years of trips.",
          "Comes with a stuff sack and a lifetime repair promise."),
     (const struct attr[]){{"season", LIST("3-season", "4-season", "all-season"), 0, 0},
                           {"warranty_years", NULL, 1, 10},
                           {0}}},
    {"ELE", "{b} {V} {N}", "style", electronics_kinds,
     LIST("Voltline", "Auralux", "Nimbus", "Kestrel Audio", "Pixelforge", "Lumen", "Brightwave"),
     LIST("sleek", "powerful", "fast-charging", "compact", "premium", "smart"), material_leads,
     LIST("Charges over USB-C and comes with a two-year warranty.",
          "Pairs in seconds with phones, tablets and laptops.",
          "Firmware updates add new features over time.",
          "Recycled aluminum and plastic, with minimal packaging."),
     (const struct attr[]){
         {"warranty_years", NULL, 1, 3}, {"recycled_packaging", LIST("true", "false"), 0, 0}, {0}}},
    {"BOK", "{b}: {v-article} {V} {N}", "subject", books_kinds,
     LIST("The Salt Road", "Northern Lights", "Small Hours", "The Orchard House", "Paper Boats",
          "Ember and Ash", "The Long Table", "Quiet Water", "A Year of Sundays",
          "The Lantern Keeper", "Wild Country"),
     LIST("gripping", "warm", "beautifully written", "practical", "lively", "thoughtful"),
     LIST("{A} {v} {n} for {u}.", "{A} {v} {n}, written for {u}.", NULL),
     LIST("Now in its third printing.", "Includes maps, photographs and an index.",
          "Winner of a regional book award.", "Printed on recycled paper."),
     (const struct attr[]){{"format", LIST("hardcover", "paperback"), 0, 0},
                           {"pages", NULL, 96, 640},
                           {"language", LIST("en"), 0, 0},
                           {0}}},
    {"TOY", "{b} {V} {N}", "theme", toys_kinds,
     LIST("Little Otter", "Brightbox", "Pinecone Play", "Tinker & Co", "Moonbeam", "Kiddle",
          "Wobbly Fox"),
     LIST("colourful", "imaginative", "sturdy", "cheerful", "clever", "screen-free"),
     material_leads,
     LIST("Tested to meet toy safety standards.", "Made with non-toxic, child-safe paints.",
          "Great as a birthday gift.", "Encourages problem solving and creative play."),
     (const struct attr[]){
         {"age_min", NULL, 3, 10}, {"gift_wrap", LIST("true", "false"), 0, 0}, {0}}},
    {"APP", "{b} {V} {N}", "style", apparel_kinds,
     LIST("Field & Fable", "Northmoor", "Kin Supply", "Thread Theory", "Common Thread",
          "Hollow Pine", "Alder"),
     LIST("classic", "relaxed", "tailored", "soft", "durable", "versatile"), material_leads,
     LIST("Machine washable and pre-shrunk.", "Ethically made in a family-run factory.",
          "Cut for a relaxed fit; size down for a closer fit.", "Available in sizes XS to XXL."),
     (const struct attr[]){{"size", LIST("XS", "S", "M", "L", "XL", "XXL"), 0, 0},
                           {"fit", LIST("regular", "slim", "relaxed"), 0, 0},
                           {0}}},
    {"FTW", "{b} {V} {N}", "style", footwear_kinds,
     LIST("Stride & Stone", "Cobbler Row", "Fellwalker", "Pavement", "Marchetti", "Duneline",
          "Bramble"),
     LIST("comfortable", "supportive", "classic", "grippy", "resoleable", "breathable"),
     material_leads,
     LIST("Cushioned insole for all-day comfort.",
          "Resoleable construction so they last for years.", "True to size; half sizes available.",
          "Free exchanges if the fit is not right."),
     (const struct attr[]){
         {"size_eu", NULL, 36, 47}, {"width", LIST("regular", "wide"), 0, 0}, {0}}},
    {"BEA", "{b} {V} {N}", "variant", beauty_kinds,
     LIST("Botanica", "Clearwell", "Saltwater Apothecary", "Fern & Fig", "Lumiere", "Daybreak"),
     LIST("gentle", "nourishing", "lightweight", "refreshing", "soothing", "clean"), material_leads,
     LIST("Dermatologist tested and cruelty free.", "Made without parabens or synthetic fragrance.",
          "Packaged in recyclable glass and aluminum.", "Suitable for all skin types."),
     (const struct attr[]){{"skin_type", LIST("all", "dry", "sensitive", "oily"), 0, 0},
                           {"vegan", LIST("true", "false"), 0, 0},
                           {0}}},
    {"SPT", "{b} {V} {N}", "style", sports_kinds,
     LIST("Apex Athletic", "Ironleaf", "Momentum", "Courtside", "Peak Form", "Tempo", "Sprintline"),
     LIST("durable", "grippy", "pro-grade", "compact", "versatile", "reliable"), material_leads,
     LIST("Used by coaches and trainers in our partner gyms.",
          "Sweat-resistant and easy to wipe clean.", "Comes with a guide to ten beginner workouts.",
          "Backed by a one-year warranty."),
     (const struct attr[]){{"level", LIST("beginner", "intermediate", "advanced"), 0, 0},
                           {"warranty_years", NULL, 1, 3},
                           {0}}},
    {"GAR", "{b} {V} {N}", "style", garden_kinds,
     LIST("Greenhaven", "Potting Shed", "Bramblewood", "Fieldstone", "Sunroot", "Meadowlark"),
     LIST("sturdy", "weather-resistant", "practical", "long-lasting", "rustic", "easy-to-use"),
     material_leads,
     LIST("Weather resistant and built for years outdoors.",
          "Loved by allotment growers and balcony gardeners alike.",
          "Easy to clean with a garden hose.", "Comes with simple planting and care tips."),
     (const struct attr[]){{"outdoor", LIST("true"), 0, 0}, {"warranty_years", NULL, 1, 5}, {0}}},
    {"OFF", "{b} {V} {N}", "style", office_kinds,
     LIST("Deskwell", "Inkwright", "Margin & Co", "Paperhaus", "Studio North", "Foundry Desk",
          "Ledger"),
     LIST("minimal", "ergonomic", "sturdy", "tidy", "refined", "practical"), material_leads,
     LIST("Designed with remote workers in mind.", "Fits neatly on small desks.",
          "A favourite with architects and writers.", "Ships flat in plastic-free packaging."),
     (const struct attr[]){
         {"warranty_years", NULL, 1, 5},
         {"made_in", LIST("USA", "Portugal", "Japan", "Germany", "Denmark", "Mexico"), 0, 0},
         {0}}},
    {"GRO", "{b} {V} {N}", "flavor", grocery_kinds,
     LIST("Little Hill Farm", "Roastworks", "Olive & Vine", "Bee Meadow", "Pantry Co", "Tidewater",
          "Golden Field"),
     LIST("small-batch", "organic", "rich", "fresh", "artisan", "fair-trade"),
     LIST("{A} {v} {n}, perfect for {u}.", "Our {v} {n} {is} {a} favourite for {u}.", NULL),
     LIST("Sourced directly from small producers.", "Packed in a resealable, recyclable bag.",
          "Certified organic and fair trade.", "Best enjoyed within three months of opening."),
     (const struct attr[]){
         {"net_weight_g", NULL, 100, 1000}, {"organic", LIST("true", "false"), 0, 0}, {0}}},
    {"PET", "{b} {V} {N}", "style", pets_kinds,
     LIST("Happy Paws", "Barkwell", "Whisker & Co", "Good Boy Goods", "Tailwind", "Muddy Paws"),
     LIST("durable", "cosy", "vet-approved", "easy-to-clean", "chew-resistant", "comfortable"),
     material_leads,
     LIST("Vet approved and tested by our office dogs.", "Machine washable or easy to wipe clean.",
          "Sized for small, medium and large pets.", "Made without toxic dyes or glues."),
     (const struct attr[]){{"size", LIST("S", "M", "L"), 0, 0},
                           {"machine_washable", LIST("true", "false"), 0, 0},
                           {0}}},
};

/* Closing sentences any product may get, so descriptions vary in length (1 to 3 sentences). */
static const char *const closers[] = {
    "Free returns within 30 days.",          "Ships within two business days.",
    "A customer favourite since launch.",    "Limited run; restocks sell out quickly.",
    "Backed by our satisfaction guarantee.", NULL,
};

/* ---------------------------------------------------------------------------------------------
   Helpers. */

/* splitmix64: tiny, well-mixed, and its whole state is one local integer, which keeps
   demo_product() a pure function of the index (and so thread-safe). */
struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n); the modulo bias is far below anything a demo could notice. */
static uint64_t rng_below(struct rng *r, uint64_t n) { return rng_next(r) % n; }

static size_t count_list(const char *const *list)
{
    size_t n = 0;
    while (list[n])
        n++;
    return n;
}

static const char *pick(struct rng *r, const char *const *list)
{
    return list[rng_below(r, count_list(list))];
}

/* A bounded string builder: appends never overflow and always leave a NUL. Truncation is
   recorded so the unit test can prove no table entry is too long for its field. */
struct buf {
    char *p;
    size_t cap, len;
};

static void buf_init(struct buf *b, char *p, size_t cap)
{
    b->p = p;
    b->cap = cap;
    b->len = 0;
    p[0] = '\0';
}

static void buf_putc(struct buf *b, char c)
{
    if (b->len + 1 < b->cap) {
        b->p[b->len++] = c;
        b->p[b->len] = '\0';
    } else {
        /* Never silently ship a cut-off product; the tables are wrong. */
        fprintf(stderr, "demo: text too long for a %zu-byte field: %s...\n", b->cap, b->p);
        abort();
    }
}

static void buf_puts(struct buf *b, const char *s)
{
    while (*s)
        buf_putc(b, *s++);
}

/* Names and places keep their capital mid-sentence ("French press", "Ethiopian coffee"). */
static const char *const proper_words[] = {
    "French",      "Chelsea",   "Adirondack", "Bluetooth", "Damascus",  "Edison", "Japan",
    "Portugal",    "Patagonia", "Scotland",   "Ethiopian", "Colombian", "Greek",  "Spanish",
    "Californian", "Earl",      "Grey",       "Manuka",    NULL,
};

static int is_proper_word(const char *w, size_t len)
{
    for (const char *const *p = proper_words; *p; p++)
        if (strlen(*p) == len && memcmp(*p, w, len) == 0)
            return 1;
    return 0;
}

/* Words are lowercased for use mid-sentence, except proper names and acronyms or codes like
   "USB-C", "4K" and "SPF": a word with no lowercase letter is kept as it is. */
static void buf_put_lower(struct buf *b, const char *s)
{
    while (*s) {
        size_t len = strcspn(s, " ");
        int keep = is_proper_word(s, len) || strcspn(s, "abcdefghijklmnopqrstuvwxyz") >= len;
        for (size_t i = 0; i < len; i++)
            buf_putc(b, !keep && s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i]);
        s += len;
        if (*s == ' ')
            buf_putc(b, *s++);
    }
}

static const char *article(const char *word) { return strchr("AEIOUaeiou", word[0]) ? "an" : "a"; }

/* What one product's templates can refer to. */
struct slots {
    const char *brand, *variant, *noun, *use, *adjective;
};

/* "Boots", "Earbuds", "Pruning Shears": a noun ending in a single s is plural in every table
   ("French Press" is not), which changes "A sturdy ..." to "Sturdy ..." and "is" to "are". */
static int is_plural(const char *noun)
{
    size_t len = strlen(noun);
    return len >= 2 && noun[len - 1] == 's' && noun[len - 2] != 's';
}

/* Fills a template: {b} brand, {V}/{v} variant as-is/lowercased, {N}/{n} noun as-is/lowercased,
   {u} use, {a} "a"/"an" + adjective, {A} the same capitalised at the start of a sentence but
   with no article before a plural noun, {is} "is"/"are" agreeing with the noun, and
   {v-article} "A"/"An" for the variant.
   Text outside braces is copied. */
static void expand(struct buf *b, const char *tmpl, const struct slots *s)
{
    while (*tmpl) {
        if (*tmpl != '{') {
            buf_putc(b, *tmpl++);
            continue;
        }
        const char *close = strchr(tmpl, '}');
        size_t n = (size_t)(close - tmpl - 1);
        const char *tag = tmpl + 1;
        if (n == 1 && *tag == 'b') {
            buf_puts(b, s->brand);
        } else if (n == 1 && *tag == 'V') {
            buf_puts(b, s->variant);
        } else if (n == 1 && *tag == 'v') {
            buf_put_lower(b, s->variant);
        } else if (n == 1 && *tag == 'N') {
            buf_puts(b, s->noun);
        } else if (n == 1 && *tag == 'n') {
            buf_put_lower(b, s->noun);
        } else if (n == 1 && *tag == 'u') {
            buf_puts(b, s->use);
        } else if (n == 1 && *tag == 'A' && is_plural(s->noun)) {
            buf_putc(b, (char)(s->adjective[0] - 'a' + 'A'));
            buf_puts(b, s->adjective + 1);
        } else if (n == 1 && (*tag == 'a' || *tag == 'A')) {
            const char *art = article(s->adjective);
            buf_putc(b, *tag == 'A' ? (char)(art[0] - 'a' + 'A') : art[0]);
            buf_puts(b, art + 1);
            buf_putc(b, ' ');
            buf_puts(b, s->adjective);
        } else if (n == 2 && memcmp(tag, "is", 2) == 0) {
            buf_puts(b, is_plural(s->noun) ? "are" : "is");
        } else if (n == 9 && memcmp(tag, "v-article", 9) == 0) {
            buf_puts(b, article(s->variant)[1] ? "An" : "A");
        } else {
            fprintf(stderr, "demo: unknown template slot in %s\n", tmpl);
            abort();
        }
        tmpl = close + 1;
    }
}

/* JSON string with escaping, so attributes stay valid even if a table gains a quote. */
static void buf_put_json_string(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)c);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            buf_puts(b, esc);
        } else {
            buf_putc(b, (char)c);
        }
    }
    buf_putc(b, '"');
}

/* Values "true"/"false" become JSON booleans; everything else a string. */
static void buf_put_json_value(struct buf *b, const char *v)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
        buf_puts(b, v);
    else
        buf_put_json_string(b, v);
}

/* Writes value as exactly width decimal digits (zero-padded), returns the end. */
static char *put_digits(char *p, uint64_t value, int width)
{
    for (int i = width - 1; i >= 0; i--, value /= 10)
        p[i] = (char)('0' + value % 10);
    return p + width;
}

/* Epoch milliseconds (after 1970) to "2026-03-14T09:26:53.589Z" in out[25], using Howard
   Hinnant's days-to-civil algorithm rather than gmtime(), which is not thread-safe and
   depends on the platform's time zone setup. */
static void format_rfc3339(char out[25], uint64_t ms)
{
    uint64_t secs = ms / 1000, days = secs / 86400, rem = secs % 86400;
    uint64_t z = days + 719468;
    uint64_t era = z / 146097;
    uint64_t doe = z - era * 146097;
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    uint64_t mp = (5 * doy + 2) / 153;
    uint64_t d = doy - (153 * mp + 2) / 5 + 1;
    uint64_t m = mp < 10 ? mp + 3 : mp - 9;
    uint64_t y = yoe + era * 400 + (m <= 2);

    char *p = out;
    p = put_digits(p, y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, rem / 3600, 2);
    *p++ = ':';
    p = put_digits(p, rem / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, rem % 60, 2);
    *p++ = '.';
    p = put_digits(p, ms % 1000, 3);
    *p++ = 'Z';
    *p = '\0';
}

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* ULID: 10 characters of 48-bit timestamp, then 16 characters of 80 random bits, each character
   5 bits, most significant first, so ids sort by creation time. */
static void format_ulid(char *out, int64_t ms, struct rng *r)
{
    uint64_t t = (uint64_t)ms;
    for (int i = 9; i >= 0; i--, t >>= 5)
        out[i] = crockford[t & 31];
    for (int half = 0; half < 2; half++) {
        uint64_t bits = rng_next(r) >> 24; /* 40 bits = 8 characters */
        for (int i = 7; i >= 0; i--, bits >>= 5)
            out[10 + half * 8 + i] = crockford[bits & 31];
    }
    out[26] = '\0';
}

/* A shelf price inside [lo, hi] that ends like real prices do: mostly .99, some .49 and .00. */
static int64_t shelf_price(struct rng *r, int32_t lo, int32_t hi)
{
    int64_t dollars = (lo + (int64_t)rng_below(r, (uint64_t)(hi - lo) + 1)) / 100;
    uint64_t e = rng_below(r, 100);
    int64_t cents = e < 60 ? 99 : e < 80 ? 49 : 0;
    if (dollars == 0)
        return 99;
    return dollars * 100 + cents;
}

/* Products are spread evenly over 2026-01-01T00:00:00Z .. 2026-11-01T00:00:00Z, each at a random
   moment inside its own slot, so timestamps are strictly increasing but not regular. */
#define START_MS INT64_C(1767225600000)        /* 2026-01-01T00:00:00.000Z */
#define SPAN_MS  (INT64_C(304) * 86400 * 1000) /* Jan..Oct: 304 days */

/* Consecutive indices should not walk through categories in order, or a "newest first" page
   would show one product per category in a fixed rotation. Multiplying by a number coprime to
   the catalog's size permutes the indices; the result picks the category and the ordinal
   within it. 457 is the demo's; its neighbours serve sizes that are multiples of it (no size
   up to DEMO_PRODUCTS_MAX is a multiple of all three primes). */
static uint64_t shuffle_mul(uint32_t total)
{
    static const uint64_t primes[] = {457, 461, 463};
    for (size_t i = 0; i < sizeof primes / sizeof primes[0]; i++)
        if (total % primes[i] != 0)
            return primes[i];
    abort(); /* unreachable for total <= DEMO_PRODUCTS_MAX */
}

/* A big catalog outgrows brand x variant in a category: later rounds add a series word,
   then a mark number, so names stay unique and still read like products. */
static const char *const series[] = {
    "Classic", "Studio", "Select", "Heritage", "Urban", "Field", "Signature", "Everyday",
    "Pro",     "Lite",   "Plus",   "Compact",  "Trail", "Atlas", "Nordic",    "Harbor",
};
#define NSERIES (sizeof series / sizeof series[0])

/* ---------------------------------------------------------------------------------------------
   Public API. */

size_t demo_categories(const struct demo_category **out)
{
    *out = categories;
    return NCATEGORIES;
}

void demo_product(uint32_t index, struct demo_product *out)
{
    demo_product_of(index, DEMO_PRODUCTS, out);
}

void demo_product_of(uint32_t index, uint32_t total, struct demo_product *out)
{
    if (total == 0 || total > DEMO_PRODUCTS_MAX || index >= total) {
        fprintf(stderr, "demo: product index %u out of range (catalog of %u)\n", index, total);
        abort();
    }
    memset(out, 0, sizeof *out);
    struct rng rng = {UINT64_C(0x5EED50C0DE000000) ^ index}; /* fixed salt, then the index */

    uint32_t slot = (uint32_t)(((uint64_t)index * shuffle_mul(total) + 11u) % total);
    size_t c = slot % NCATEGORIES;
    uint32_t ordinal = (uint32_t)(slot / NCATEGORIES); /* unique within the category */
    const struct category_words *w = &category_words[c];

    /* ordinal -> (kind, brand, variant) is one-to-one, which is what makes names unique: kinds
       cycle fastest, then each kind walks through brand x variant pairs. The variant is offset
       by the brand so the same brand does not always get the same variant. */
    size_t nkinds = 0;
    while (w->kinds[nkinds].noun)
        nkinds++;
    size_t nbrands = count_list(w->brands);
    const struct kind *k = &w->kinds[ordinal % nkinds];
    size_t j = ordinal / nkinds;
    size_t brand = j % nbrands, round = j / nbrands;
    const char *variant = k->variant[(round + brand) % 4];

    struct slots s = {w->brands[brand], variant, k->noun, k->use, pick(&rng, w->adjectives)};
    struct buf b;

    buf_init(&b, out->name, sizeof out->name);
    expand(&b, w->name_pattern, &s);
    if (round >= 4) { /* only if a category outgrows brands x variants: keep names unique */
        size_t extra = round / 4 - 1;
        buf_putc(&b, ' ');
        buf_puts(&b, series[extra % NSERIES]);
        if (extra >= NSERIES) {
            char mark[24];
            snprintf(mark, sizeof mark, " Mk %zu", extra / NSERIES + 1);
            buf_puts(&b, mark);
        }
    }

    buf_init(&b, out->description, sizeof out->description);
    expand(&b, pick(&rng, w->leads), &s);
    buf_putc(&b, ' ');
    buf_puts(&b, pick(&rng, w->features));
    if (rng_below(&rng, 2)) {
        buf_putc(&b, ' ');
        buf_puts(&b, pick(&rng, closers));
    }

    snprintf(out->sku, sizeof out->sku, "%s-%05u", w->sku_prefix, ordinal + 1);
    out->category = categories[c].slug;
    out->price_cents = shelf_price(&rng, k->lo, k->hi);
    snprintf(out->image_url, sizeof out->image_url, "/img/products/%s/%zu.svg", categories[c].slug,
             (size_t)(k - w->kinds) + 1);

    /* Attributes: brand and variant always, then the category's own keys. */
    buf_init(&b, out->attributes, sizeof out->attributes);
    buf_puts(&b, "{\"brand\":");
    buf_put_json_string(&b, s.brand);
    buf_putc(&b, ',');
    buf_put_json_string(&b, w->variant_key);
    buf_putc(&b, ':');
    char lower[64];
    struct buf lb;
    buf_init(&lb, lower, sizeof lower);
    buf_put_lower(&lb, variant);
    buf_put_json_string(&b, lower);
    for (const struct attr *a = w->attrs; a->key; a++) {
        buf_puts(&b, ",");
        buf_put_json_string(&b, a->key);
        buf_putc(&b, ':');
        if (a->values) {
            buf_put_json_value(&b, pick(&rng, a->values));
        } else {
            char num[24];
            snprintf(num, sizeof num, "%lld",
                     (long long)(a->lo + (int64_t)rng_below(&rng, (uint64_t)(a->hi - a->lo) + 1)));
            buf_puts(&b, num);
        }
    }
    buf_putc(&b, '}');

    /* Stock: 5% sold out and 4% nearly gone give the storefront's badges something to show. */
    uint64_t roll = rng_below(&rng, 100);
    out->on_hand = roll < 5   ? 0
                   : roll < 9 ? 1 + (int64_t)rng_below(&rng, 5)
                              : 6 + (int64_t)rng_below(&rng, 495);

    int64_t slot_ms = SPAN_MS / total;
    int64_t ms = START_MS + (int64_t)index * slot_ms + (int64_t)rng_below(&rng, (uint64_t)slot_ms);
    format_rfc3339(out->created_at, (uint64_t)ms);
    memcpy(out->id, "prd_", 4);
    format_ulid(out->id + 4, ms, &rng);
}
