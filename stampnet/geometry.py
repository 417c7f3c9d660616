"""Stamp geometry: the size and channel names of the stamps a dataset holds and a model takes.

ZTF cutouts (63x63: science, template, difference) are the default, but a dataset built from a
user's own database may hold other stamps (Deep-HiTS: 21x21 with template, science, difference
and SNR-difference). The dataset card records the geometry of what it holds (``stamp_shape`` and
``channels``), every model is built from it, and a saved model refuses data of another geometry
with a message that names what differs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from stampnet.constants import CHANNELS, STAMP_SIZE


@dataclasses.dataclass(frozen=True)
class StampGeometry:
    """Height, width and channel names of a stamp array (H, W, C).

    Args:
        height: rows of a stamp, in pixels.
        width: columns of a stamp, in pixels.
        channels: one name per channel, in the order of the last axis
            (e.g. ``("science", "template", "difference")``).

    Example:
        >>> StampGeometry.from_card(load_card("tfrecords/ztf_sample")).shape
        (63, 63, 3)
    """

    height: int = STAMP_SIZE
    width: int = STAMP_SIZE
    channels: tuple[str, ...] = CHANNELS

    def __post_init__(self):
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "channels", tuple(str(name) for name in self.channels))
        if self.height < 1 or self.width < 1:
            raise ValueError(f"stamps need at least one pixel, received {self.height}x{self.width}")
        if not self.channels or len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels must be distinct names, received {self.channels!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, len(self.channels))

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    @property
    def size(self) -> int:
        """The side of a square stamp; an error for rectangular ones, which crops cannot centre."""
        if self.height != self.width:
            raise ValueError(f"stamps are {self.height}x{self.width}, not square")
        return self.height

    def channel_index(self, name: str) -> int:
        if name not in self.channels:
            raise ValueError(f"no channel {name!r}; this data holds {list(self.channels)}")
        return self.channels.index(name)

    def to_dict(self) -> dict:
        return {"stamp_shape": list(self.shape), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, record: Mapping) -> StampGeometry:
        """Reads ``stamp_shape``/``channels`` of a card or model config; ZTF where absent.

        Cards written before geometry was recorded hold ZTF stamps, so the default is ZTF's.
        """
        channels = tuple(record.get("channels") or CHANNELS)
        shape = record.get("stamp_shape") or (STAMP_SIZE, STAMP_SIZE, len(channels))
        if len(shape) != 3 or int(shape[2]) != len(channels):
            raise ValueError(
                f"stamp_shape {list(shape)} does not match {len(channels)} channels {channels}"
            )
        return cls(int(shape[0]), int(shape[1]), channels)

    from_card = from_dict

    def differences(self, other: StampGeometry) -> list[str]:
        """What differs between two geometries, in words; empty when they match."""
        found = []
        if (self.height, self.width) != (other.height, other.width):
            found.append(f"stamp size {self.height}x{self.width} vs {other.height}x{other.width}")
        if self.channels != other.channels:
            found.append(f"channels {list(self.channels)} vs {list(other.channels)}")
        return found

    def check_matches(
        self, other: StampGeometry, *, what: str = "the model", against: str = "the data"
    ) -> None:
        """Raises ``ValueError`` saying what differs when ``other`` is not this geometry."""
        found = self.differences(other)
        if found:
            raise ValueError(
                f"{what} was built for other stamps than {against}: {'; '.join(found)} "
                f"({what} first, {against} second). Rebuild the data for the model, or train "
                "a model on this data."
            )


ZTF = StampGeometry()


def geometry_of(channels: Sequence[str], shape: Sequence[int]) -> StampGeometry:
    """A geometry from a channel list and an (H, W, C) or (H, W) shape."""
    return StampGeometry(int(shape[0]), int(shape[1]), tuple(channels))
