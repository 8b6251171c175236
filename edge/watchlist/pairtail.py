"""The far tail of different-person distances: how often two photos of two people come out within ``t``.

A list of ``n`` entries alerts on a passer-by when any one entry is within the threshold, so the plain
distance rule's FPIR is ``1 - (1 - FMR(t))^n``, FMR being the share of *photo pairs* of different people
within ``t``. At a watch list's sizes the threshold sits where FMR is about one in a million: a calibration
of 1,400 people holds one such pair of people, or none, which is why simulated lists of them
(operating.Calibration's ``low``) set the threshold by two or three look-alikes and swing with them. Every
pair of *photos* is counted here instead (half of lfw-dev: about 4.5 million pairs), and ``log FMR`` is
fitted as a quadratic in ``t`` over the lowest :data:`KEEP` pairs from rank :data:`FIT_FROM` (a face
model's different-person distances have a tail that falls faster than exponentially, so a straight line
through it over-states the rate below it), read off the fit where fewer than :data:`COUNT_FROM` pairs are
within ``t`` and counted above. docs/calibration-format.md (version 3) specifies it; ``make bench``
section accuracy measures what it gives on people it never saw.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

KEEP = 10_000  # the lowest photo-pair distances kept
FIT_FROM = 10  # below this rank single look-alike pairs, not a trend
COUNT_FROM = 1_000  # from this many pairs within t, FMR is counted, not fitted


@dataclass(frozen=True)
class PairTail:
    pairs: int  # different-person photo pairs compared
    low: tuple[float, ...]  # the lowest distances among them, ascending

    @functools.cached_property
    def _fit(self) -> np.ndarray:
        x = np.asarray(self.low, np.float64)[FIT_FROM:]
        y = np.log(np.arange(FIT_FROM + 1, len(self.low) + 1) / self.pairs)
        c: np.ndarray = np.polyfit(x, y, 2)
        if c[0] >= 0:  # not concave: a straight line (never bends back up below the data)
            c = np.r_[0.0, np.polyfit(x, y, 1)]
        return c

    def fmr(self, t: float) -> float:
        """The share of different-person photo pairs within distance ``t``."""
        low = np.asarray(self.low)
        k = int(np.searchsorted(low, t, side="right"))
        if k >= COUNT_FROM or len(low) <= FIT_FROM + 2:
            return k / self.pairs
        a, b, c = self._fit
        if a < 0:
            t = min(t, -b / (2 * a))  # the parabola's top: log FMR only grows with t
        return float(min(1.0, np.exp(a * t * t + b * t + c)))

    def fpir(self, n: int, t: float) -> float:
        """Expected FPIR of the plain distance rule at ``t`` on a list of ``n`` entries."""
        return float(-np.expm1(n * np.log1p(-min(self.fmr(t), 1.0 - 1e-12))))

    def to_json(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "low": [round(v, 4) for v in self.low]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PairTail:
        low = tuple(float(v) for v in d["low"])
        if int(d["pairs"]) < len(low) or any(b < a for a, b in zip(low, low[1:], strict=False)):
            raise ValueError("pairs")
        return cls(int(d["pairs"]), low)

