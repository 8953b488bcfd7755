"""Binary codes on the device: the twin of ``vitrina.export.codes.binary.ITQHasher`` (and of the
CBS / DSH hash heads of ``vitrina.export.training.hash_heads``), and Hamming distances."""

from __future__ import annotations

import numpy as np

_HAMMING_CHUNK = 64


class SignHasher:
    """Binary codes: ``bits = (x - mean) @ projection + bias > 0``, packed (n, bits/8) uint8."""

    def __init__(self, mean: np.ndarray, projection: np.ndarray, bias: np.ndarray):
        """``mean``: (D,), ``projection``: (D, b), ``bias``: (b,), stored as float32; b a multiple of 8."""
        if projection.ndim != 2 or mean.shape != (projection.shape[0],) or bias.shape != (projection.shape[1],):
            raise ValueError(
                f"sign hasher: mean {mean.shape}, projection {projection.shape}, bias {bias.shape} do not fit (D,), (D, b), (b,)"
            )
        if projection.shape[1] % 8:
            raise ValueError(f"sign hasher: {projection.shape[1]} bits is not a multiple of 8")
        self.mean = np.asarray(mean, dtype=np.float32)
        self.projection = np.asarray(projection, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, D) float embeddings → (n, b/8) uint8 packed sign bits (``np.packbits`` order, first bit high)."""
        x = np.asarray(embeddings, dtype=np.float32)
        return np.packbits((x - self.mean) @ self.projection + self.bias > 0, axis=1)


def hamming_distances(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(n, N) int32 Hamming distances between packed (n, B) and (N, B) uint8 codes.

    Bytes are viewed as uint64 words when B is a multiple of 8, XORed, counted
    with ``np.bitwise_count`` (uint8 per word) and summed into a uint16
    accumulator, so 256-bit codes (up to 256 differing bits) cannot overflow.

    Raises:
        ValueError: either side is not uint8 (floats are never cast to bits) or
            the shapes do not fit.
    """
    q, c = np.asarray(queries), np.asarray(codes)
    if q.dtype != np.uint8 or c.dtype != np.uint8:
        raise ValueError(
            f"hamming: queries and codes must be packed uint8 bits, got {q.dtype} queries and {c.dtype} codes"
        )
    q, c = np.ascontiguousarray(q), np.ascontiguousarray(c)
    if q.ndim != 2 or c.ndim != 2 or q.shape[1] != c.shape[1]:
        raise ValueError(f"hamming: queries {q.shape} and codes {c.shape} must be (n, B) and (N, B) packed bytes")
    return hamming_from_words(as_words(q), code_words(c))


def as_words(packed: np.ndarray) -> np.ndarray:
    """(n, B) packed uint8 → (n, W) words: uint64 when B is a multiple of 8, else the bytes."""
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    return packed.view(np.uint64) if packed.shape[1] % 8 == 0 else packed


def code_words(codes: np.ndarray) -> np.ndarray:
    """(N, B) packed catalog codes → (W, N) word-major copy, so each pass scans one contiguous row."""
    return np.ascontiguousarray(as_words(codes).T)


def hamming_from_words(query_words: np.ndarray, words: np.ndarray) -> np.ndarray:
    """(n, W) query words against (W, N) word-major codes → (n, N) int32 distances."""
    out = np.empty((len(query_words), words.shape[1]), dtype=np.int32)
    for start in range(0, len(query_words), _HAMMING_CHUNK):
        block = query_words[start : start + _HAMMING_CHUNK]
        acc = np.zeros((len(block), words.shape[1]), dtype=np.uint16)
        for w in range(words.shape[0]):
            acc += np.bitwise_count(block[:, w, None] ^ words[w][None, :])
        out[start : start + len(block)] = acc
    return out
