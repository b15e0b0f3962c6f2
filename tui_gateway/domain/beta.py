"""The Beta distribution, as the posteriors need it: fast draws, CDF and quantiles.

No SciPy: draws use Cheng's exact algorithm BB with constants prepared once per posterior;
the CDF is the regularized incomplete beta by its continued fraction, and quantiles invert it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

_log, _exp = math.log, math.exp


def cheng_setup(a: float, b: float) -> tuple[float, ...] | None:
    """Constants of Cheng's algorithm BB for Beta(a, b), or None outside its domain."""
    swap = a > b
    lo, hi = (b, a) if swap else (a, b)
    if lo <= 1.0:
        return None
    total = lo + hi
    scale = math.sqrt((total - 2.0) / (2.0 * lo * hi - total))
    return lo, hi, total, scale, lo + 1.0 / scale, float(swap)


def cheng_draw(c: tuple[float, ...], uniform: Callable[[], float]) -> float:
    a, b, total, scale, gamma, swap = c
    while True:
        u1 = uniform()
        u2 = uniform()
        if u1 == 0.0:
            continue
        v = scale * _log(u1 / (1.0 - u1))
        w = a * _exp(v)  # v < 37: scale < 1 whenever a, b > 1
        z = u1 * u1 * u2
        r = gamma * v - 1.3862943611198906  # log 4
        s = a + r - w
        if s + 2.6094379124341003 >= 5.0 * z:  # 1 + log 5
            break
        t = _log(z) if z > 0.0 else -math.inf
        if s > t or r + total * _log(total / (b + w)) >= t:
            break
    return b / (b + w) if swap else w / (b + w)


@functools.lru_cache(maxsize=4096)
def central_interval(a: float, b: float, mass: float) -> tuple[float, float]:
    """Memoized: 50-500 µs each, and a state snapshot asks again for every unchanged model."""
    tail = (1.0 - mass) / 2.0
    return beta_ppf(tail, a, b), beta_ppf(1.0 - tail, a, b)


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta I_x(a, b), by its continued fraction (Numerical Recipes 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(x, a, b) / a
    return 1.0 - front * _beta_cf(1.0 - x, b, a) / b


def _beta_cf(x: float, a: float, b: float) -> float:
    """Modified Lentz evaluation; converges in O(sqrt(max(a, b))) terms on this side of the mode."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((a - 1.0 + m2) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def beta_ppf(q: float, a: float, b: float) -> float:
    """Inverse of `beta_cdf` Newton steps on I_x(a, b) = q, kept inside a bisection bracket."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    if q in (0.0, 1.0):
        return q
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    lo, hi, x = 0.0, 1.0, a / (a + b)
    for _ in range(200):
        f = beta_cdf(x, a, b) - q
        if f == 0.0:
            return x
        lo, hi = (x, hi) if f < 0.0 else (lo, x)
        density = math.exp(log_norm + (a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x))
        step = x - f / density if density > 0.0 else math.nan
        new = step if lo < step < hi else (lo + hi) / 2.0
        # Converged relative to the nearer end (x near 1 is judged on 1 - x), or the bracket
        # is down to a couple of floats.
        if abs(new - x) <= 1e-14 * min(new, 1.0 - new) or hi - lo <= 4.5e-16 * hi:
            return new
        x = new
    return x
