"""Write bench/data/catalog_eval.json: a second retrieval evaluation set, of a different kind than
retrieval_eval.json (prose about places): short product records with model codes.

Deterministic (seeded), self-written, no downloads. 24 product categories x 5 products = 120
records like "Norvik QX-4471 electric kettle: 1.7 litre, stainless steel body, rapid boil." and
60 queries in three kinds, 20 each:
  - code:  a model code alone ("QX-4471"); relevant: that one product. Identifiers are what full
           text is good at and embeddings are poor at;
  - need:  what the buyer wants done, in words the records never use ("something to heat water
           for tea quickly"); relevant: the 5 products of the category. Embeddings' strength;
  - brand: a brand and a category word ("Norvik kettle"); relevant: that brand's products in the
           category. Both help.

    python bench/make_catalog_eval.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CATEGORIES = {
    "kettle": (
        ["electric kettle", "1.7 litre", "stainless steel body", "rapid boil", "auto shut-off"],
        "something to heat water for tea quickly",
    ),
    "blender": (
        ["blender", "glass jug", "six blades", "smoothies", "pulse setting"],
        "a machine that turns fruit into a drink",
    ),
    "drill": (
        ["cordless drill", "18 volt battery", "two speeds", "keyless chuck", "LED work light"],
        "a tool to make holes in walls",
    ),
    "tent": (
        ["dome tent", "two person", "waterproof flysheet", "aluminium poles", "quick pitch"],
        "shelter for sleeping outdoors on a hike",
    ),
    "headphones": (
        ["wireless headphones", "noise cancelling", "30 hour battery", "over-ear cushions", "bluetooth"],
        "listen to music privately on a noisy train",
    ),
    "vacuum": (
        ["robot vacuum", "lidar mapping", "self-emptying dock", "carpet boost", "app control"],
        "a device that cleans floors by itself",
    ),
    "backpack": (
        ["hiking backpack", "40 litre", "rain cover", "padded hip belt", "hydration sleeve"],
        "bag to carry gear on a mountain trail",
    ),
    "monitor": (
        ["computer monitor", "27 inch", "4K panel", "USB-C input", "height adjustable stand"],
        "bigger screen for working at a desk",
    ),
    "cooler": (
        ["cool box", "28 litre", "ice packs", "insulated walls", "carry handles"],
        "keep drinks cold at a picnic",
    ),
    "lamp": (["desk lamp", "dimmable LED", "flexible arm", "warm white", "touch switch"], "light for reading at night"),
    "scale": (
        ["bathroom scale", "body fat analysis", "glass platform", "kilograms and pounds", "memory for users"],
        "check how heavy you are each morning",
    ),
    "umbrella": (
        ["folding umbrella", "windproof frame", "auto open", "compact canopy", "carry sleeve"],
        "stay dry when it pours outside",
    ),
    "router": (
        ["wifi router", "dual band", "mesh ready", "four gigabit ports", "parental controls"],
        "get the internet to every room of the house",
    ),
    "kayak": (
        ["sit-on-top kayak", "adjustable seat", "paddle included", "rod holders", "stable hull"],
        "small boat you row yourself on a lake",
    ),
    "toaster": (
        ["two slice toaster", "browning control", "defrost", "crumb tray", "wide slots"],
        "brown bread for breakfast",
    ),
    "watch": (
        ["smart watch", "heart rate sensor", "GPS", "sleep tracking", "water resistant"],
        "wrist device that counts steps and pulse",
    ),
    "mattress": (
        ["memory foam mattress", "medium firm", "double size", "breathable cover", "ten year guarantee"],
        "somewhere comfortable to lie down each night",
    ),
    "grill": (
        ["charcoal grill", "kettle barbecue", "porcelain bowl", "ash catcher", "thermometer lid"],
        "cook sausages outdoors over hot coals",
    ),
    "printer": (
        ["inkjet printer", "wireless printing", "duplex", "photo trays", "scanner bed"],
        "put documents from the computer onto paper",
    ),
    "stroller": (
        ["baby stroller", "one-hand fold", "reclining seat", "all-terrain wheels", "sun canopy"],
        "push an infant around town",
    ),
    "telescope": (
        ["refractor telescope", "70 mm aperture", "equatorial mount", "two eyepieces", "finder scope"],
        "look at the moon and planets",
    ),
    "sewing": (
        ["sewing machine", "32 stitch patterns", "automatic needle threader", "free arm", "foot pedal"],
        "mend clothes and make curtains at home",
    ),
    "heater": (
        ["fan heater", "2000 watt", "thermostat", "tip-over switch", "oscillation"],
        "warm up a chilly room in winter",
    ),
    "bicycle": (
        ["city bicycle", "seven gears", "step-through frame", "mudguards", "rear rack"],
        "ride to work on two wheels",
    ),
}
LETTERS = "ABCDEFGHKLMNPRSTVWXZ"
BRANDS = ["Norvik", "Altamo", "Brevell", "Quenta", "Solvar", "Tidemark", "Orrin", "Kesto"]
TEMPLATES = [
    "{brand} {code} {a}: {b}, {c}.",
    "{a} by {brand}, model {code}. Features {b} and {c}.",
    "{brand} {a} ({code}) with {b}; {c}.",
]


def make(seed: int = 11) -> dict[str, object]:
    rng = random.Random(seed)
    passages: list[dict[str, str]] = []
    products: list[tuple[str, str, str, str]] = []  # (id, category, brand, code)
    codes: set[str] = set()
    for number, (category, (words, _need)) in enumerate(CATEGORIES.items()):
        for index in range(5):
            while True:
                code = f"{rng.choice(LETTERS)}{rng.choice(LETTERS)}-{rng.randint(1000, 9999)}"
                if code not in codes:
                    codes.add(code)
                    break
            brand = rng.choice(BRANDS)
            b, c = rng.sample(words[1:], 2)
            pid = f"c{number:02d}_{index}"
            text = rng.choice(TEMPLATES).format(brand=brand, code=code, a=words[0], b=b, c=c)
            passages.append({"id": pid, "text": text})
            products.append((pid, category, brand, code))
    queries: list[dict[str, object]] = []
    for pid, _category, _brand, code in rng.sample(products, 20):
        queries.append({"id": f"code_{pid}", "kind": "code", "query": code, "relevant": [pid]})
    for category in rng.sample(list(CATEGORIES), 20):
        relevant = [p[0] for p in products if p[1] == category]
        queries.append(
            {"id": f"need_{category}", "kind": "need", "query": CATEGORIES[category][1], "relevant": relevant}
        )
    for pid, category, brand, _code in rng.sample(products, 20):
        relevant = [p[0] for p in products if p[1] == category and p[2] == brand]
        word = CATEGORIES[category][0][0].split()[-1]
        queries.append({"id": f"brand_{pid}", "kind": "brand", "query": f"{brand} {word}", "relevant": relevant})
    return {
        "description": "Seeded synthetic product records with model codes; see bench/make_catalog_eval.py",
        "passages": passages,
        "queries": queries,
    }


if __name__ == "__main__":
    target = Path(__file__).parent / "data" / "catalog_eval.json"
    target.write_text(json.dumps(make(), indent=1))
    print(f"wrote {target}")
