"""FedMABench's step score (evaluation/eval_acc.py): cosine similarity of the TF-IDF vectors of label and
prediction, a vectorizer fitted on just those two texts; a step counts as correct when it exceeds 0.6.

Reimplemented with scikit-learn ``TfidfVectorizer()`` defaults: lower case, tokens ``(?u)\\b\\w\\w+\\b``, raw counts,
``idf = ln((1 + n) / (1 + df)) + 1`` with n = 2, L2 normalisation. Where scikit-learn raises (neither text has a
token) this returns 0.0.
"""

import math
import re
from collections import Counter
from typing import Dict, List

TFIDF_THRESHOLD = 0.6
_TOKEN = re.compile(r'(?u)\b\w\w+\b')


def _normalised_vector(counts: Counter, idf: Dict[str, float]) -> Dict[str, float]:
    weights = {token: count * idf[token] for token, count in counts.items()}
    norm = math.sqrt(sum(w * w for w in weights.values()))
    return {token: w / norm for token, w in weights.items()} if norm else {}


def tfidf_cosine(label: str, prediction: str) -> float:
    """Cosine similarity in [0, 1] of the two texts' TF-IDF vectors (fitted on these two texts)."""
    docs: List[Counter] = [Counter(_TOKEN.findall(text.lower())) for text in (label, prediction)]
    df = Counter(token for doc in docs for token in doc)
    idf = {token: math.log(3 / (1 + count)) + 1 for token, count in df.items()}
    first, second = (_normalised_vector(doc, idf) for doc in docs)
    return sum(weight * second.get(token, 0.0) for token, weight in first.items())
