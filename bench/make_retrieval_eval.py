"""Write bench/data/retrieval_eval.json: 200 passages and 50 queries with their relevant passages.

Deterministic (seeded) and self-written, no downloads. 50 fictional places, each with 4
passages, over 10 themes (5 places per theme). A place's passages name it and describe its
theme. Queries come in two kinds, 25 each:
  - named:       the place name plus a theme word ("Velmora harbour fishing boats") — words
                 appear in passages of the 5 places sharing the theme, the name singles it out;
  - paraphrased: a description of the theme in words the passages never use
                 ("people who bring food up from the sea"); relevant: the 20 passages of the
                 theme (so recall@10 can reach at most 0.5 on these).
Relevant for named queries: the 4 passages of the place. This makes the classic trade-off measurable:
exact names are what full-text search is good at, paraphrase is what embeddings are good at.

    python bench/make_retrieval_eval.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

THEMES = {
    "fishing": (
        ["harbour", "trawlers", "nets", "mackerel", "tides", "fishermen", "boats", "catch"],
        "people who bring food up from the sea",
    ),
    "vineyards": (
        ["vineyards", "grapes", "harvest", "cellars", "wine", "barrels", "vines", "vintage"],
        "drinks made from fruit grown on hillsides",
    ),
    "mining": (
        ["mines", "copper", "shafts", "miners", "ore", "tunnels", "smelter", "quarry"],
        "digging metal out of the ground",
    ),
    "astronomy": (
        ["observatory", "telescopes", "stars", "comets", "astronomers", "galaxies", "night sky", "lens"],
        "watching objects far beyond the planet",
    ),
    "textiles": (
        ["looms", "wool", "weavers", "fabric", "dye", "spinning", "cloth", "yarn"],
        "making garments from sheep fleece",
    ),
    "railways": (
        ["railway", "locomotives", "station", "tracks", "engineers", "carriages", "freight", "signals"],
        "trains carrying passengers between towns",
    ),
    "beekeeping": (
        ["hives", "honey", "bees", "beekeepers", "wax", "pollen", "swarms", "meadows"],
        "insects that produce a sweet golden food",
    ),
    "glassmaking": (
        ["glassblowers", "furnaces", "glass", "vases", "sand", "kilns", "workshops", "crystal"],
        "shaping molten material into clear vessels",
    ),
    "shipbuilding": (
        ["shipyard", "hulls", "timber", "keels", "carpenters", "docks", "sails", "launch"],
        "constructing large vessels for the ocean",
    ),
    "cheesemaking": (
        ["cheese", "dairy", "milk", "cellars", "cows", "rinds", "curds", "aging"],
        "turning what cattle give into a firm food that ripens",
    ),
}
SYLLABLES = [
    "vel",
    "mor",
    "ka",
    "thi",
    "ren",
    "dul",
    "sa",
    "bri",
    "os",
    "tan",
    "el",
    "gor",
    "ny",
    "pas",
    "quen",
    "ri",
    "ul",
    "zar",
    "fen",
    "lo",
]
FRAMES = [
    "In {place}, the {a} and the {b} have shaped daily life for generations.",
    "Visitors to {place} often remark on the {a}, though locals talk more about the {b}.",
    "The history of {place} is tied to its {a}; records also mention {b} and {c}.",
    "Every spring {place} holds a fair celebrating {a}, {b} and the {c}.",
]
FILLER = [
    "The town square has a clock tower.",
    "A river runs along the eastern edge.",
    "The old school was rebuilt after a storm.",
    "Market day falls on Thursday.",
    "Most houses have red tiled roofs.",
    "A small museum keeps maps of the region.",
]


def make(seed: int = 7) -> dict[str, object]:
    rng = random.Random(seed)
    names: set[str] = set()
    while len(names) < 50:
        names.add("".join(rng.sample(SYLLABLES, 3)).capitalize())
    places = sorted(names)
    themes = list(THEMES)
    passages, queries = [], []
    for number, place in enumerate(places):
        theme = themes[number % len(themes)]
        words, paraphrase = THEMES[theme]
        ids: list[str] = []
        for index, frame in enumerate(FRAMES):
            a, b, c = rng.sample(words, 3)
            pid = f"p{number:02d}_{index}"
            passages.append({"id": pid, "text": f"{frame.format(place=place, a=a, b=b, c=c)} {rng.choice(FILLER)}"})
            ids.append(pid)
        if number % 2 == 0:
            query = f"{place} {rng.choice(words)}"
            queries.append({"id": f"q{number:02d}", "kind": "named", "query": query, "relevant": ids})
        else:
            queries.append(
                {"id": f"q{number:02d}", "kind": "paraphrased", "query": paraphrase, "theme": theme, "relevant": []}
            )
    by_theme: dict[str, list[str]] = {}
    for number, _place in enumerate(places):
        by_theme.setdefault(themes[number % len(themes)], []).extend(f"p{number:02d}_{i}" for i in range(4))
    for query in queries:
        if query["kind"] == "paraphrased":
            query["relevant"] = by_theme[str(query.pop("theme"))]
    return {
        "description": "Seeded synthetic passages about 50 fictional places; see bench/make_retrieval_eval.py",
        "passages": passages,
        "queries": queries,
    }


if __name__ == "__main__":
    target = Path(__file__).parent / "data" / "retrieval_eval.json"
    target.write_text(json.dumps(make(), indent=1))
    print(f"wrote {target}")
