"""Keywords that name each group without a language model: class-based TF-IDF.

All member texts of a group are one document; a term scores high for a group when it is frequent
there and rare across the other groups (c-TF-IDF: tf(t, c) * log(1 + A / f(t)), with A the mean
number of words per group and f(t) the term's frequency over all groups).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SKIPPED_FIELDS = {"cluster_id", "cluster_label", "distance_to_centroid", "keywords"}


def text_of(payload: dict[str, Any]) -> str:
    """Every string of a document's payload (its own fields, not cluster enrichment), joined."""
    parts: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            for key, inner in value.items():
                if key not in SKIPPED_FIELDS:
                    visit(inner)
        elif isinstance(value, list):
            for inner in value:
                visit(inner)

    visit(payload)
    return " ".join(parts)


def class_tfidf_keywords(texts: dict[str, list[str]], top: int = 8) -> dict[str, list[str]]:
    """The `top` keywords of each group from its members' texts (groups with no words get none)."""
    from sklearn.feature_extraction.text import CountVectorizer  # here, not at the top: see algorithms.py

    groups = [g for g in texts if any(t.strip() for t in texts[g])]
    result: dict[str, list[str]] = {g: [] for g in texts}
    if not groups:
        return result
    vectorizer = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{3,}\b", lowercase=True)
    try:
        counts = vectorizer.fit_transform([" ".join(texts[g]) for g in groups]).toarray().astype(np.float64)
    except ValueError:  # only stop words: nothing to name the groups by
        return result
    terms = vectorizer.get_feature_names_out()
    words_per_group = counts.sum(axis=1, keepdims=True)
    tf = counts / np.where(words_per_group == 0, 1.0, words_per_group)
    idf = np.log(1.0 + words_per_group.mean() / np.maximum(counts.sum(axis=0), 1.0))
    scores = tf * idf
    for row, group in enumerate(groups):
        order = np.argsort(-scores[row], kind="stable")
        result[group] = [str(terms[i]) for i in order[:top] if scores[row, i] > 0]
    return result
