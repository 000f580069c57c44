"""The demo shop's catalogue: ordinary products plus every precursor and device-component category.

Categories of precursors follow Annexes I and II of Regulation (EU) 2019/1148 as named in
``packs/precursors``; each has a couple of realistic retail products, because the rules look at
the category, not the product.
"""

from __future__ import annotations

from dataclasses import dataclass

# Ordinary categories: (category, product nouns, typical price in euro, relative popularity).
ORDINARY: tuple[tuple[str, tuple[str, ...], float, float], ...] = (
    ("grocery.produce", ("apples", "bananas", "tomatoes", "potatoes", "carrots", "onions"), 2.5, 6.0),
    ("grocery.dairy", ("milk", "yoghurt", "butter", "cheese", "cream"), 2.0, 5.0),
    ("grocery.bakery", ("bread", "rolls", "croissants", "pretzels"), 2.2, 4.0),
    ("grocery.beverages", ("mineral water", "orange juice", "coffee", "tea", "lemonade"), 3.0, 5.0),
    ("grocery.snacks", ("crisps", "chocolate", "biscuits", "nuts"), 2.4, 3.0),
    ("grocery.frozen", ("frozen pizza", "frozen vegetables", "ice cream"), 3.5, 2.0),
    ("household.cleaning", ("all-purpose cleaner", "glass cleaner", "sponges", "dish soap"), 3.0, 2.5),
    ("household.paper", ("toilet paper", "kitchen roll", "tissues"), 4.0, 2.0),
    ("household.laundry", ("laundry detergent", "fabric softener", "stain remover"), 6.0, 1.5),
    ("kitchen.cookware", ("frying pan", "saucepan", "baking tray", "casserole dish"), 25.0, 0.4),
    ("kitchen.utensils", ("spatula", "whisk", "peeler", "knife set", "measuring jug"), 8.0, 0.6),
    ("kitchen.appliances", ("kettle", "toaster", "hand blender", "coffee grinder"), 35.0, 0.3),
    ("garden.plants", ("tomato plant", "lavender", "rose bush", "herb set"), 6.0, 0.8),
    ("garden.tools", ("trowel", "pruning shears", "watering can", "rake"), 12.0, 0.4),
    ("garden.soil", ("potting soil 20 l", "bark mulch 50 l", "compost 40 l"), 7.0, 0.6),
    ("garden.fertiliser", ("NPK lawn fertiliser", "tomato feed", "organic plant food"), 9.0, 0.4),
    ("diy.tools", ("screwdriver set", "hammer", "spirit level", "tape measure", "cordless drill"), 18.0, 0.5),
    ("diy.fasteners", ("wood screws", "wall plugs", "nails", "cable ties"), 4.0, 0.7),
    ("diy.paint", ("wall paint 10 l", "wood stain", "paint roller", "masking tape"), 15.0, 0.4),
    ("diy.electrical", ("LED bulb", "extension lead", "batteries AA", "light switch"), 6.0, 0.7),
    ("beauty.haircare", ("shampoo", "conditioner", "hair gel"), 4.0, 1.2),
    ("beauty.skincare", ("hand cream", "sun cream", "face wash"), 6.0, 0.9),
    ("toys.games", ("board game", "puzzle", "building blocks"), 20.0, 0.3),
    ("books.general", ("paperback novel", "cookbook", "travel guide"), 14.0, 0.3),
    ("electronics.accessories", ("USB cable", "phone case", "headphones", "power bank"), 15.0, 0.5),
    ("clothing.basics", ("socks", "t-shirt", "work gloves", "rain jacket"), 12.0, 0.6),
    ("sports.cycling", ("inner tube", "bike light", "chain oil", "bike lock"), 10.0, 0.4),
    ("sports.outdoor", ("camping stove", "water bottle", "head torch"), 16.0, 0.3),
    ("pets.food", ("dog food", "cat food", "bird seed"), 8.0, 1.0),
    ("stationery.office", ("printer paper", "ballpoint pens", "notebook", "envelopes"), 5.0, 0.6),
    ("automotive.care", ("windscreen wash", "car shampoo", "motor oil"), 9.0, 0.4),
    ("hobby.modelling", ("model glue", "acrylic paint set", "brush set"), 7.0, 0.2),
)

# Precursor categories (Annex I then Annex II): products, price, popularity among ordinary buyers.
# Popular ones (acetone, peroxide, drain cleaner, fertilisers, fuel tablets) have everyday uses.
PRECURSORS: tuple[tuple[str, tuple[str, ...], float, float], ...] = (
    (
        "precursor.hydrogen_peroxide",
        ("Hydrogen peroxide 12% 1 l", "Pool oxidiser hydrogen peroxide 5 l"),
        9.0,
        3.0,
    ),
    ("precursor.nitromethane", ("Model engine fuel 25% nitromethane 1 l",), 24.0, 0.3),
    ("precursor.nitric_acid", ("Nitric acid 53% 1 l",), 19.0, 0.2),
    ("precursor.potassium_chlorate", ("Potassium chlorate 500 g",), 16.0, 0.1),
    ("precursor.potassium_perchlorate", ("Potassium perchlorate 250 g",), 18.0, 0.1),
    ("precursor.sodium_chlorate", ("Sodium chlorate weed killer 1 kg",), 12.0, 0.2),
    ("precursor.sodium_perchlorate", ("Sodium perchlorate 500 g",), 17.0, 0.1),
    ("precursor.ammonium_nitrate", ("Ammonium nitrate fertiliser 25 kg",), 32.0, 0.4),
    ("precursor.hexamine", ("Camping fuel tablets hexamine 24 pcs",), 6.0, 1.5),
    ("precursor.sulphuric_acid", ("Drain cleaner sulphuric acid 1 l",), 7.0, 2.5),
    ("precursor.acetone", ("Acetone 1 l", "Nail polish remover acetone 250 ml"), 5.0, 4.0),
    ("precursor.potassium_nitrate", ("Stump remover potassium nitrate 1 kg",), 11.0, 1.0),
    ("precursor.sodium_nitrate", ("Sodium nitrate 1 kg",), 10.0, 0.3),
    ("precursor.calcium_nitrate", ("Calcium nitrate fertiliser 5 kg",), 14.0, 1.0),
    ("precursor.calcium_ammonium_nitrate", ("Calcium ammonium nitrate fertiliser 25 kg",), 28.0, 1.2),
    ("precursor.aluminium_powder", ("Aluminium powder 250 g",), 15.0, 0.2),
    ("precursor.magnesium_powder", ("Magnesium powder 100 g",), 13.0, 0.2),
    ("precursor.magnesium_nitrate_hexahydrate", ("Magnesium nitrate hexahydrate 1 kg",), 16.0, 0.2),
)

# Device components: each ordinary on its own (cooks buy cookers and timers, cyclists bearings).
COMPONENTS: tuple[tuple[str, tuple[str, ...], float, float], ...] = (
    ("component.pressure_cooker", ("Pressure cooker 6 l", "Pressure cooker 8 l stainless"), 59.0, 0.4),
    ("component.timer", ("Kitchen timer mechanical", "Digital countdown timer"), 9.0, 0.5),
    ("component.ball_bearings", ("Steel balls 6 mm 500 pcs", "Bicycle ball bearing assortment"), 8.0, 0.3),
    ("component.black_powder", ("Black powder for muzzle-loaders 500 g",), 35.0, 0.02),
)

PRECURSOR_CATEGORIES: tuple[str, ...] = tuple(c for c, *_ in PRECURSORS)
COMPONENT_CATEGORIES: tuple[str, ...] = tuple(c for c, *_ in COMPONENTS)


@dataclass(frozen=True)
class Product:
    sku: str
    category: str
    description: str
    price_cents: int
    group: str  # "ordinary" | "precursor" | "component"


def build_catalogue() -> list[Product]:
    """Every product with a stable SKU; several variants per ordinary noun make it catalogue-sized."""
    products: list[Product] = []
    n = 100_000
    for group, table in (("ordinary", ORDINARY), ("precursor", PRECURSORS), ("component", COMPONENTS)):
        variants = ("", " value pack", " premium", " organic", " family size") if group == "ordinary" else ("",)
        for category, nouns, price, _ in table:
            for noun in nouns:
                for v, variant in enumerate(variants):
                    n += 7
                    cents = round(price * (1.0 + 0.35 * v) * 100)
                    products.append(Product(f"SKU-{n:06d}", category, f"{noun}{variant}", cents, group))
    return products


def popularity(category: str) -> float:
    for table in (ORDINARY, PRECURSORS, COMPONENTS):
        for cat, _, _, pop in table:
            if cat == category:
                return pop
    raise KeyError(category)
