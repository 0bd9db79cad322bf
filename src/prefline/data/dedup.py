"""Text as words, word-set overlaps, MinHash signatures, and duplicates within a dataset.

Everything here works on Arrow string arrays and numpy, a batch at a time, so a dataset of
a million pairs never becomes a million Python objects:

- **Words**: text is lower-cased and cut at punctuation and spaces (see ``tokenize``); that
  word sequence is the *normalized text* (case, punctuation and spacing removed). Each word
  is a 32-bit hash of its bytes, equal in every batch and process.
- **Exact duplicates**: pairs whose normalized prompt, chosen and rejected texts are all
  equal, found through a 64-bit hash of the three word sequences.
- **Near duplicates**: pairs whose *example*, the prompt plus the chosen response, has word
  3-shingles with an estimated Jaccard similarity of at least ``NEAR_DUP_THRESHOLD``. The
  signatures are datasketch's ``affine32`` MinHash, computed for a whole batch in numpy
  (the test suite checks them against ``datasketch.MinHash``); candidates come from a
  ``datasketch.MinHashLSH`` index and are confirmed on the signatures.
- **Text shape**: Jaccard similarity of word sets, and whether a text stops mid-sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NUM_PERM = 64               # MinHash permutations: Jaccard estimates within about +-0.06
SEED = 1                    # datasketch's default seed
SHINGLE = 3                 # words per shingle; shorter texts are one shingle of all their words
STEM_BYTES = 4              # a word's stem, for overlap with a prompt, is its first 4 bytes (a crude, language-blind stemmer)
NEAR_DUP_THRESHOLD = 0.8    # estimated Jaccard of example shingles at which two pairs are near duplicates
MAX_LISTED = 20             # groups (and ids per group) listed in a report
_U32 = np.uint32
_BAND_MULTIPLIERS = np.random.default_rng(0).integers(0, 1 << 63, NUM_PERM * 4, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_FMIX32 = (_U32(16), _U32(0x85EBCA6B), _U32(13), _U32(0xC2B2AE35), _U32(16))


_BASE = 0x01000193  # odd, so invertible modulo 2**32
_POWER_CACHE: list[np.ndarray] = [np.ones(1, np.uint32), np.ones(1, np.uint32)]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i modulo 2**32 for i < n (cached, grown by doubling)."""
    if _POWER_CACHE[0].size < n:
        size = max(n, 2 * _POWER_CACHE[0].size, 1 << 16)
        base, inverse = np.full(size, _BASE, np.uint32), np.full(size, pow(_BASE, -1, 1 << 32), np.uint32)
        base[0] = inverse[0] = 1
        _POWER_CACHE[:] = [np.cumprod(base, dtype=np.uint32), np.cumprod(inverse, dtype=np.uint32)]
    return _POWER_CACHE[0], _POWER_CACHE[1]


@dataclass
class Tokens:
    """The words of a column of texts: a 32-bit hash and a byte length per word, in order.

    ``offsets`` (length n + 1) delimits each text's words.
    """

    hashes: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    stems: np.ndarray  # a hash of each word's first STEM_BYTES bytes: "sort" and "sorting" share it

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def doc(self) -> np.ndarray:
        """The text each word belongs to."""
        return np.repeat(np.arange(self.offsets.size - 1, dtype=np.int64), self.counts)


def tokenize(texts: pa.Array | pa.ChunkedArray) -> Tokens:
    """Lower-case each text and cut it into words, hashing each word (equal words, equal hash).

    A word is a run of characters that are neither ASCII punctuation or space, nor in
    Unicode's Latin-1 punctuation (U+00A0-00BF), General Punctuation (U+2000-206F) or
    CJK punctuation (U+3000-303F) blocks. Words are found and hashed on the UTF-8 bytes
    with numpy: splitting a million texts into Python strings, or with a regular
    expression, is an order of magnitude slower.
    """
    lowered = pc.utf8_lower(pc.fill_null(texts, ""))
    if isinstance(lowered, pa.ChunkedArray):
        lowered = lowered.combine_chunks() if lowered.num_chunks else pa.array([], pa.string())
    lowered = lowered.cast(pa.large_string())
    n = len(lowered)
    _, offsets_buf, data = lowered.buffers()
    text_offsets = np.frombuffer(offsets_buf, dtype=np.int64)[lowered.offset:lowered.offset + n + 1]
    base = int(text_offsets[0]) if n else 0
    raw = np.frombuffer(data, dtype=np.uint8)[base:int(text_offsets[-1])] if n and data is not None else np.zeros(0, np.uint8)
    text_offsets = text_offsets - base

    # lower-cased ASCII letters and digits, and every byte of a non-ASCII character...
    word = ((raw >= 0x61) & (raw <= 0x7A)) | ((raw >= 0x30) & (raw <= 0x39)) | (raw >= 0x80)
    wide = np.flatnonzero(raw >= 0xC2)
    if wide.size:  # ...except the non-ASCII separators
        for lead, second, width in ((0xE2, (0x80, 0x81), 3), (0xE3, (0x80,), 3), (0xC2, tuple(range(0xA0, 0xC0)), 2)):
            at = wide[(raw[wide] == lead) & (wide + 1 < raw.size)]
            at = at[np.isin(raw[at + 1], second)]
            for k in range(width):
                word[np.minimum(at + k, raw.size - 1)] = False
    begins, ends = word.copy(), word.copy()
    begins[1:] &= ~word[:-1]
    ends[:-1] &= ~word[1:]
    nonempty = np.flatnonzero(np.diff(text_offsets) > 0)
    begins[text_offsets[nonempty]] = word[text_offsets[nonempty]]  # a text's first byte starts a word...
    ends[text_offsets[nonempty + 1] - 1] = word[text_offsets[nonempty + 1] - 1]  # ...and its last one ends it
    starts = np.flatnonzero(begins)
    lengths = np.flatnonzero(ends) + 1 - starts
    # A word's hash is sum(byte_j * P**j) over its bytes, j counted from the word's start: from
    # one running sum over the whole buffer, C[k] = sum(byte_i * P**i for i < k), it is
    # (C[end] - C[start]) * P**-start, so no per-byte gather is needed (all modulo 2**32).
    powers, inverse = _powers(raw.size + 1)
    running = np.zeros(raw.size + 1, dtype=np.uint32)
    np.cumsum(raw * powers[:raw.size], dtype=np.uint32, out=running[1:])
    stem_ends = starts + np.minimum(lengths, STEM_BYTES)
    hashes = (running[starts + lengths] - running[starts]) * inverse[starts]
    stems = (running[stem_ends] - running[starts]) * inverse[starts]
    hashes = fmix32(hashes.astype(np.uint32) ^ lengths.astype(np.uint32))
    stems = fmix32(stems.astype(np.uint32) ^ np.minimum(lengths, STEM_BYTES).astype(np.uint32))
    doc = np.searchsorted(text_offsets, starts, side="right") - 1
    offsets = np.concatenate([[0], np.cumsum(np.bincount(doc, minlength=n))]).astype(np.int64)
    return Tokens(hashes=hashes, lengths=lengths.astype(np.int32), offsets=offsets, stems=stems)


def word_hash(word: str) -> int:
    """The hash ``tokenize`` gives a single word."""
    tokens = tokenize(pa.array([word]))
    if tokens.hashes.size != 1:
        raise ValueError(f"{word!r} is not a single word")
    return int(tokens.hashes[0])


def word_sets(tokens: Tokens, keep: np.ndarray | None = None, stems: bool = False) -> np.ndarray:
    """Sorted unique ``text << 32 | word_hash`` keys: each text's set of words (those in ``keep``; their stems with ``stems``)."""
    doc, hashes = tokens.doc, tokens.stems if stems else tokens.hashes
    if keep is not None:
        doc, hashes = doc[keep], hashes[keep]
    return sorted_unique((doc << 32) | hashes.astype(np.int64))


def set_sizes(keys: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(keys >> 32, minlength=n)


def intersection_sizes(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Per text, the size of the intersection of two ``word_sets`` results (each free of repeats)."""
    both = np.sort(np.concatenate([a, b]))
    return np.bincount(both[1:][both[1:] == both[:-1]] >> 32, minlength=n)


# numpy's own unique/isin/intersect1d measured 10-50x slower than a plain sort here.
def sorted_unique(values: np.ndarray) -> np.ndarray:
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]


def contains(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``queries[i] in sorted_values``, for each i."""
    if sorted_values.size == 0:
        return np.zeros(queries.shape, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_values, queries), sorted_values.size - 1)
    return sorted_values[at] == queries


class SmallSet:
    """Membership in a small set of 32-bit hashes: a 64k-entry table on the low bits first, then exact."""

    def __init__(self, values: np.ndarray):
        self.values = sorted_unique(values.astype(np.uint32))
        self.table = np.zeros(1 << 16, dtype=bool)
        self.table[self.values & 0xFFFF] = True

    def __call__(self, queries: np.ndarray) -> np.ndarray:
        out = self.table[queries & 0xFFFF]
        maybe = np.flatnonzero(out)
        out[maybe] = contains(self.values, queries[maybe])
        return out


def sequence_hashes(tokens: Tokens) -> np.ndarray:
    """A 64-bit hash of each text's word sequence: equal normalized text, equal hash."""
    word_hashes, offsets = tokens.hashes, tokens.offsets
    n = offsets.size - 1
    counts = np.diff(offsets)
    position = np.arange(word_hashes.size, dtype=np.uint64) - np.repeat(offsets[:-1], counts).astype(np.uint64)
    mixed = fmix64(word_hashes.astype(np.uint64) ^ (position * np.uint64(0x9E3779B97F4A7C15)))
    out = np.zeros(n, dtype=np.uint64)
    nonempty = counts > 0
    if nonempty.any():
        out[nonempty] = np.add.reduceat(mixed, offsets[:-1][nonempty])
    return fmix64(out ^ counts.astype(np.uint64))


def shingles(tokens: Tokens, k: int = SHINGLE) -> tuple[np.ndarray, np.ndarray]:
    """(text index, 32-bit shingle hash) for every run of ``k`` consecutive words, in text order.

    A text shorter than ``k`` words is a single shingle of all its words; an empty one has none.
    """
    word_hashes, offsets = tokens.hashes, tokens.offsets
    n = offsets.size - 1
    counts = np.diff(offsets)
    per_doc = np.where(counts >= k, counts - k + 1, (counts > 0).astype(np.int64))
    doc = np.repeat(np.arange(n), per_doc)
    rank = np.arange(doc.size) - np.repeat(np.cumsum(per_doc) - per_doc, per_doc)
    first = np.repeat(offsets[:-1], per_doc) + rank
    width = np.minimum(np.repeat(counts, per_doc), k)
    h = word_hashes.astype(_U32)
    value = h[first]
    for j in range(1, k):
        more = width > j
        value[more] = fmix32(value[more] * _U32(0x01000193) ^ h[first[more] + j])
    return doc, value


def permutations(num_perm: int = NUM_PERM, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's ``affine32`` permutation parameters (a, b)."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return np.asarray(a, dtype=_U32), np.asarray(b, dtype=_U32)


def signatures(docs: np.ndarray, values: np.ndarray, n: int, perms: tuple[np.ndarray, np.ndarray], chunk: int = 1 << 16) -> np.ndarray:
    """MinHash signatures, shape (n, num_perm) uint32, of each text's set of shingle values.

    ``docs`` (sorted) says which text each value belongs to. Equal to
    ``datasketch.MinHash(scheme="affine32")`` updated with the same 32-bit values; a text
    without values keeps datasketch's empty signature (all 0xFFFFFFFF). Values are taken a
    cache-sized chunk at a time, every permutation applied to the chunk before moving on.
    """
    a, b = perms
    out = np.full((a.size, n), np.iinfo(_U32).max, dtype=_U32)
    if values.size == 0:
        return out.T.copy()
    mixed = fmix32(values.astype(_U32))
    firsts = np.flatnonzero(np.concatenate([[True], docs[1:] != docs[:-1]]))
    bounds = np.append(firsts, values.size)
    i = 0
    while i < firsts.size:
        j = max(int(np.searchsorted(bounds, bounds[i] + chunk, side="right")) - 1, i + 1)
        lo, hi = bounds[i], bounds[j]
        segment, cuts, rows = mixed[lo:hi], firsts[i:j] - lo, docs[firsts[i:j]]
        scratch = np.empty(hi - lo, dtype=_U32)
        for p in range(a.size):
            np.multiply(segment, a[p], out=scratch)
            np.add(scratch, b[p], out=scratch)
            out[p, rows] = np.minimum.reduceat(scratch, cuts)
        i = j
    return out.T.copy()


def jaccard_estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    return (sig_a == sig_b).mean(axis=-1)


def fmix32(h: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX32
    with np.errstate(over="ignore"):
        h = h ^ (h >> s1)
        h = h * m1
        h = h ^ (h >> s2)
        h = h * m2
        return h ^ (h >> s3)


def fmix64(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(33))
        h = h * np.uint64(0xFF51AFD7ED558CCD)
        h = h ^ (h >> np.uint64(33))
        h = h * np.uint64(0xC4CEB9FE1A85EC53)
        return h ^ (h >> np.uint64(33))


# --- duplicates across a whole dataset -----------------------------------------------------


def exact_duplicates(keys: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(is_repeat, groups): ``is_repeat[i]`` when an earlier row has the same key; groups of row indices."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    is_repeat = np.zeros(keys.size, dtype=bool)
    if keys.size < 2:
        return is_repeat, []
    same = ordered[1:] == ordered[:-1]
    is_repeat[order[1:][same]] = True  # a stable sort keeps each group's first row first
    starts = np.flatnonzero(np.concatenate([[True], ~same]))
    sizes = np.diff(np.append(starts, keys.size))
    groups = [order[start:start + size] for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist())]
    return is_repeat, groups


def near_duplicates(sigs: np.ndarray, threshold: float = NEAR_DUP_THRESHOLD) -> list[np.ndarray]:
    """Groups of row indices whose signatures are near-identical (estimated Jaccard >= threshold).

    A ``datasketch.MinHashLSH`` index with datasketch's own band layout for ``threshold``
    finds the candidates; each bucket of several rows is checked member by member against
    its first row, and confirmed links are merged, so a group may chain rows that are each
    close to a neighbour. A row whose bands all differ from every other row's can share no
    bucket, so only rows with a repeated band (found with a sort in numpy) enter the index.
    """
    from datasketch import LeanMinHash, MinHashLSH

    n, num_perm = sigs.shape
    # Recall over precision (datasketch's weights on false positives, negatives): every candidate is
    # checked on its signature anyway. 9 bands of 7 rows: a pair at Jaccard 0.8 is found 88% of the time, at 0.9 99.7%.
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
    candidate = np.zeros(n, dtype=bool)
    nonempty = (sigs != np.iinfo(_U32).max).any(axis=1)
    for start, end in lsh.hashranges:
        # a random linear combination of the band's values mod 2^64: equal bands, equal keys
        keys = (sigs[:, start:end].astype(np.uint64) * _BAND_MULTIPLIERS[:end - start]).sum(axis=1, dtype=np.uint64)
        keys[~nonempty] = np.arange(int((~nonempty).sum()), dtype=np.uint64)  # empty rows match nothing
        ordered = np.sort(keys)
        repeated = sorted_unique(ordered[1:][ordered[1:] == ordered[:-1]])
        candidate |= contains(repeated, keys)
    rows = np.flatnonzero(candidate & nonempty)
    with lsh.insertion_session() as session:
        for i in rows.tolist():
            session.insert(i, LeanMinHash(seed=SEED, hashvalues=sigs[i], scheme="affine32"), check_duplication=False)
    parent = {i: i for i in rows.tolist()}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for table in lsh.hashtables:
        for bucket in table.keys():
            members = np.fromiter(table.get(bucket), dtype=np.int64)
            if members.size < 2:
                continue
            members.sort()
            close = members[1:][jaccard_estimate(sigs[members[1:]], sigs[members[0]]) >= threshold]
            for m in close.tolist():
                a, b = find(int(members[0])), find(m)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    roots = np.fromiter((find(i) for i in rows.tolist()), dtype=np.int64, count=rows.size)
    _, groups = exact_duplicates(roots)
    return [rows[g] for g in groups]


def duplicates_summary(pair_keys: np.ndarray, example_sigs: np.ndarray, ids: pa.ChunkedArray | pa.Array,
                       threshold: float = NEAR_DUP_THRESHOLD) -> dict:
    """The report's duplicates section: counts, and the largest groups with their pair ids."""
    is_repeat, exact_groups = exact_duplicates(pair_keys)
    near_groups = near_duplicates(example_sigs, threshold)
    return {
        "exact": _groups_section(is_repeat.sum(), exact_groups, ids),
        "near": {**_groups_section(sum(g.size - 1 for g in near_groups), near_groups, ids),
                 "threshold": threshold, "num_perm": int(example_sigs.shape[1]), "shingle_words": SHINGLE},
    }


def _groups_section(redundant: int, groups: list[np.ndarray], ids) -> dict:
    largest = sorted(groups, key=lambda g: (-g.size, int(g[0])))[:MAX_LISTED]
    return {
        "groups": len(groups),
        "redundant_pairs": int(redundant),
        "listed": [{"size": int(g.size), "ids": ids.take(pa.array(g[:MAX_LISTED])).to_pylist()} for g in largest],
    }


# --- text shape ------------------------------------------------------------------------------


def jaccard(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Per text, the Jaccard similarity of two ``word_sets`` results (0 when both are empty)."""
    both = intersection_sizes(a, b, n)
    union = set_sizes(a, n) + set_sizes(b, n) - both
    return np.where(union > 0, both / np.maximum(union, 1), 0.0)


_TERMINAL = np.zeros(256, dtype=bool)
_TERMINAL[np.frombuffer(b".!?\"')]}>`*|", dtype=np.uint8)] = True
_TERMINAL[0x80:] = True  # a non-ASCII last character (an ellipsis, an emoji, CJK punctuation) is not judged


def ends_mid_sentence(texts: pa.Array) -> np.ndarray:
    """The text stops on a letter, digit, comma, colon, semicolon, hyphen or opening bracket."""
    trimmed = pc.utf8_rtrim_whitespace(texts).cast(pa.large_string())
    _, offsets, data = trimmed.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64)[trimmed.offset:trimmed.offset + len(trimmed) + 1]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(1, np.uint8)
    nonempty = ends[1:] > ends[:-1]
    last = raw[np.where(nonempty, ends[1:] - 1, 0)] if raw.size else np.zeros(len(trimmed), np.uint8)
    return nonempty & ~_TERMINAL[last]
