"""Published results to read our numbers against. They come from OTHER data.

These figures were measured by their authors on their own labelled ZTF sets (tens of thousands of
alerts, balanced test sets, expert/crossmatched labels). Our splits are different: the built-in
simulated set, or the small real sample with heuristic labels. A comparison with them says whether
a model is in the right range, never which one is better; the report prints them apart from our
numbers and says so.
"""

from __future__ import annotations

import dataclasses

#: Shown with every anchor table.
CAVEAT = (
    "Published numbers measured by their authors on their own data sets (different alerts, labels "
    "and class balance). They are reference points, not results on this split."
)


@dataclasses.dataclass(frozen=True)
class Anchor:
    """One published result.

    Args:
        source: short citation.
        model: what was evaluated.
        metric: the metric's name.
        value: the published value.
        uncertainty: the published spread (None if none was given).
        data: the data it was measured on.
        classes: the classes, as the paper names them.
        approximate: the paper gives the value only roughly (read off a figure or rounded).
    """

    source: str
    model: str
    metric: str
    value: float
    uncertainty: float | None
    data: str
    classes: str
    approximate: bool = False

    def value_text(self) -> str:
        if self.approximate:
            return f"~{self.value:.2f}"
        if self.uncertainty is None:
            return f"{self.value:.3f}"
        return f"{self.value:.3f} ± {self.uncertainty:.3f}"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "from_other_data": True}


_ALERCE5 = "5: AGN, SN, VS, asteroid, bogus"
_CARRASCO = "Carrasco-Davis et al. 2021 (AJ 162, 231)"
_BALANCED = "ZTF alerts, balanced 5-class test set (ALeRCE labels)"

ANCHORS = (
    Anchor(_CARRASCO, "stamp classifier: stamps + metadata", "accuracy", 0.944, 0.008,
           _BALANCED, _ALERCE5),
    Anchor(_CARRASCO, "stamp classifier: stamps only", "accuracy", 0.872, None, _BALANCED,
           _ALERCE5),
    Anchor(_CARRASCO, "random forest: metadata only", "accuracy", 0.912, None, _BALANCED,
           _ALERCE5),
    Anchor("Neira et al. 2024", "multi-detection stamp classifier", "accuracy", 0.98, None,
           "ZTF alerts, with 2-5 detections per object", "3", approximate=True),
)  # fmt: skip


def anchors_as_dicts() -> list[dict]:
    return [anchor.to_dict() for anchor in ANCHORS]
