"""The registry of feature families, and what a family is given.

A family is a function registered under its CellProfiler family name::

    @register_family("Texture", order=40, columns=texture_columns, defaults={"scales": [3]})
    def texture(objects: Objects, images: Images, params: Mapping) -> dict[str, np.ndarray]:
        ...

It is called once per compartment (Nuclei, Cells, Cytoplasm) with that compartment's
:class:`Objects` (label image + the object numbers that are the table's rows), the site's
:class:`Images`, and its own config section ``features.<name>`` (its ``defaults`` filled in,
``enabled`` removed). It returns one ``(N,)`` float64 array per column, keyed by the column name
without the ``<Compartment>_<Family>_`` prefix (``"Area"``, ``"MeanIntensity_DNA"``): exactly
the names ``columns(channels, params)`` lists, in that order. An object with no pixels in the
compartment gets NaN. Families run, and their columns follow each other, in ``order``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from skimage.measure import regionprops_table

__all__ = [
    "FAMILIES",
    "Family",
    "Images",
    "Objects",
    "default_params",
    "enabled_families",
    "get_family",
    "register_family",
]


@dataclass(frozen=True)
class Objects:
    """One compartment's objects.

    Attributes
    ----------
    labels : (Y, X) int ndarray
        The compartment's label image, 0 = background.
    numbers : (N,) int64 ndarray
        Sorted object numbers: row ``i`` of every family's output is object ``numbers[i]``.
    """

    labels: np.ndarray
    numbers: np.ndarray

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.numbers.size)

    def rows(self, labels: np.ndarray) -> np.ndarray:
        """Row index of each label value in ``labels`` (-1 for a label that is not a row).

        Parameters
        ----------
        labels : (M,) int ndarray
            Label values (> 0) of this compartment.

        Returns
        -------
        (M,) int64 ndarray
        """
        size = max(int(labels.max(initial=0)), int(self.numbers.max(initial=0))) + 1
        lut = np.full(size, -1, dtype=np.int64)
        lut[self.numbers] = np.arange(self.numbers.size)
        return lut[labels]

    def regionprops(self, properties: Sequence[str]) -> tuple[dict, np.ndarray, np.ndarray] | None:
        """scikit-image's ``regionprops_table`` of the compartment, placed on the rows.

        Returns
        -------
        None where the compartment has no object; else ``(props, rows, keep)``: the table,
        the row of each kept region, and which regions are kept (labels that are a row).
        """
        if self.labels.max(initial=0) == 0:
            return None
        props = regionprops_table(self.labels, properties=("label", *properties))
        rows = self.rows(props["label"])
        keep = rows >= 0  # labels in a compartment but not in nuclei/cells are ignored
        return props, rows[keep], keep


@dataclass(frozen=True)
class Images:
    """The site's image.

    Attributes
    ----------
    pixels : (C, Y, X) float64 ndarray
        Corrected intensities, 0..1.
    channels : tuple of str
        One name per plane.
    cache : dict
        Per-site scratch space shared by families and compartments.
    """

    pixels: np.ndarray
    channels: tuple[str, ...]
    #: Per-site scratch space shared by the families and compartments of one site (e.g. an
    #: image-wide quantisation computed once): ``images.cache.setdefault(key, ...)``. Lives as
    #: long as this object, i.e. one site.
    cache: dict = field(default_factory=dict, compare=False, repr=False)


Measure = Callable[[Objects, Images, Mapping], dict[str, np.ndarray]]
Columns = Callable[[Sequence[str], Mapping], list[str]]


@dataclass(frozen=True)
class Family:
    """A registered feature family (see the module docstring)."""

    name: str
    measure: Measure
    columns: Columns
    order: int
    defaults: dict[str, Any] = field(default_factory=dict)
    #: Whether the family runs when the config does not say (``features.<name>.enabled``).
    enabled: bool = True


#: Registered families: name -> Family.
FAMILIES: dict[str, Family] = {}


def register_family(name: str, *, columns: Columns, order: int,
                    defaults: Mapping[str, Any] | None = None, enabled: bool = True):
    """Decorator: register a family's measure function under its CellProfiler name.

    Parameters
    ----------
    name : str
        CellProfiler family name (``AreaShape``, ``Intensity``, ...); also the name of its
        config section, ``features.<name>``.
    columns : callable
        ``columns(channels, params) -> list of str``: the column names (without the
        ``<Compartment>_<name>_`` prefix) that ``measure`` returns, in order.
    order : int
        Position of the family's columns within each compartment.
    defaults : mapping, optional
        The family's options (besides ``enabled``), as in the schema.
    enabled : bool
        The default of ``features.<name>.enabled`` (the schema says the same).
    """

    def decorate(measure: Measure) -> Measure:
        if name in FAMILIES and FAMILIES[name].measure is not measure:
            raise ValueError(f"feature family {name!r} is registered twice")
        FAMILIES[name] = Family(name, measure, columns, int(order), dict(defaults or {}),
                                bool(enabled))
        return measure

    return decorate


def get_family(name: str) -> Family:
    """The family registered as ``name``."""
    if name not in FAMILIES:
        raise ValueError(f"Unknown feature family {name!r}; allowed: "
                         f"{', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def default_params() -> dict[str, dict[str, Any]]:
    """The ``features:`` config section with every family's defaults."""
    return {name: {"enabled": family.enabled, **copy.deepcopy(family.defaults)}
            for name, family in FAMILIES.items()}


def enabled_families(params: Mapping | None) -> list[tuple[Family, dict[str, Any]]]:
    """The enabled families in column order, each with its own section (defaults filled in).

    Parameters
    ----------
    params : mapping or None
        The ``features:`` config section; a family it does not name takes its defaults
        (enabled).
    """
    params = params or {}
    for name in params:
        get_family(name)
    out = []
    for family in sorted(FAMILIES.values(), key=lambda f: (f.order, f.name)):
        section = dict(params.get(family.name) or {})
        enabled = section.pop("enabled", family.enabled)
        unknown = sorted(set(section) - set(family.defaults))
        if unknown:
            raise ValueError(f"features.{family.name} has no option {unknown[0]!r}; allowed: "
                             f"{', '.join(['enabled', *sorted(family.defaults)])}")
        if enabled:
            out.append((family, {**copy.deepcopy(family.defaults), **section}))
    return out
